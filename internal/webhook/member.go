package webhook

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/validation"
)

var (
	memberKind      = tenancyv1alpha1.GroupVersion.WithKind("OrganizationMember").GroupKind()
	membersResource = tenancyv1alpha1.GroupVersion.WithResource("organizationmembers").GroupResource()
)

// +kubebuilder:webhook:path=/mutate-tenancy-orgoperator-io-v1alpha1-organizationmember,mutating=true,failurePolicy=fail,sideEffects=None,groups=tenancy.orgoperator.io,resources=organizationmembers,verbs=create;update,versions=v1alpha1,name=morganizationmember.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system

// MemberDefaulter fills in what a member leaves out.
type MemberDefaulter struct{}

// Default sets kubernetesRole to View when it is empty.
func (MemberDefaulter) Default(_ context.Context, m *tenancyv1alpha1.OrganizationMember) error {
	if m.Spec.KubernetesRole == "" {
		m.Spec.KubernetesRole = tenancyv1alpha1.KubernetesRoleView
	}
	return nil
}

// +kubebuilder:webhook:path=/validate-tenancy-orgoperator-io-v1alpha1-organizationmember,mutating=false,failurePolicy=fail,sideEffects=None,groups=tenancy.orgoperator.io,resources=organizationmembers,verbs=create;update;delete,versions=v1alpha1,name=vorganizationmember.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system

// MemberValidator keeps members valid, unique by email within their organization, in the home
// namespace of an existing organization, and never leaves an organization without an admin.
type MemberValidator struct {
	Reader client.Reader
}

// ValidateCreate checks the member's fields, its namespace and its email's uniqueness.
func (v *MemberValidator) ValidateCreate(ctx context.Context, m *tenancyv1alpha1.OrganizationMember) (admission.Warnings, error) {
	errs := validation.Member(m)
	if len(errs) > 0 {
		return nil, invalid(memberKind, m.Name, errs)
	}
	org, err := v.organizationOf(ctx, m.Namespace)
	if err != nil {
		return nil, err
	}
	if org == nil || !org.DeletionTimestamp.IsZero() {
		return nil, invalid(memberKind, m.Name, field.ErrorList{field.Forbidden(field.NewPath("metadata", "namespace"),
			fmt.Sprintf("namespace %s is not the home namespace of an existing organization; create members in the namespace named after their organization", m.Namespace))})
	}
	if err := v.uniqueEmail(ctx, m); err != nil {
		return nil, err
	}
	return nil, v.withinQuota(ctx, org, m, true, m.Spec.Admin)
}

// withinQuota refuses a new member, or a new admin, beyond the organization's maxMembers or
// maxAdmins.
func (v *MemberValidator) withinQuota(ctx context.Context, org *tenancyv1alpha1.Organization, m *tenancyv1alpha1.OrganizationMember, newMember, newAdmin bool) error {
	q, err := effectiveQuotas(ctx, v.Reader, org)
	if err != nil {
		return err
	}
	members := &tenancyv1alpha1.OrganizationMemberList{}
	if err := v.Reader.List(ctx, members, client.InNamespace(m.Namespace)); err != nil {
		return apierrors.NewInternalError(err)
	}
	var count, admins int
	for _, other := range members.Items {
		if other.Name == m.Name || !other.DeletionTimestamp.IsZero() {
			continue
		}
		count++
		if other.Spec.Admin {
			admins++
		}
	}
	var msg string
	if newMember {
		msg = atLimit("maxMembers", org.Name, q.MaxMembers, count)
	}
	if msg == "" && newAdmin {
		msg = atLimit("maxAdmins", org.Name, q.MaxAdmins, admins)
	}
	if msg == "" {
		return nil
	}
	return apierrors.NewForbidden(membersResource, m.Name, fmt.Errorf("%s; remove one first or ask a platform admin to raise the quota", msg))
}

