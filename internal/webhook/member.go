package webhook

import (
	"context"
	"fmt"
	"slices"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/arbiter"
	"github.com/orgoperator/org-operator/internal/membership"
	"github.com/orgoperator/org-operator/internal/validation"
)

var (
	memberKind      = tenancyv1alpha1.GroupVersion.WithKind("OrganizationMember").GroupKind()
	membersResource = tenancyv1alpha1.GroupVersion.WithResource("organizationmembers").GroupResource()
)

// The API server calls the defaulting webhook only when kubernetesRole is empty, the one case Default changes (its
// matchConditions), so that most writes of members, the operator's among them, cost no call.
//
// +kubebuilder:webhook:path=/mutate-tenancy-orgoperator-io-v1alpha1-organizationmember,mutating=true,failurePolicy=fail,sideEffects=None,groups=tenancy.orgoperator.io,resources=organizationmembers,verbs=create;update,versions=v1alpha1,name=morganizationmember.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system,patch=`{"matchConditions":[{"name":"role-missing","expression":"!has(object.spec) || type(object.spec) != map || !has(object.spec.kubernetesRole) || object.spec.kubernetesRole == ''"}]}`

// MemberDefaulter fills in what a member leaves out.
type MemberDefaulter struct{}

// Default sets kubernetesRole to View when it is empty.
func (MemberDefaulter) Default(_ context.Context, m *tenancyv1alpha1.OrganizationMember) error {
	if m.Spec.KubernetesRole == "" {
		m.Spec.KubernetesRole = tenancyv1alpha1.KubernetesRoleView
	}
	return nil
}

// The webhook records what it admits on the organization (see internal/arbiter), except for
// dry runs: sideEffects=NoneOnDryRun.
//
// Its matchConditions skip the updates ValidateUpdate lets through unjudged: the spec unchanged,
// or the member being deleted.
//
// +kubebuilder:webhook:path=/validate-tenancy-orgoperator-io-v1alpha1-organizationmember,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups=tenancy.orgoperator.io,resources=organizationmembers,verbs=create;update;delete,versions=v1alpha1,name=vorganizationmember.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system,patch=`{"matchConditions":[{"name":"judged-change","expression":"request.operation != 'UPDATE' || (!has(oldObject.metadata.deletionTimestamp) && (!has(object.spec) || !has(oldObject.spec) || object.spec != oldObject.spec))"}]}`

// MemberValidator decides who may change an organization's members and how: only the
// organization's admins and platform admins may create, change or delete members; nobody but a
// platform admin grants a kubernetesRole above their own; members are unique by email and by the
// identity they are bound as; a service account member lives in one of the organization's
// namespaces; members live in the home namespace of an existing organization, stay within
// maxMembers and maxAdmins, and the last admin is never removed or demoted. Every rule is decided
// on what the API server stores, through internal/arbiter, so that racing requests cannot pass a
// rule together.
type MemberValidator struct {
	Decider
}

// ValidateCreate checks the member's fields, then decides the creation.
func (v *MemberValidator) ValidateCreate(ctx context.Context, m *tenancyv1alpha1.OrganizationMember) (admission.Warnings, error) {
	if errs := validation.Member(m); len(errs) > 0 {
		return nil, invalid(memberKind, m.Name, errs)
	}
	return nil, v.decide(ctx, m.Namespace, m.Name, nil, m)
}

// ValidateUpdate decides changes of the spec. Changes of metadata alone (labels, annotations, the
// operator's finalizer) and changes to a member being deleted are not judged: validation judges
// what a request changes.
func (v *MemberValidator) ValidateUpdate(ctx context.Context, old, m *tenancyv1alpha1.OrganizationMember) (admission.Warnings, error) {
	if equality.Semantic.DeepEqual(old.Spec, m.Spec) || !old.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	if errs := validation.Member(m); len(errs) > 0 {
		return nil, invalid(memberKind, m.Name, errs)
	}
	return nil, v.decide(ctx, m.Namespace, m.Name, old, m)
}

