package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/inventory"
	"github.com/orgoperator/org-operator/internal/membership"
)

// OrganizationMemberReconciler keeps one RoleBinding per organization namespace for each member,
// binding it to the ClusterRole of its kubernetesRole, plus the organization-admin binding for admins.
type OrganizationMemberReconciler struct {
	client.Client
	// APIReader reads from the API server, for a RoleBinding the cache has not seen yet.
	APIReader client.Reader
	Recorder  recorder.EventRecorder
	Clock     clock.PassiveClock
}

// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizationmembers,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizationmembers/status,verbs=patch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=rolebindings,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=bind,resourceNames=admin;edit;view;org-operator-organization-admin

// Reconcile brings one member's RoleBindings and status up to date.
func (r *OrganizationMemberReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	member := &tenancyv1alpha1.OrganizationMember{}
	if err := r.Get(ctx, req.NamespacedName, member); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !member.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.reconcileDelete(ctx, member)
	}
	if err := addFinalizer(ctx, r.Client, member, tenancyv1alpha1.MemberFinalizer); err != nil {
		return ctrl.Result{}, err
	}

	before := member.DeepCopy()
	defer func() {
		setReady(&member.Status.Conditions, member.Generation, retErr, tenancyv1alpha1.RoleBindingsReadyCondition)
		setStalled(&member.Status.Conditions, member.Generation)
		if retErr == nil {
			member.Status.ObservedGeneration = member.Generation
			if member.Status.JoinedAt == nil && memberReady(member) {
				now := metav1.NewTime(r.Clock.Now())
				member.Status.JoinedAt = &now
			}
		}
		requeueOnConflict(patchStatusIfChanged(ctx, r.Client, before, member, before.Status, member.Status), &result, &retErr)
	}()

	org, namespaces, reason, err := r.resolveOrganization(ctx, member)
	if err != nil {
		return ctrl.Result{}, err
	}
	if org != nil && !org.DeletionTimestamp.IsZero() {
		// The organization owns the member's bindings, which go with it; deleting them one by
		// one, or rewriting the status of a member whose namespace goes too, would only be writes
		// racing the garbage collector.
		return ctrl.Result{}, nil
	}
	if gone, err := r.namespaceTerminating(ctx, member.Namespace); gone || err != nil {
		// The member goes with its namespace, and its bindings with the organization or the
		// member's finalizer.
		return ctrl.Result{}, err
	}
	var desired []rbacv1.RoleBinding
	if org != nil {
		member.Status.Organization = org.Name
		desired = membership.DesiredRoleBindings(member, org, namespaces)
	} else {
		member.Status.Organization = ""
	}
	changed, err := r.applyRoleBindings(ctx, member, desired)
	if err != nil {
		return ctrl.Result{}, err
	}
	member.Status.BoundNamespaces = boundNamespaces(desired)

	if org == nil {
		if c := meta.FindStatusCondition(member.Status.Conditions, tenancyv1alpha1.RoleBindingsReadyCondition); c == nil || c.Reason != tenancyv1alpha1.OrganizationNotFoundReason {
			r.Recorder.Eventf(member, nil, corev1.EventTypeWarning, tenancyv1alpha1.OrganizationNotFoundReason, "Bind", "%s", reason)
		}
		setCondition(&member.Status.Conditions, member.Generation, tenancyv1alpha1.RoleBindingsReadyCondition, metav1.ConditionFalse,
			tenancyv1alpha1.OrganizationNotFoundReason, reason)
		return ctrl.Result{}, nil
	}
	if changed > 0 {
		r.Recorder.Eventf(member, nil, corev1.EventTypeNormal, tenancyv1alpha1.RoleBindingsAppliedReason, "Bind",
			"Applied %d RoleBinding changes for %s in %d namespaces of %s", changed, membership.Subject(member).Name, len(namespaces), org.Name)
	}
	role, _ := membership.ClusterRoleFor(member.Spec.KubernetesRole)
	msg := fmt.Sprintf("Bound to %s in %d namespaces", role, len(namespaces))
	if member.Spec.KubernetesRole == tenancyv1alpha1.KubernetesRoleNone {
		msg = "No namespace role (kubernetesRole None)"
	}
	if member.Spec.Admin {
		msg += "; organization admin"
	}
	setCondition(&member.Status.Conditions, member.Generation, tenancyv1alpha1.RoleBindingsReadyCondition, metav1.ConditionTrue,
		tenancyv1alpha1.ReconciledReason, msg)
	return ctrl.Result{}, nil
}

