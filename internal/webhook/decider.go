package webhook

import (
	"context"
	"fmt"
	"slices"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/arbiter"
	"github.com/orgoperator/org-operator/internal/membership"
	"github.com/orgoperator/org-operator/internal/tenancy"
)

// Decider is what the member, project and namespace webhooks decide with: the changes of one
// organization, one at a time, on what the API server stores, recorded on the organization's
// status.
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

// homeOf returns the organization whose home namespace this is, as the API server stores it, or
// "" when it is none or is being deleted.
func (d *Decider) homeOf(ctx context.Context, namespace string) (string, error) {
	place, err := tenancy.Resolver{Reader: d.Live}.Namespace(ctx, namespace)
	if err != nil {
		return "", apierrors.NewInternalError(err)
	}
	if !place.Home || !place.Namespace.DeletionTimestamp.IsZero() {
		return "", nil
	}
	return place.Organization, nil
}

// adminOf returns the member through which user administers the organization, the one with the
// highest kubernetesRole among the admins user acts as (itself, one of its groups, or its service
// account), or nil when user is none of its admins. An admin being demoted or removed no longer
// counts as one.
func adminOf(user authenticationv1.UserInfo, stored []tenancyv1alpha1.OrganizationMember, ms arbiter.Membership) *tenancyv1alpha1.OrganizationMember {
	var self *tenancyv1alpha1.OrganizationMember
	for i := range stored {
		s := &stored[i]
		if membership.Matches(membership.Subject(s), user) && ms.SurelyAdmin(s.Name) &&
			(self == nil || membership.Rank(s.Spec.KubernetesRole) > membership.Rank(self.Spec.KubernetesRole)) {
			self = s
		}
	}
	return self
}

// notAdmin refuses a user who is not an admin of the organization a change of its members or
// projects (what) needs.
func notAdmin(resource schema.GroupResource, name, user, org string, op admissionv1.Operation, what string) error {
	verb := map[admissionv1.Operation]string{admissionv1.Create: "create", admissionv1.Update: "change", admissionv1.Delete: "delete"}[op]
	return apierrors.NewForbidden(resource, name, fmt.Errorf(
		"user %q is not an admin of organization %s: only its admins and platform admins may %s its %s", user, org, verb, what))
}

// organizationNamespaces is what the stored objects say of an organization's namespaces.
type organizationNamespaces struct {
	// names are the namespaces labelled into the organization and those its projects name,
	// which may not exist yet; sorted, each once.
	names []string
	// projectOf names, by namespace, the project that names it.
	projectOf map[string]string
}

// namespacesOf reads, from the API server (live), the namespaces of an organization: those labelled
// into it and those its projects name. The namespace and project webhooks count the same ones,
// so that neither a namespace joining by label nor a new project can take a place the other holds.
func namespacesOf(ctx context.Context, live client.Reader, org string) (organizationNamespaces, error) {
	labelled := &corev1.NamespaceList{}
	if err := live.List(ctx, labelled, client.MatchingLabels{tenancyv1alpha1.OrganizationLabel: org}); err != nil {
		return organizationNamespaces{}, apierrors.NewInternalError(err)
	}
	projects := &tenancyv1alpha1.OrganizationProjectList{}
	if err := live.List(ctx, projects, client.InNamespace(org)); err != nil {
		return organizationNamespaces{}, apierrors.NewInternalError(err)
	}
	n := organizationNamespaces{projectOf: map[string]string{}}
	for _, ns := range labelled.Items {
		n.names = append(n.names, ns.Name)
	}
	for _, p := range projects.Items {
		if p.Spec.Namespace != "" {
			n.projectOf[p.Spec.Namespace] = p.Name
			n.names = append(n.names, p.Spec.Namespace)
		}
	}
	slices.Sort(n.names)
	n.names = slices.Compact(n.names)
	return n, nil
}

// besides bounds how many namespaces the organization may have besides name: the stored ones and
// those admitted into it in the last arbiter.Window that they do not show yet.
func (n organizationNamespaces) besides(org *tenancyv1alpha1.Organization, name string, now time.Time) int {
	return arbiter.Namespaces(n.names, org.Status.Admitted, name, now)
}

// hasProject reports whether the organization has a project of that name.
func (n organizationNamespaces) hasProject(name string) bool {
	for _, p := range n.projectOf {
		if p == name {
			return true
		}
	}
	return false
}
