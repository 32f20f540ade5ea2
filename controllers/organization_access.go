package controllers

import (
	"context"
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/membership"
	"github.com/orgoperator/org-operator/internal/owned"
)

// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterrolebindings,verbs=get;list;watch;create;patch;delete

// reconcileReaderAccess keeps the organization's reader ClusterRole and a ClusterRoleBinding of
// it to every member the organization binds (none while there are none). Both are owned by the
// organization, so they go with it.
func (r *OrganizationReconciler) reconcileReaderAccess(ctx context.Context, s *organizationScope, members []tenancyv1alpha1.OrganizationMember) error {
	org := s.org
	labels := managedLabels(org.Name)
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: membership.ReaderRoleName(org.Name), Labels: labels},
		Rules: []rbacv1.PolicyRule{{
			APIGroups:     []string{tenancyv1alpha1.GroupVersion.Group},
			Resources:     []string{"organizations"},
			ResourceNames: []string{org.Name},
			Verbs:         []string{"get", "watch"},
		}},
	}
	if err := r.owner(org).Ensure(ctx, role, func(have, want client.Object) bool {
		return equality.Semantic.DeepEqual(have.(*rbacv1.ClusterRole).Rules, want.(*rbacv1.ClusterRole).Rules)
	}, func(have, want client.Object) { have.(*rbacv1.ClusterRole).Rules = want.(*rbacv1.ClusterRole).Rules }); err != nil {
		return err
	}

	subjects := make([]rbacv1.Subject, 0, len(members))
	for i := range members {
		if members[i].DeletionTimestamp.IsZero() {
			subjects = append(subjects, membership.Subject(&members[i]))
		}
	}
	slices.SortFunc(subjects, membership.CompareSubjects)
	subjects = slices.Compact(subjects)
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: membership.ReaderRoleName(org.Name), Labels: labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   subjects,
	}
	if len(subjects) == 0 {
		// A binding of no one grants nothing: made only once there are members, it is created
		// once with them rather than created empty and patched.
		return r.owner(org).DeleteIfOwned(ctx, binding)
	}
	return r.owner(org).Ensure(ctx, binding, func(have, want client.Object) bool {
		return equality.Semantic.DeepEqual(have.(*rbacv1.ClusterRoleBinding).Subjects, want.(*rbacv1.ClusterRoleBinding).Subjects)
	}, func(have, want client.Object) {
		have.(*rbacv1.ClusterRoleBinding).Subjects = want.(*rbacv1.ClusterRoleBinding).Subjects
	})
}

// owner keeps the objects the organization owns.
func (r *OrganizationReconciler) owner(org *tenancyv1alpha1.Organization) owned.Owner {
	return owned.Owner{Client: r.Client, Scheme: scheme(), Object: org}
}
