// Package tenancy answers, for every webhook and controller alike, where a namespace stands: which
// organization it is in, whether it is that organization's home, and what the organization is
// entitled to (its plan and effective quotas, with one answer for a plan that does not exist).
package tenancy

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/quota"
)

// Place is where a namespace stands in the tenancy.
type Place struct {
	// Namespace is nil when the namespace does not exist.
	Namespace *corev1.Namespace
	// Organization is the organization the namespace is labelled into; "" when none.
	Organization string
	// Home says the namespace is Organization's home namespace (see HomeOf).
	Home bool
}

// PlaceOf says where ns stands; ns may be nil.
func PlaceOf(ns *corev1.Namespace) Place {
	if ns == nil {
		return Place{}
	}
	org := ns.Labels[tenancyv1alpha1.OrganizationLabel]
	return Place{Namespace: ns, Organization: org, Home: org != "" && HomeOf(ns) == org}
}

// HomeOf returns the organization whose home namespace ns is, or "". A home namespace is named
// after its organization and controlled by an Organization of that name, possibly a deleted one
// whose namespace is still terminating. Labels say the same for selectors, but only the owner
// reference, which the operator sets at creation, decides.
func HomeOf(ns *corev1.Namespace) string {
	ref := metav1.GetControllerOfNoCopy(ns)
	if ref == nil || ref.Kind != "Organization" || ref.Name != ns.Name ||
		!strings.HasPrefix(ref.APIVersion, tenancyv1alpha1.GroupVersion.Group+"/") {
		return ""
	}
	return ref.Name
}

// IsHome says ns is the home namespace of this very organization (same UID), not of an earlier
// one of the same name.
func IsHome(ns *corev1.Namespace, org *tenancyv1alpha1.Organization) bool {
	return HomeOf(ns) == org.Name && metav1.IsControlledBy(ns, org)
}

// Tenant is an organization with what it is entitled to.
type Tenant struct {
	Organization *tenancyv1alpha1.Organization
	// Plan is nil when the subscription names none or names one that does not exist.
	Plan *tenancyv1alpha1.OrganizationPlan
	// PlanMissing says the subscription names a plan that does not exist.
	PlanMissing bool
	// Quotas are the effective quotas (see EffectiveQuotas).
	Quotas tenancyv1alpha1.Quotas
}

// PlanName is the plan an organization subscribes to; "" when none.
func PlanName(org *tenancyv1alpha1.Organization) string {
	if org.Spec.Subscription == nil {
		return ""
	}
	return org.Spec.Subscription.Plan
}

// EffectiveQuotas are the plan's quotas overridden by the organization's own. While the plan it
// names does not exist, the quotas last applied (status.quotas) hold, in the namespaces and at
// admission alike, so that deleting or misspelling a plan never lifts a limit; an organization
// that never had any is held to spec.quotas alone.
func EffectiveQuotas(org *tenancyv1alpha1.Organization, plan *tenancyv1alpha1.OrganizationPlan, planMissing bool) tenancyv1alpha1.Quotas {
	if planMissing {
		if held := org.Status.Quotas; held != nil {
			q := tenancyv1alpha1.Quotas{
				MaxNamespaces: held.MaxNamespaces, MaxMembers: held.MaxMembers, MaxAdmins: held.MaxAdmins,
				NamespaceQuota: held.NamespaceQuota, OrganizationQuota: held.Hard,
			}
			return *q.DeepCopy()
		}
		return quota.Effective(nil, org.Spec.Quotas)
	}
	var planQuotas *tenancyv1alpha1.Quotas
	if plan != nil {
		planQuotas = &plan.Spec.Quotas
	}
	return quota.Effective(planQuotas, org.Spec.Quotas)
}

// Resolver reads namespaces, organizations and plans through Reader: the cache for controllers,
// the API server where a rule must be exact.
type Resolver struct {
	Reader client.Reader
}

// Namespace says where the named namespace stands; a namespace that does not exist is nowhere.
func (r Resolver) Namespace(ctx context.Context, name string) (Place, error) {
	ns := &corev1.Namespace{}
	if err := r.Reader.Get(ctx, types.NamespacedName{Name: name}, ns); err != nil {
		return Place{}, client.IgnoreNotFound(err)
	}
	return PlaceOf(ns), nil
}

// Tenant looks up the organization's plan and computes its effective quotas.
func (r Resolver) Tenant(ctx context.Context, org *tenancyv1alpha1.Organization) (Tenant, error) {
	t := Tenant{Organization: org}
	if name := PlanName(org); name != "" {
		plan := &tenancyv1alpha1.OrganizationPlan{}
		err := r.Reader.Get(ctx, types.NamespacedName{Name: name}, plan)
		switch {
		case err == nil:
			t.Plan = plan
		case apierrors.IsNotFound(err):
			t.PlanMissing = true
		default:
			return Tenant{}, err
		}
	}
	t.Quotas = EffectiveQuotas(org, t.Plan, t.PlanMissing)
	return t, nil
}

// Organization returns the named organization; nil when it does not exist.
func (r Resolver) Organization(ctx context.Context, name string) (*tenancyv1alpha1.Organization, error) {
	org := &tenancyv1alpha1.Organization{}
	if err := r.Reader.Get(ctx, types.NamespacedName{Name: name}, org); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	return org, nil
}

// TenantOf resolves the organization a namespace is in and what it is entitled to; the tenant is
// nil when the namespace is in no organization or its organization does not exist.
func (r Resolver) TenantOf(ctx context.Context, namespace string) (Place, *Tenant, error) {
	place, err := r.Namespace(ctx, namespace)
	if err != nil || place.Organization == "" {
		return place, nil, err
	}
	org, err := r.Organization(ctx, place.Organization)
	if err != nil || org == nil {
		return place, nil, err
	}
	t, err := r.Tenant(ctx, org)
	if err != nil {
		return place, nil, err
	}
	return place, &t, nil
}
