// Package membership computes the RoleBindings an OrganizationMember should have.
package membership

import (
	"cmp"
	"fmt"
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

// OrganizationAdminClusterRole lets organization admins manage the members of their organization.
// It is bound, in the home namespace only, to members with admin: true.
const OrganizationAdminClusterRole = "org-operator-organization-admin"

// ClusterRoleFor returns the built-in ClusterRole a KubernetesRole binds, and false for None.
func ClusterRoleFor(role tenancyv1alpha1.KubernetesRole) (string, bool) {
	switch role {
	case tenancyv1alpha1.KubernetesRoleAdmin:
		return "admin", true
	case tenancyv1alpha1.KubernetesRoleEdit:
		return "edit", true
	case tenancyv1alpha1.KubernetesRoleView, "":
		return "view", true
	default:
		return "", false
	}
}

// Rank orders KubernetesRoles by the access they grant (None < View < Edit < Admin), as RBAC's
// escalation check compares rights: nobody may grant a role above their own.
func Rank(role tenancyv1alpha1.KubernetesRole) int {
	switch role {
	case tenancyv1alpha1.KubernetesRoleAdmin:
		return 3
	case tenancyv1alpha1.KubernetesRoleEdit:
		return 2
	case tenancyv1alpha1.KubernetesRoleView, "":
		return 1
	default:
		return 0
	}
}

// Subject is the RBAC user a member is bound as: its username, or its email when none is set.
func Subject(m *tenancyv1alpha1.OrganizationMember) rbacv1.Subject {
	name := m.Spec.Username
	if name == "" {
		name = m.Spec.Email
	}
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
}

// ReaderRoleName names the ClusterRole, and its binding, that let an organization's members read
// that organization and no other.
func ReaderRoleName(org string) string { return "org-operator:organization:" + org }

// RoleBindingName is the name of a member's RoleBinding for its kubernetesRole.
func RoleBindingName(member string) string { return "org-member-" + member }

// AdminRoleBindingName is the name of an admin member's RoleBinding in the home namespace.
func AdminRoleBindingName(member string) string { return "org-admin-" + member }

// DesiredRoleBindings returns the RoleBindings member should have in an organization whose
// namespaces (the home namespace among them) are given: one binding of its kubernetesRole's
// ClusterRole in each namespace, and for admins one binding of OrganizationAdminClusterRole in the
// home namespace. The result is sorted by namespace, then name.
func DesiredRoleBindings(member *tenancyv1alpha1.OrganizationMember, org *tenancyv1alpha1.Organization, namespaces []string) []rbacv1.RoleBinding {
	subject := Subject(member)
	labels := map[string]string{
		tenancyv1alpha1.OrganizationLabel: org.Name,
		tenancyv1alpha1.MemberLabel:       member.Name,
		tenancyv1alpha1.ManagedByLabel:    tenancyv1alpha1.ManagedByValue,
	}
	owner := metav1.OwnerReference{
		APIVersion: tenancyv1alpha1.GroupVersion.String(),
		Kind:       "Organization",
		Name:       org.Name,
		UID:        org.UID,
	}
	newBinding := func(namespace, name, clusterRole string) rbacv1.RoleBinding {
		return rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: namespace, Name: name, Labels: labels,
				// The organization owns the binding so that garbage collection removes it with the
				// organization even if the operator is not running; the member's finalizer removes
				// it when only the member goes.
				OwnerReferences: []metav1.OwnerReference{owner},
			},
			Subjects: []rbacv1.Subject{subject},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		}
	}

	role, bound := ClusterRoleFor(member.Spec.KubernetesRole)
	out := make([]rbacv1.RoleBinding, 0, len(namespaces)+1)
	if bound {
		for _, ns := range namespaces {
			out = append(out, newBinding(ns, RoleBindingName(member.Name), role))
		}
	}
	if member.Spec.Admin {
		out = append(out, newBinding(member.Namespace, AdminRoleBindingName(member.Name), OrganizationAdminClusterRole))
	}
	slices.SortFunc(out, func(a, b rbacv1.RoleBinding) int {
		if a.Namespace != b.Namespace {
			return cmp.Compare(a.Namespace, b.Namespace)
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out
}

// Key identifies a RoleBinding by namespace and name.
func Key(rb *rbacv1.RoleBinding) string { return fmt.Sprintf("%s/%s", rb.Namespace, rb.Name) }
