package webhook

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/arbiter"
	"github.com/orgoperator/org-operator/internal/tenancy"
)

// Decider is what the member and namespace webhooks decide with: the changes of one organization,
// one at a time, on what the API server stores, recorded on the organization's status.
type Decider struct {
	// Reader reads plans, for the effective quotas; a cache will do.
	Reader client.Reader
	// Live reads from the API server itself.
	Live client.Reader
	// Writer records admitted changes on the organization's status.
	Writer     client.Client
	Authorizer PlatformAuthorizer
	Clock      clock.PassiveClock
	// Arbiter serialises the decisions of one organization.
	Arbiter *arbiter.Arbiter
}

// quotas are the organization's effective quotas, the limits the decisions enforce.
func (d *Decider) quotas(ctx context.Context, org *tenancyv1alpha1.Organization) (tenancyv1alpha1.Quotas, error) {
	tenant, err := tenancy.Resolver{Reader: d.Reader}.Tenant(ctx, org)
	if err != nil {
		return tenancyv1alpha1.Quotas{}, apierrors.NewInternalError(err)
	}
	return tenant.Quotas, nil
}
