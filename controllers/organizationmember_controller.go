package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/types"
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
	"github.com/orgoperator/org-operator/internal/conditions"
	"github.com/orgoperator/org-operator/internal/inventory"
	"github.com/orgoperator/org-operator/internal/membership"
	"github.com/orgoperator/org-operator/internal/patch"
	"github.com/orgoperator/org-operator/internal/tenancy"
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

// memberScope is what one reconcile of a member knows and did.
type memberScope struct {
	member *tenancyv1alpha1.OrganizationMember
	// org is the organization whose home namespace the member is in; nil when there is none.
	org        *tenancyv1alpha1.Organization
	namespaces []string
	// settled: the organization or the member's namespace is going, and the member's bindings with
	// them; nothing is written.
	settled bool
	// bound are the RoleBindings the member has, once applied; changed counts the writes.
	bound   []rbacv1.RoleBinding
	applied bool
	changed int
}

// Reconcile brings one member's RoleBindings and status up to date.
func (r *OrganizationMemberReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	member := &tenancyv1alpha1.OrganizationMember{}
	if err := r.Get(ctx, req.NamespacedName, member); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !member.DeletionTimestamp.IsZero() {
		// The member's status is moot while it goes: only its bindings and finalizer are written.
		return ctrl.Result{}, r.reconcileDelete(ctx, member)
	}
	if err := patch.AddFinalizer(ctx, r.Client, member, tenancyv1alpha1.MemberFinalizer); err != nil {
		return ctrl.Result{}, err
	}
	s := &memberScope{member: member}
	before := member.DeepCopy()
	defer func() {
		retErr = r.updateStatus(s, retErr)
		patch.RequeueOnConflict(patch.StatusIfChanged(ctx, r.Client, before, member, before.Status, member.Status), &result, &retErr)
	}()
	return ctrl.Result{}, r.reconcileBindings(ctx, s)
}

// reconcileBindings applies the RoleBindings the member should have in its organization's
// namespaces: none when it is in no organization, which is a stalled error.
func (r *OrganizationMemberReconciler) reconcileBindings(ctx context.Context, s *memberScope) error {
	notFound, err := r.resolveOrganization(ctx, s)
	if err != nil || s.settled {
		return err
	}
	var desired []rbacv1.RoleBinding
	if s.org != nil {
		desired = membership.DesiredRoleBindings(s.member, s.org, s.namespaces)
	}
	if s.changed, err = r.applyRoleBindings(ctx, s.member, desired); err != nil {
		return err
	}
	s.bound, s.applied = desired, true
	if s.org == nil {
		return conditions.Stalled(tenancyv1alpha1.OrganizationNotFoundReason, "%s", notFound)
	}
	if s.changed > 0 {
		r.Recorder.Eventf(s.member, nil, corev1.EventTypeNormal, tenancyv1alpha1.RoleBindingsAppliedReason, "Bind",
			"Applied %d RoleBinding changes for %s in %d namespaces of %s", s.changed, membership.Subject(s.member).Name, len(s.namespaces), s.org.Name)
	}
	return nil
}

// resolveOrganization finds the organization whose home namespace the member is in, and that
// organization's namespaces. With no such organization it says why; with one being deleted, or
// the member's namespace terminating, the scope is settled.
func (r *OrganizationMemberReconciler) resolveOrganization(ctx context.Context, s *memberScope) (string, error) {
	resolver := tenancy.Resolver{Reader: r.Client}
	place, err := resolver.Namespace(ctx, s.member.Namespace)
	if err != nil {
		return "", err
	}
	if place.Namespace == nil || !place.Namespace.DeletionTimestamp.IsZero() {
		// The member goes with its namespace, and its bindings with the organization or the
		// member's finalizer.
		s.settled = true
		return "", nil
	}
	if !place.Home {
		return fmt.Sprintf("Namespace %s is not the home namespace of an organization; members must live in the namespace named after their organization", s.member.Namespace), nil
	}
	org, err := resolver.Organization(ctx, place.Organization)
	switch {
	case err != nil:
		return "", err
	case org == nil:
		return fmt.Sprintf("Organization %s does not exist", place.Organization), nil
	case !org.DeletionTimestamp.IsZero():
		// The organization owns the member's bindings, which go with it; deleting them one by
		// one, or rewriting the status of a member whose namespace goes too, would only be writes
		// racing the garbage collector.
		s.settled = true
		return "", nil
	case !tenancy.IsHome(place.Namespace, org):
		return fmt.Sprintf("Namespace %s is not owned by organization %s", s.member.Namespace, org.Name), nil
	}
	namespaces, err := inventory.OrganizationNamespaces(ctx, r.Client, org.Name)
	if err != nil {
		return "", err
	}
	s.org, s.namespaces = org, namesOf(namespaces, notTerminating)
	return "", nil
}

// reconcileDelete removes every RoleBinding of the member, then its finalizer.
func (r *OrganizationMemberReconciler) reconcileDelete(ctx context.Context, member *tenancyv1alpha1.OrganizationMember) error {
	if !controllerutil.ContainsFinalizer(member, tenancyv1alpha1.MemberFinalizer) {
		return nil
	}
	org, err := tenancy.Resolver{Reader: r.Client}.Organization(ctx, member.Namespace)
	if err != nil {
		return err
	}
	// When the organization goes too, the garbage collector removes the bindings it owns.
	if org != nil && org.DeletionTimestamp.IsZero() {
		if _, err := r.applyRoleBindings(ctx, member, nil); err != nil {
			return err
		}
	}
	if err := patch.RemoveFinalizer(ctx, r.Client, member, tenancyv1alpha1.MemberFinalizer); err != nil {
		return err
	}
	ctrl.LoggerFrom(ctx).Info("Removed member's RoleBindings")
	return nil
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