// ValidateDelete decides the deletion; one request that deletes a collection is decided member
// by member.
func (v *MemberValidator) ValidateDelete(ctx context.Context, m *tenancyv1alpha1.OrganizationMember) (admission.Warnings, error) {
	if !m.DeletionTimestamp.IsZero() {
		return nil, nil // deleted already; this only hurries it
	}
	return nil, v.decide(ctx, m.Namespace, m.Name, m, nil)
}

// decide judges a change from old to m (nil for a creation or deletion) in one organization.
func (v *MemberValidator) decide(ctx context.Context, namespace, name string, old, m *tenancyv1alpha1.OrganizationMember) error {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	orgName, err := v.homeOf(ctx, namespace)
	if err != nil {
		return err
	}
	platformAdmin, err := v.Authorizer.IsPlatformAdmin(ctx, req.UserInfo)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	dryRun := req.DryRun != nil && *req.DryRun
	now := v.Clock.Now()
	return v.Arbiter.Decide(ctx, v.Live, v.Writer, orgName, func(ctx context.Context, live client.Reader, org *tenancyv1alpha1.Organization) (bool, error) {
		if orgName == "" || org == nil || !org.DeletionTimestamp.IsZero() {
			if old == nil {
				return false, invalid(memberKind, name, field.ErrorList{field.Forbidden(field.NewPath("metadata", "namespace"),
					fmt.Sprintf("namespace %s is not the home namespace of an existing organization; create members in the namespace named after their organization", namespace))})
			}
			return false, nil // the organization is going away, and its members with it
		}
		stored := &tenancyv1alpha1.OrganizationMemberList{}
		if err := live.List(ctx, stored, client.InNamespace(namespace)); err != nil {
			return false, apierrors.NewInternalError(err)
		}
		ms := arbiter.NewMembership(stored.Items, org.Status.Admitted, now)
		if !platformAdmin {
			if err := authorize(req.UserInfo, stored.Items, ms, org.Name, req.Operation, old, m); err != nil {
				return false, err
			}
		}
		if m != nil && old == nil && exists(stored.Items, name) {
			return false, nil // the API server refuses it as AlreadyExists
		}
		if err := v.rules(ctx, live, org, ms, name, old, m); err != nil {
			return false, err
		}
		if dryRun {
			return false, nil
		}
		state := arbiter.MemberState{Name: name, Deleted: true}
		if m != nil {
			state = arbiter.StateOf(m)
		}
		arbiter.RecordMember(org, state, now)
		return true, nil
	})
}

// rules checks the organization's limits, the last admin and the email's uniqueness against what
// the other members are or may be.
func (v *MemberValidator) rules(ctx context.Context, live client.Reader, org *tenancyv1alpha1.Organization, ms arbiter.Membership, name string, old, m *tenancyv1alpha1.OrganizationMember) error {
	others := ms.Others(name)
	wasAdmin := old != nil && old.Spec.Admin
	if wasAdmin && (m == nil || !m.Spec.Admin) && others.SureAdmins == 0 {
		if m == nil {
			return apierrors.NewForbidden(membersResource, name,
				fmt.Errorf("%s is the last admin of organization %s and cannot be removed; make another member admin first, or delete the organization", name, org.Name))
		}
		return invalid(memberKind, name, field.ErrorList{field.Forbidden(field.NewPath("spec", "admin"),
			fmt.Sprintf("%s is the last admin of organization %s and cannot be demoted; make another member admin first", name, org.Name))})
	}
	if m == nil {
		return nil
	}
	if old == nil || validation.NormalizeEmail(old.Spec.Email) != validation.NormalizeEmail(m.Spec.Email) {
		if owner := ms.EmailOwner(name, validation.NormalizeEmail(m.Spec.Email)); owner != "" {
			return invalid(memberKind, name, field.ErrorList{field.Duplicate(field.NewPath("spec", "email"),
				fmt.Sprintf("%s (already used by member %s)", m.Spec.Email, owner))})
		}
	}
	if old == nil || membership.Subject(old) != membership.Subject(m) {
		if err := v.admitSubject(ctx, live, org, ms, name, m); err != nil {
			return err
		}
	}
	if old == nil || (m.Spec.Admin && !wasAdmin) {
		q, err := v.quotas(ctx, org)
		if err != nil {
			return err
		}
		var msg string
		if old == nil {
			msg = atLimit("maxMembers", org.Name, q.MaxMembers, others.Members)
		}
		if msg == "" && m.Spec.Admin {
			msg = atLimit("maxAdmins", org.Name, q.MaxAdmins, others.Admins)
		}
		if msg != "" {
			return apierrors.NewForbidden(membersResource, name, fmt.Errorf("%s; remove one first or ask a platform admin to raise the quota", msg))
		}
	}
	return nil
}

