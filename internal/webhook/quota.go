package webhook

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/quota"
)

// effectiveQuotas returns an organization's quotas as the controller computes them: its plan's,
// overridden by its own. A missing plan contributes nothing.
func effectiveQuotas(ctx context.Context, r client.Reader, org *tenancyv1alpha1.Organization) (tenancyv1alpha1.Quotas, error) {
	var planQuotas *tenancyv1alpha1.Quotas
	if org.Spec.Subscription != nil && org.Spec.Subscription.Plan != "" {
		plan := &tenancyv1alpha1.OrganizationPlan{}
		err := r.Get(ctx, types.NamespacedName{Name: org.Spec.Subscription.Plan}, plan)
		switch {
		case err == nil:
			planQuotas = &plan.Spec.Quotas
		case !apierrors.IsNotFound(err):
			return tenancyv1alpha1.Quotas{}, apierrors.NewInternalError(err)
		}
	}
	return quota.Effective(planQuotas, org.Spec.Quotas), nil
}

// atLimit says, when adding one more would exceed limit, which quota and how full it is.
func atLimit(name, org string, limit *int32, have int) string {
	if limit == nil || have < int(*limit) {
		return ""
	}
	return fmt.Sprintf("organization %s has %d of its %s quota of %d", org, have, name, *limit)
}
