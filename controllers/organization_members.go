package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/conditions"
	"github.com/orgoperator/org-operator/internal/membership"
	"github.com/orgoperator/org-operator/internal/patch"
)

// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizationmembers,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizationmembers/status,verbs=patch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=rolebindings,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=bind,resourceNames=admin;edit;view;org-operator-organization-admin

// maxParallelWrites bounds the writes one reconcile has in flight: RoleBindings of different
// namespaces, or members, are independent, and a reconcile then takes a few round trips instead
// of one per object.
const maxParallelWrites = 8

// collisionRecheck is how often an organization whose binding names someone else holds looks
// again whether they are free.
const collisionRecheck = 30 * time.Second

// reconcileMembers gives the organization's members their access: one RoleBinding per namespace
// and ClusterRole lists every member that holds it (membership.Plan), the reader
// ClusterRoleBinding lists them all, and each member's status says what it is bound to. A member
// being deleted is released only once no binding lists it.
func (r *OrganizationReconciler) reconcileMembers(ctx context.Context, s *organizationScope) error {
	if err := r.addMemberFinalizers(ctx, s.members); err != nil {
		return err
	}
	current, err := r.organizationRoleBindings(ctx, s.org.Name)
	if err != nil {
		return err
	}
	var home []rbacv1.RoleBinding
	for _, rb := range current {
		if rb.Namespace == s.org.Name && !membership.IsLegacy(&rb) {
			home = append(home, rb)
		}
	}
	bindable := s.bindableMembers()
	access := membership.Plan(bindable, home)
	projects := s.projectAccess(bindable, current)
	terminating := map[string]bool{}
	for _, ns := range s.namespaces {
		if !notTerminating(&ns) {
			terminating[ns.Name] = true
		}
	}
	orgWide := slices.DeleteFunc(s.activeNamespaces(), func(ns string) bool {
		return slices.ContainsFunc(projects, func(pa projectAccess) bool { return pa.namespace == ns })
	})
	desired := access.RoleBindings(s.org, orgWide)
	for _, pa := range projects {
		desired = append(desired, pa.access.RoleBindings(s.org, []string{pa.namespace})...)
	}
	// A binding someone else holds the name of is left alone and reported; the others are applied.
	collisions := r.applyRoleBindings(ctx, s.org, current, desired, terminating)
	if _, stalled := conditions.AsStalled(collisions); collisions != nil && !stalled {
		return collisions
	} else if stalled {
		// The operator caches only its own bindings: the one in the way going makes no event.
		s.lookAgainAfter = collisionRecheck
	}
	if err := r.reconcileReaderAccess(ctx, s, bindable); err != nil {
		return err
	}
	if err := r.releaseMembers(ctx, s.members); err != nil {
		return err
	}
	if err := r.updateMemberStatuses(ctx, s, access, projects); err != nil {
		return err
	}
	return collisions
}

// bindableMembers are the members the organization binds: all but the service accounts whose
// namespace is not one of its own (any more), which would carry its rights out of it.
func (s *organizationScope) bindableMembers() []tenancyv1alpha1.OrganizationMember {
	return slices.DeleteFunc(slices.Clone(s.members), func(m tenancyv1alpha1.OrganizationMember) bool { return s.outside(&m) })
}

// outside says whether m is a service account of a namespace that is not the organization's.
func (s *organizationScope) outside(m *tenancyv1alpha1.OrganizationMember) bool {
	sa := m.Spec.ServiceAccount
	return sa != nil && !slices.ContainsFunc(s.namespaces, func(ns corev1.Namespace) bool { return ns.Name == sa.Namespace })
}

// projectAccess plans the access of each project that gives roles of its own and has its
// namespace, from the bindings that namespace has now (current holds the organization's).
func (s *organizationScope) projectAccess(members []tenancyv1alpha1.OrganizationMember, current []rbacv1.RoleBinding) []projectAccess {
	var out []projectAccess
	for i := range s.projects {
		p := &s.projects[i]
		ns, roles := s.projectOutcomes[p.Name].namespace, projectRoles(p)
		if ns == "" || roles == nil {
			continue
		}
		var here []rbacv1.RoleBinding
		for _, rb := range current {
			if rb.Namespace == ns && !membership.IsLegacy(&rb) {
				here = append(here, rb)
			}
		}
		out = append(out, projectAccess{project: p, namespace: ns, roles: roles, access: membership.PlanProject(members, roles, here)})
	}
	return out
}