// admitSubject checks the identity a member is bound as: no other member is bound as it, and a
// service account lives in one of the organization's namespaces, so that no tenant hands its
// organization's rights to a workload of another.
func (v *MemberValidator) admitSubject(ctx context.Context, live client.Reader, org *tenancyv1alpha1.Organization, ms arbiter.Membership, name string, m *tenancyv1alpha1.OrganizationMember) error {
	subject := membership.Subject(m)
	path := subjectPath(m)
	if owner := ms.SubjectOwner(name, membership.SubjectString(subject)); owner != "" {
		return invalid(memberKind, name, field.ErrorList{field.Duplicate(path,
			fmt.Sprintf("%s (member %s is already bound as it)", membership.SubjectString(subject), owner))})
	}
	sa := m.Spec.ServiceAccount
	if sa == nil {
		return nil
	}
	known, err := namespacesOf(ctx, live, org.Name)
	if err != nil {
		return err
	}
	if !slices.Contains(known.names, sa.Namespace) {
		return invalid(memberKind, name, field.ErrorList{field.Forbidden(path.Child("namespace"), fmt.Sprintf(
			"namespace %s is not a namespace of organization %s: a service account member must live in one of the organization's own namespaces", sa.Namespace, org.Name))})
	}
	return nil
}

// subjectPath is the field that names the member's identity.
func subjectPath(m *tenancyv1alpha1.OrganizationMember) *field.Path {
	spec := field.NewPath("spec")
	switch {
	case m.Spec.Group != "":
		return spec.Child("group")
	case m.Spec.ServiceAccount != nil:
		return spec.Child("serviceAccount")
	case m.Spec.Username != "":
		return spec.Child("username")
	}
	return spec.Child("email")
}

// authorize lets an admin of the organization change its members, granting no kubernetesRole
// above the admin's own, and refuses everyone else.
func authorize(user authenticationv1.UserInfo, stored []tenancyv1alpha1.OrganizationMember, ms arbiter.Membership, org string,
	op admissionv1.Operation, old, m *tenancyv1alpha1.OrganizationMember) error {
	target := m
	if target == nil {
		target = old
	}
	self := adminOf(user, stored, ms)
	if self == nil {
		return notAdmin(membersResource, target.Name, user.Username, org, op, "members")
	}
	granted := m != nil && (old == nil || old.Spec.KubernetesRole != m.Spec.KubernetesRole || membership.Subject(old) != membership.Subject(m))
	if granted && membership.Rank(m.Spec.KubernetesRole) > membership.Rank(self.Spec.KubernetesRole) {
		return invalid(memberKind, m.Name, field.ErrorList{field.Forbidden(field.NewPath("spec", "kubernetesRole"),
			fmt.Sprintf("user %q has kubernetesRole %s in organization %s and cannot grant %s, which is above it; ask a platform admin",
				user.Username, self.Spec.KubernetesRole, org, m.Spec.KubernetesRole))})
	}
	return nil
}

func exists(members []tenancyv1alpha1.OrganizationMember, name string) bool {
	for i := range members {
		if members[i].Name == name {
			return true
		}
	}
	return false
}
