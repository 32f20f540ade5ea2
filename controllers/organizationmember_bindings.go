package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/membership"
	"github.com/orgoperator/org-operator/internal/patch"
)

// maxParallelWrites bounds the RoleBinding writes one member reconcile has in flight.
const maxParallelWrites = 8

// applyRoleBindings makes the member's RoleBindings equal desired: it creates the missing ones,
// fixes changed ones and deletes the rest. The bindings are independent, so their writes run in
// parallel: a member's reconcile then takes about one round trip instead of one per namespace.
// It returns how many writes it made.
func (r *OrganizationMemberReconciler) applyRoleBindings(ctx context.Context, member *tenancyv1alpha1.OrganizationMember, desired []rbacv1.RoleBinding) (int, error) {
	existing, err := r.ownedRoleBindings(ctx, member)
	if err != nil {
		return 0, err
	}
	current := make(map[string]*rbacv1.RoleBinding, len(existing))
	for i := range existing {
		current[membership.Key(&existing[i])] = &existing[i]
	}
	var writes []func() (int, error)
	for i := range desired {
		want := &desired[i]
		key := membership.Key(want)
		have, ok := current[key]
		delete(current, key)
		if w := r.roleBindingWrite(ctx, key, have, ok, want); w != nil {
			writes = append(writes, w)
		}
	}
	for _, rb := range current {
		writes = append(writes, func() (int, error) {
			if err := r.Delete(ctx, rb, client.Preconditions{UID: &rb.UID}); err != nil {
				return 0, client.IgnoreNotFound(err)
			}
			ctrl.LoggerFrom(ctx).V(1).Info("Deleted RoleBinding", "roleBinding", klog.KObj(rb))
			return 1, nil
		})
	}
	return runParallel(writes, maxParallelWrites)
}

// roleBindingWrite returns the write that turns have (if ok) into want, or nil when none is needed.
func (r *OrganizationMemberReconciler) roleBindingWrite(ctx context.Context, key string, have *rbacv1.RoleBinding, ok bool, want *rbacv1.RoleBinding) func() (int, error) {
	log := ctrl.LoggerFrom(ctx)
	switch {
	case !ok:
		return func() (int, error) {
			err := r.Create(ctx, want)
			if apierrors.IsAlreadyExists(err) {
				// Made by an earlier reconcile that the cache has not caught up with, or by
				// someone else: only the latter is an error.
				return 0, r.checkExistingRoleBinding(ctx, key, want)
			}
			if err != nil {
				return 0, err
			}
			log.V(1).Info("Created RoleBinding", "roleBinding", klog.KObj(want))
			return 1, nil
		}
	case have.RoleRef != want.RoleRef:
		return func() (int, error) {
			// roleRef is immutable: replace the binding.
			if err := r.Delete(ctx, have, client.Preconditions{UID: &have.UID}); client.IgnoreNotFound(err) != nil {
				return 0, err
			}
			if err := r.Create(ctx, want); err != nil {
				return 1, err
			}
			log.V(1).Info("Replaced RoleBinding", "roleBinding", klog.KObj(want), "clusterRole", want.RoleRef.Name)
			return 2, nil
		}
	case !equality.Semantic.DeepEqual(have.Subjects, want.Subjects) || !patch.HasLabels(have, want.Labels) ||
		!slices.Equal(have.OwnerReferences, want.OwnerReferences):
		return func() (int, error) {
			base := have.DeepCopy()
			have.Subjects = want.Subjects
			have.OwnerReferences = want.OwnerReferences
			patch.MergeLabels(have, want.Labels)
			if err := r.Patch(ctx, have, client.MergeFrom(base)); err != nil {
				return 0, err
			}
			log.V(1).Info("Updated RoleBinding", "roleBinding", klog.KObj(have))
			return 1, nil
		}
	}
	return nil
}

// checkExistingRoleBinding reads a RoleBinding that a create found existing from the API server
// and accepts it if it is the one the member should have.
func (r *OrganizationMemberReconciler) checkExistingRoleBinding(ctx context.Context, key string, want *rbacv1.RoleBinding) error {
	have := &rbacv1.RoleBinding{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(want), have); err != nil {
		return fmt.Errorf("reading RoleBinding %s: %w", key, err)
	}
	if have.RoleRef == want.RoleRef && patch.HasLabels(have, want.Labels) && slices.Equal(have.OwnerReferences, want.OwnerReferences) &&
		equality.Semantic.DeepEqual(have.Subjects, want.Subjects) {
		return nil
	}
	return fmt.Errorf("RoleBinding %s exists and was not created by org-operator; remove or rename it", key)
}

// runParallel runs writes, at most limit at a time, and returns how many writes they made and
// all their errors.
func runParallel(writes []func() (int, error), limit int) (int, error) {
	var (
		mu     sync.Mutex
		total  int
		errs   []error
		wg     sync.WaitGroup
		tokens = make(chan struct{}, limit)
	)
	for _, write := range writes {
		tokens <- struct{}{}
		wg.Go(func() {
			defer func() { <-tokens }()
			n, err := write()
			mu.Lock()
			defer mu.Unlock()
			total += n
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	return total, errors.Join(errs...)
}

// ownedRoleBindings lists, from the cache, the RoleBindings made for the member in every namespace.
func (r *OrganizationMemberReconciler) ownedRoleBindings(ctx context.Context, member *tenancyv1alpha1.OrganizationMember) ([]rbacv1.RoleBinding, error) {
	list := &rbacv1.RoleBindingList{}
	if err := r.List(ctx, list, client.MatchingFields{roleBindingMemberIndex: member.Namespace + "/" + member.Name}); err != nil {
		return nil, fmt.Errorf("listing RoleBindings of member: %w", err)
	}
	return list.Items, nil
}