// organizationRoleBindings lists, from the cache, the RoleBindings the operator made for the
// organization in any namespace, the per-member ones of the older model among them.
func (r *OrganizationReconciler) organizationRoleBindings(ctx context.Context, org string) ([]rbacv1.RoleBinding, error) {
	list := &rbacv1.RoleBindingList{}
	if err := r.List(ctx, list, client.MatchingFields{roleBindingOrganizationIndex: org}); err != nil {
		return nil, fmt.Errorf("listing RoleBindings of organization: %w", err)
	}
	return list.Items, nil
}

// applyRoleBindings makes the organization's RoleBindings equal desired, leaving terminating
// namespaces alone. Writes that give access go first and those that only take it away after
// them, so that a member whose role changes, and every member while per-member bindings are
// replaced by shared ones, is never without access in between.
func (r *OrganizationReconciler) applyRoleBindings(ctx context.Context, org *tenancyv1alpha1.Organization, current, desired []rbacv1.RoleBinding, terminating map[string]bool) error {
	have := make(map[string]*rbacv1.RoleBinding, len(current))
	var legacy []*rbacv1.RoleBinding
	for i := range current {
		rb := &current[i]
		switch {
		case terminating[rb.Namespace]:
		case membership.IsLegacy(rb):
			// Only the organization's own: anyone who may edit a binding may also label it.
			if ownedBy(rb, org) {
				legacy = append(legacy, rb)
			}
		default:
			have[membership.Key(rb)] = rb
		}
	}
	var gains, losses []func() error
	var collisions []string
	for i := range desired {
		want := &desired[i]
		key := membership.Key(want)
		h, ok := have[key]
		delete(have, key)
		switch {
		case !ok:
			gains = append(gains, func() error { return r.createRoleBinding(ctx, org, want) })
		case !metav1.IsControlledBy(h, org):
			collisions = append(collisions, key)
		case h.RoleRef != want.RoleRef:
			gains = append(gains, func() error { return r.replaceRoleBinding(ctx, h, want) })
		case !equality.Semantic.DeepEqual(h.Subjects, want.Subjects) || !patch.HasLabels(h, want.Labels):
			write := func() error { return r.patchRoleBinding(ctx, h, want) }
			if gainsSubjects(h.Subjects, want.Subjects) {
				gains = append(gains, write)
			} else {
				losses = append(losses, write)
			}
		}
	}
	for _, rb := range have {
		if metav1.IsControlledBy(rb, org) {
			losses = append(losses, func() error { return r.deleteRoleBinding(ctx, rb) })
		}
	}
	for _, rb := range legacy {
		losses = append(losses, func() error { return r.deleteRoleBinding(ctx, rb) })
	}
	if err := runParallel(gains, maxParallelWrites); err != nil {
		return err
	}
	if err := runParallel(losses, maxParallelWrites); err != nil {
		return err
	}
	if len(collisions) > 0 {
		return collisionError(collisions...)
	}
	return nil
}

// collisionError reports RoleBindings whose names the organization needs and someone else holds.
func collisionError(keys ...string) error {
	return conditions.Stalled(tenancyv1alpha1.NameCollisionReason,
		"RoleBindings %s exist and were not made by org-operator for this organization; remove or rename them", strings.Join(keys, ", "))
}

// ownedBy says whether obj has an owner reference to org.
func ownedBy(obj metav1.Object, org *tenancyv1alpha1.Organization) bool {
	return slices.ContainsFunc(obj.GetOwnerReferences(), func(ref metav1.OwnerReference) bool { return ref.UID == org.UID })
}

// gainsSubjects says whether want lists a subject that have does not.
func gainsSubjects(have, want []rbacv1.Subject) bool {
	return slices.ContainsFunc(want, func(s rbacv1.Subject) bool { return !slices.Contains(have, s) })
}

