package controllers

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/membership"
)

// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterrolebindings,verbs=get;list;watch;create;patch;delete

// ReaderRoleName names the ClusterRole, and its binding, that let an organization's members read
// that organization and no other.
func ReaderRoleName(org string) string { return "org-operator:organization:" + org }

// reconcileReaderAccess keeps the organization's reader ClusterRole and a ClusterRoleBinding of
// it to every member (none while there are no members). Both are owned by the organization, so
// they go with it.
func (r *OrganizationReconciler) reconcileReaderAccess(ctx context.Context, org *tenancyv1alpha1.Organization, members []tenancyv1alpha1.OrganizationMember) error {
	labels := map[string]string{
		tenancyv1alpha1.OrganizationLabel: org.Name,
		tenancyv1alpha1.ManagedByLabel:    tenancyv1alpha1.ManagedByValue,
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: ReaderRoleName(org.Name), Labels: labels},
		Rules: []rbacv1.PolicyRule{{
			APIGroups:     []string{tenancyv1alpha1.GroupVersion.Group},
			Resources:     []string{"organizations"},
			ResourceNames: []string{org.Name},
			Verbs:         []string{"get", "watch"},
		}},
	}
	if err := r.ensureOwned(ctx, org, role, func(have, want client.Object) bool {
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
	slices.SortFunc(subjects, func(a, b rbacv1.Subject) int { return cmp.Compare(a.Name, b.Name) })
	subjects = slices.CompactFunc(subjects, func(a, b rbacv1.Subject) bool { return a.Name == b.Name })
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ReaderRoleName(org.Name), Labels: labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   subjects,
	}
	if len(subjects) == 0 {
		// A binding of no one grants nothing: made only once there are members, it is created
		// once with them rather than created empty and patched.
		return r.deleteIfOwned(ctx, org, binding)
	}
	return r.ensureOwned(ctx, org, binding, func(have, want client.Object) bool {
		return equality.Semantic.DeepEqual(have.(*rbacv1.ClusterRoleBinding).Subjects, want.(*rbacv1.ClusterRoleBinding).Subjects)
	}, func(have, want client.Object) {
		have.(*rbacv1.ClusterRoleBinding).Subjects = want.(*rbacv1.ClusterRoleBinding).Subjects
	})
}

// ensureOwned creates want, owned by org, or patches the existing object when equal says it
// differs or it lost its labels or owner. It writes nothing when all is in place.
func (r *OrganizationReconciler) ensureOwned(ctx context.Context, org *tenancyv1alpha1.Organization, want client.Object,
	equal func(have, want client.Object) bool, update func(have, want client.Object)) error {
	if err := controllerutil.SetControllerReference(org, want, scheme()); err != nil {
		return err
	}
	have := want.DeepCopyObject().(client.Object)
	err := r.Get(ctx, client.ObjectKeyFromObject(want), have)
	if apierrors.IsNotFound(err) {
		if err := r.Create(ctx, want); err != nil {
			return fmt.Errorf("creating %T %s: %w", want, want.GetName(), err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if !metav1.IsControlledBy(have, org) && len(have.GetOwnerReferences()) > 0 {
		return fmt.Errorf("%T %s exists and belongs to someone else", want, want.GetName())
	}
	if equal(have, want) && hasAll(have.GetLabels(), want.GetLabels()) && metav1.IsControlledBy(have, org) {
		return nil
	}
	base := have.DeepCopyObject().(client.Object)
	update(have, want)
	have.SetOwnerReferences(want.GetOwnerReferences())
	labels := have.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range want.GetLabels() {
		labels[k] = v
	}
	have.SetLabels(labels)
	if err := r.Patch(ctx, have, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("updating %T %s: %w", want, want.GetName(), err)
	}
	return nil
}