// ValidateUpdate checks the member's fields and email, and refuses to demote the last admin.
func (v *MemberValidator) ValidateUpdate(ctx context.Context, old, m *tenancyv1alpha1.OrganizationMember) (admission.Warnings, error) {
	if errs := validation.Member(m); len(errs) > 0 {
		return nil, invalid(memberKind, m.Name, errs)
	}
	if validation.NormalizeEmail(old.Spec.Email) != validation.NormalizeEmail(m.Spec.Email) {
		if err := v.uniqueEmail(ctx, m); err != nil {
			return nil, err
		}
	}
	if !old.Spec.Admin && m.Spec.Admin {
		org, err := v.organizationOf(ctx, m.Namespace)
		if err != nil {
			return nil, err
		}
		if org != nil {
			if err := v.withinQuota(ctx, org, m, false, true); err != nil {
				return nil, err
			}
		}
	}
	if old.Spec.Admin && !m.Spec.Admin && m.DeletionTimestamp.IsZero() {
		last, org, err := v.lastAdmin(ctx, old)
		if err != nil {
			return nil, err
		}
		if last {
			return nil, invalid(memberKind, m.Name, field.ErrorList{field.Forbidden(field.NewPath("spec", "admin"),
				fmt.Sprintf("%s is the last admin of organization %s and cannot be demoted; make another member admin first", m.Name, org))})
		}
	}
	return nil, nil
}

// ValidateDelete refuses to delete the last admin of an organization, unless the organization or
// its home namespace is itself going away.
func (v *MemberValidator) ValidateDelete(ctx context.Context, m *tenancyv1alpha1.OrganizationMember) (admission.Warnings, error) {
	if !m.Spec.Admin {
		return nil, nil
	}
	last, org, err := v.lastAdmin(ctx, m)
	if err != nil || !last {
		return nil, err
	}
	return nil, apierrors.NewForbidden(membersResource, m.Name,
		fmt.Errorf("%s is the last admin of organization %s and cannot be removed; make another member admin first, or delete the organization", m.Name, org))
}

// organizationOf returns the organization whose home namespace this is, or nil.
func (v *MemberValidator) organizationOf(ctx context.Context, namespace string) (*tenancyv1alpha1.Organization, error) {
	ns := &corev1.Namespace{}
	if err := v.Reader.Get(ctx, types.NamespacedName{Name: namespace}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, apierrors.NewInternalError(err)
	}
	name := ns.Labels[tenancyv1alpha1.OrganizationLabel]
	if name != ns.Name || ns.Labels[tenancyv1alpha1.HomeNamespaceLabel] != "true" || !ns.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	org := &tenancyv1alpha1.Organization{}
	if err := v.Reader.Get(ctx, types.NamespacedName{Name: name}, org); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, apierrors.NewInternalError(err)
	}
	return org, nil
}

// lastAdmin reports whether m is the only admin of a live organization, and names it.
func (v *MemberValidator) lastAdmin(ctx context.Context, m *tenancyv1alpha1.OrganizationMember) (bool, string, error) {
	org, err := v.organizationOf(ctx, m.Namespace)
	if err != nil || org == nil || !org.DeletionTimestamp.IsZero() {
		return false, "", err
	}
	members := &tenancyv1alpha1.OrganizationMemberList{}
	if err := v.Reader.List(ctx, members, client.InNamespace(m.Namespace)); err != nil {
		return false, "", apierrors.NewInternalError(err)
	}
	for _, other := range members.Items {
		if other.Name != m.Name && other.Spec.Admin && other.DeletionTimestamp.IsZero() {
			return false, org.Name, nil
		}
	}
	return true, org.Name, nil
}

// uniqueEmail refuses a second member with the same email in the organization, whatever the case.
func (v *MemberValidator) uniqueEmail(ctx context.Context, m *tenancyv1alpha1.OrganizationMember) error {
	members := &tenancyv1alpha1.OrganizationMemberList{}
	if err := v.Reader.List(ctx, members, client.InNamespace(m.Namespace)); err != nil {
		return apierrors.NewInternalError(err)
	}
	email := validation.NormalizeEmail(m.Spec.Email)
	for _, other := range members.Items {
		if other.Name != m.Name && validation.NormalizeEmail(other.Spec.Email) == email {
			return invalid(memberKind, m.Name, field.ErrorList{field.Duplicate(field.NewPath("spec", "email"),
				fmt.Sprintf("%s (already used by member %s)", m.Spec.Email, other.Name))})
		}
	}
	return nil
}