func (r *OrganizationReconciler) createRoleBinding(ctx context.Context, org *tenancyv1alpha1.Organization, want *rbacv1.RoleBinding) error {
	err := r.Create(ctx, want.DeepCopy())
	if apierrors.IsAlreadyExists(err) {
		// Made by an earlier reconcile the cache has not caught up with, or by someone else: the
		// API server says which, and the binding's event brings the organization back.
		have := &rbacv1.RoleBinding{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(want), have); err != nil {
			return fmt.Errorf("reading RoleBinding %s: %w", membership.Key(want), err)
		}
		if !metav1.IsControlledBy(have, org) {
			return collisionError(membership.Key(want))
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating RoleBinding %s: %w", membership.Key(want), err)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Created RoleBinding", "roleBinding", klog.KObj(want), "subjects", len(want.Subjects))
	return nil
}

// replaceRoleBinding deletes and recreates a binding whose roleRef, which is immutable, changed.
func (r *OrganizationReconciler) replaceRoleBinding(ctx context.Context, have, want *rbacv1.RoleBinding) error {
	if err := r.deleteRoleBinding(ctx, have); err != nil {
		return err
	}
	if err := r.Create(ctx, want.DeepCopy()); err != nil {
		return fmt.Errorf("creating RoleBinding %s: %w", membership.Key(want), err)
	}
	return nil
}

func (r *OrganizationReconciler) patchRoleBinding(ctx context.Context, have, want *rbacv1.RoleBinding) error {
	rb := have.DeepCopy()
	rb.Subjects = want.Subjects
	patch.MergeLabels(rb, want.Labels)
	if err := r.Patch(ctx, rb, client.MergeFrom(have)); err != nil {
		return fmt.Errorf("updating RoleBinding %s: %w", membership.Key(want), err)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Updated RoleBinding", "roleBinding", klog.KObj(rb), "subjects", len(rb.Subjects))
	return nil
}

func (r *OrganizationReconciler) deleteRoleBinding(ctx context.Context, rb *rbacv1.RoleBinding) error {
	if err := r.Delete(ctx, rb, client.Preconditions{UID: &rb.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting RoleBinding %s: %w", membership.Key(rb), err)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Deleted RoleBinding", "roleBinding", klog.KObj(rb))
	return nil
}

// addMemberFinalizers adds the member finalizer to members that do not have it yet, before they
// are bound: a member is then never deleted while a binding still lists it.
func (r *OrganizationReconciler) addMemberFinalizers(ctx context.Context, members []tenancyv1alpha1.OrganizationMember) error {
	var writes []func() error
	for i := range members {
		m := &members[i]
		if m.DeletionTimestamp.IsZero() && !controllerutil.ContainsFinalizer(m, tenancyv1alpha1.MemberFinalizer) {
			writes = append(writes, func() error { return patch.AddFinalizer(ctx, r.Client, m, tenancyv1alpha1.MemberFinalizer) })
		}
	}
	return runParallel(writes, maxParallelWrites)
}

// releaseMembers removes the finalizer of members being deleted, once the bindings no longer list them.
func (r *OrganizationReconciler) releaseMembers(ctx context.Context, members []tenancyv1alpha1.OrganizationMember) error {
	var writes []func() error
	for i := range members {
		m := &members[i]
		if !m.DeletionTimestamp.IsZero() && controllerutil.ContainsFinalizer(m, tenancyv1alpha1.MemberFinalizer) {
			writes = append(writes, func() error {
				if err := patch.RemoveFinalizer(ctx, r.Client, m, tenancyv1alpha1.MemberFinalizer); err != nil {
					return err
				}
				ctrl.LoggerFrom(ctx).Info("Removed member's access", "member", klog.KObj(m))
				return nil
			})
		}
	}
	return runParallel(writes, maxParallelWrites)
}

// updateMemberStatuses writes the status of each member whose access or conditions changed.
func (r *OrganizationReconciler) updateMemberStatuses(ctx context.Context, s *organizationScope, access membership.Access, projects []projectAccess) error {
	var writes []func() error
	for i := range s.members {
		m := &s.members[i]
		if !m.DeletionTimestamp.IsZero() {
			continue
		}
		before := m.DeepCopy()
		var held conditions.Announcements
		if s.outside(m) {
			setMemberOutside(m, s.org.Name, r.Recorder, &held)
		} else {
			setMemberBound(m, s.org.Name, access.Of(m), projectsOf(m, projects), s.now, r.Recorder, &held)
		}
		if equality.Semantic.DeepEqual(before.Status, m.Status) {
			continue
		}
		writes = append(writes, func() error {
			err := patch.StatusIfChanged(ctx, r.Client, before, m, before.Status, m.Status)
			if err == nil {
				held.Emit()
			}
			if apierrors.IsConflict(err) {
				// Written from a stale copy: the reconcile comes back soon, on fresh data.
				s.memberConflict.Store(true)
				return nil
			}
			return err
		})
	}
	return runParallel(writes, maxParallelWrites)
}