// resolveOrganization finds the organization whose home namespace the member is in, and that
// organization's namespaces. With no such organization it returns nil and the reason; with one
// being deleted, the organization and no namespaces.
func (r *OrganizationMemberReconciler) resolveOrganization(ctx context.Context, member *tenancyv1alpha1.OrganizationMember) (*tenancyv1alpha1.Organization, []string, string, error) {
	ns := &corev1.Namespace{}
	if err := r.Get(ctx, types.NamespacedName{Name: member.Namespace}, ns); err != nil {
		return nil, nil, "", client.IgnoreNotFound(err)
	}
	orgName := ns.Labels[tenancyv1alpha1.OrganizationLabel]
	if ns.Labels[tenancyv1alpha1.HomeNamespaceLabel] != "true" || orgName != ns.Name {
		return nil, nil, fmt.Sprintf("Namespace %s is not the home namespace of an organization; members must live in the namespace named after their organization", ns.Name), nil
	}
	org := &tenancyv1alpha1.Organization{}
	if err := r.Get(ctx, types.NamespacedName{Name: orgName}, org); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, fmt.Sprintf("Organization %s does not exist", orgName), nil
		}
		return nil, nil, "", err
	}
	if !org.DeletionTimestamp.IsZero() {
		return org, nil, fmt.Sprintf("Organization %s is being deleted", orgName), nil
	}
	if !metav1.IsControlledBy(ns, org) {
		return nil, nil, fmt.Sprintf("Namespace %s is not owned by organization %s", ns.Name, orgName), nil
	}
	namespaces, err := inventory.OrganizationNamespaces(ctx, r.Client, orgName)
	if err != nil {
		return nil, nil, "", err
	}
	names := namesOf(namespaces, func(n *corev1.Namespace) bool { return n.DeletionTimestamp.IsZero() })
	return org, names, "", nil
}

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
	case !equality.Semantic.DeepEqual(have.Subjects, want.Subjects) || !hasAll(have.Labels, want.Labels) ||
		!slices.Equal(have.OwnerReferences, want.OwnerReferences):
		return func() (int, error) {
			base := have.DeepCopy()
			have.Subjects = want.Subjects
			have.OwnerReferences = want.OwnerReferences
			if have.Labels == nil {
				have.Labels = map[string]string{}
			}
			for k, v := range want.Labels {
				have.Labels[k] = v
			}
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
	if have.RoleRef == want.RoleRef && hasAll(have.Labels, want.Labels) && slices.Equal(have.OwnerReferences, want.OwnerReferences) &&
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

func hasAll(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// ownedRoleBindings lists, from the cache, the RoleBindings made for the member in every namespace.
func (r *OrganizationMemberReconciler) ownedRoleBindings(ctx context.Context, member *tenancyv1alpha1.OrganizationMember) ([]rbacv1.RoleBinding, error) {
	list := &rbacv1.RoleBindingList{}
	if err := r.List(ctx, list, client.MatchingFields{roleBindingMemberIndex: member.Namespace + "/" + member.Name}); err != nil {
		return nil, fmt.Errorf("listing RoleBindings of member: %w", err)
	}
	return list.Items, nil
}

func boundNamespaces(bindings []rbacv1.RoleBinding) []string {
	out := make([]string, 0, len(bindings))
	for _, rb := range bindings {
		out = append(out, rb.Namespace)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) == 0 {
		return nil
	}
	return out
}

// reconcileDelete removes every RoleBinding of the member, then its finalizer.
func (r *OrganizationMemberReconciler) reconcileDelete(ctx context.Context, member *tenancyv1alpha1.OrganizationMember) error {
	if !controllerutil.ContainsFinalizer(member, tenancyv1alpha1.MemberFinalizer) {
		return nil
	}
	gone, err := r.organizationGone(ctx, member.Namespace)
	if err != nil {
		return err
	}
	// When the organization goes too, the garbage collector removes the bindings it owns.
	if !gone {
		if _, err := r.applyRoleBindings(ctx, member, nil); err != nil {
			return err
		}
	}
	if err := removeFinalizer(ctx, r.Client, member, tenancyv1alpha1.MemberFinalizer); err != nil {
		return err
	}
	ctrl.LoggerFrom(ctx).Info("Removed member's RoleBindings")
	return nil
}

// namespaceTerminating says whether a namespace is being deleted.
func (r *OrganizationMemberReconciler) namespaceTerminating(ctx context.Context, name string) (bool, error) {
	ns := &corev1.Namespace{}
	if err := r.Get(ctx, types.NamespacedName{Name: name}, ns); err != nil {
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	}
	return !ns.DeletionTimestamp.IsZero(), nil
}

// organizationGone says whether the organization named after a home namespace is absent or being
// deleted.
func (r *OrganizationMemberReconciler) organizationGone(ctx context.Context, name string) (bool, error) {
	org := &tenancyv1alpha1.Organization{}
	if err := r.Get(ctx, types.NamespacedName{Name: name}, org); err != nil {
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	}
	return !org.DeletionTimestamp.IsZero(), nil
}

// SetupWithManager registers the controller and the watches that map changes to members.
func (r *OrganizationMemberReconciler) SetupWithManager(mgr ctrl.Manager, opts Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&tenancyv1alpha1.OrganizationMember{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, readyChanged()))).
		Watches(&rbacv1.RoleBinding{}, handler.EnqueueRequestsFromMapFunc(roleBindingToMember)).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.namespaceToMembers),
			builder.WithPredicates(namespaceChanged())).
		Watches(&tenancyv1alpha1.Organization{}, handler.EnqueueRequestsFromMapFunc(r.organizationToMembers),
			builder.WithPredicates(organizationLifecycle())).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles}).
		Named("organizationmember").
		Complete(r)
}

