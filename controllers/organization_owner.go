package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/conditions"
	"github.com/orgoperator/org-operator/internal/membership"
)

// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizationmembers,verbs=create

// ownerMemberName is the name of the member the operator makes for spec.owner.
const ownerMemberName = "owner"

// reconcileOwner makes spec.owner an admin member of the organization, once: status.owner then
// records the member, and the organization's admins may change or remove it like any other. A
// member already bound as the owner is taken as the owner's, as it is. The member is created
// through admission like any other, so that maxMembers and maxAdmins hold.
func (r *OrganizationReconciler) reconcileOwner(ctx context.Context, s *organizationScope) error {
	owner := s.org.Spec.Owner
	if owner == nil || s.home == nil || s.homeProblem != nil {
		return nil
	}
	subject := ownerSubject(owner)
	key := membership.SubjectString(subject)
	if st := s.org.Status.Owner; st != nil && st.Subject == key {
		return nil
	}
	name := ownerMemberName
	for i := range s.members {
		m := &s.members[i]
		if membership.Subject(m) == subject && m.DeletionTimestamp.IsZero() {
			s.owner = &tenancyv1alpha1.OwnerStatus{Subject: key, Member: m.Name}
			return nil
		}
		if m.Name == ownerMemberName {
			name = ownerMemberName + "-" + shortHash(key) // an earlier owner's, or the admins' own
		}
	}
	m := ownerMember(s.org, owner, name)
	err := r.Create(ctx, m)
	switch {
	case apierrors.IsAlreadyExists(err):
		return nil // made by an earlier reconcile the cache has not caught up with: its event brings us back
	case apierrors.IsForbidden(err) || apierrors.IsInvalid(err):
		return conditions.Stalled(tenancyv1alpha1.OwnerNotAddedReason, "The owner %s could not be made an admin member: %v", key, err)
	case err != nil:
		return fmt.Errorf("creating the owner's member: %w", err)
	}
	s.owner = &tenancyv1alpha1.OwnerStatus{Subject: key, Member: name}
	ctrl.LoggerFrom(ctx).Info("Made the owner an admin member", "member", klog.KObj(m), "subject", key)
	r.Recorder.Eventf(s.org, m, corev1.EventTypeNormal, tenancyv1alpha1.OwnerAddedReason, "Create",
		"Made the owner %s an admin member (%s/%s)", key, m.Namespace, m.Name)
	return nil
}

// ownerSubject is the RBAC subject spec.owner names.
func ownerSubject(o *tenancyv1alpha1.OrganizationOwner) rbacv1.Subject {
	return membership.Subject(&tenancyv1alpha1.OrganizationMember{Spec: ownerSpec(o)})
}

// ownerSpec is the spec of the owner's member: an admin with kubernetesRole Admin.
func ownerSpec(o *tenancyv1alpha1.OrganizationOwner) tenancyv1alpha1.OrganizationMemberSpec {
	return tenancyv1alpha1.OrganizationMemberSpec{
		Email: o.Email, Username: o.Username, Group: o.Group,
		Admin: true, KubernetesRole: tenancyv1alpha1.KubernetesRoleAdmin,
	}
}

func ownerMember(org *tenancyv1alpha1.Organization, o *tenancyv1alpha1.OrganizationOwner, name string) *tenancyv1alpha1.OrganizationMember {
	return &tenancyv1alpha1.OrganizationMember{
		ObjectMeta: metav1.ObjectMeta{Namespace: org.Name, Name: name, Labels: managedLabels(org.Name)},
		Spec:       ownerSpec(o),
	}
}

// shortHash is 8 hex digits of s's SHA-256: a stable, short suffix for a name.
func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}