func roleBindingToMember(_ context.Context, o client.Object) []reconcile.Request {
	l := o.GetLabels()
	org, member := l[tenancyv1alpha1.OrganizationLabel], l[tenancyv1alpha1.MemberLabel]
	if org == "" || member == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: org, Name: member}}}
}

// namespaceToMembers maps a namespace joining, leaving or becoming an organization's home to every
// member of that organization.
func (r *OrganizationMemberReconciler) namespaceToMembers(ctx context.Context, o client.Object) []reconcile.Request {
	org := o.GetLabels()[tenancyv1alpha1.OrganizationLabel]
	if org == "" {
		return nil
	}
	return r.membersOf(ctx, org)
}

func (r *OrganizationMemberReconciler) organizationToMembers(ctx context.Context, o client.Object) []reconcile.Request {
	return r.membersOf(ctx, o.GetName())
}

func (r *OrganizationMemberReconciler) membersOf(ctx context.Context, homeNamespace string) []reconcile.Request {
	list := &tenancyv1alpha1.OrganizationMemberList{}
	if err := r.List(ctx, list, client.InNamespace(homeNamespace)); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing members to requeue", "namespace", homeNamespace)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, m := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&m)})
	}
	return reqs
}

// organizationLifecycle passes an organization's creation, deletion, and the start of its deletion:
// the moments its members' bindings change.
func organizationLifecycle() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero() ||
				e.ObjectOld.GetUID() != e.ObjectNew.GetUID()
		},
	}
}
