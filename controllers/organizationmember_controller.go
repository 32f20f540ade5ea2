package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
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
	"github.com/orgoperator/org-operator/internal/patch"
	"github.com/orgoperator/org-operator/internal/tenancy"
)

// OrganizationMemberReconciler looks after the members that no organization reconciles: those in
// a namespace that is not the home of an existing organization get a status saying so, and those
// whose organization or namespace is going are released. The members of an organization are
// bound, and their status written, by the organization's reconcile (reconcileMembers).
type OrganizationMemberReconciler struct {
	client.Client
	Recorder recorder.EventRecorder
}

// Reconcile reports or releases one member that has no organization to look after it.
func (r *OrganizationMemberReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	member := &tenancyv1alpha1.OrganizationMember{}
	if err := r.Get(ctx, req.NamespacedName, member); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	orphan, err := r.orphaned(ctx, member)
	if err != nil || orphan == nil {
		return ctrl.Result{}, err
	}
	if !member.DeletionTimestamp.IsZero() {
		// Its bindings, if any are left, go with the organization that owns them.
		if !controllerutil.ContainsFinalizer(member, tenancyv1alpha1.MemberFinalizer) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, patch.RemoveFinalizer(ctx, r.Client, member, tenancyv1alpha1.MemberFinalizer)
	}
	if orphan.settled {
		return ctrl.Result{}, nil
	}
	before := member.DeepCopy()
	var held conditions.Announcements
	setMemberStalled(member, orphan.stalled, r.Recorder, &held)
	var result ctrl.Result
	written := patch.StatusIfChanged(ctx, r.Client, before, member, before.Status, member.Status)
	if written == nil {
		held.Emit() // a write that conflicts is computed again, and would announce twice
	}
	patch.RequeueOnConflict(written, &result, &err)
	return result, err
}

// orphan is why no organization looks after a member.
type orphan struct {
	// stalled says why the member is in no organization.
	stalled *conditions.StalledError
	// settled: the organization or the member's namespace is going, and the member with it;
	// only its finalizer is left to remove.
	settled bool
}

// orphaned returns nil when an organization that is not being deleted has the member's namespace
// as its home: that organization's reconcile looks after the member.
func (r *OrganizationMemberReconciler) orphaned(ctx context.Context, member *tenancyv1alpha1.OrganizationMember) (*orphan, error) {
	resolver := tenancy.Resolver{Reader: r.Client}
	place, err := resolver.Namespace(ctx, member.Namespace)
	if err != nil {
		return nil, err
	}
	if place.Namespace == nil || !place.Namespace.DeletionTimestamp.IsZero() {
		return &orphan{settled: true}, nil
	}
	notFound := func(format string, args ...any) *orphan {
		return &orphan{stalled: &conditions.StalledError{Reason: tenancyv1alpha1.OrganizationNotFoundReason, Message: fmt.Sprintf(format, args...)}}
	}
	if !place.Home {
		return notFound("Namespace %s is not the home namespace of an organization; members must live in the namespace named after their organization", member.Namespace), nil
	}
	org, err := resolver.Organization(ctx, place.Organization)
	switch {
	case err != nil:
		return nil, err
	case org == nil:
		return notFound("Organization %s does not exist", place.Organization), nil
	case !org.DeletionTimestamp.IsZero():
		return &orphan{settled: true}, nil
	case !tenancy.IsHome(place.Namespace, org):
		return notFound("Namespace %s is not owned by organization %s", member.Namespace, org.Name), nil
	}
	return nil, nil
}

// SetupWithManager registers the controller and the watches that map changes to members.
func (r *OrganizationMemberReconciler) SetupWithManager(mgr ctrl.Manager, opts Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&tenancyv1alpha1.OrganizationMember{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.membersOfHome),
			builder.WithPredicates(namespaceChanged())).
		Watches(&tenancyv1alpha1.Organization{}, handler.EnqueueRequestsFromMapFunc(r.membersOfHome),
			builder.WithPredicates(organizationLifecycle())).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles}).
		Named("organizationmember").
		Complete(r)
}

// membersOfHome maps a namespace, or the organization named after it, to the members in that
// namespace: an organization's home namespace bears its name.
func (r *OrganizationMemberReconciler) membersOfHome(ctx context.Context, o client.Object) []reconcile.Request {
	homeNamespace := o.GetName()
	list := &tenancyv1alpha1.OrganizationMemberList{}
	if err := r.List(ctx, list, client.InNamespace(homeNamespace)); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing members to requeue", "namespace", homeNamespace)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, m := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: m.Namespace, Name: m.Name}})
	}
	return reqs
}

// organizationLifecycle passes an organization's creation, deletion, and the start of its deletion:
// the moments a member passes between the organization's care and this controller's.
func organizationLifecycle() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero() ||
				e.ObjectOld.GetUID() != e.ObjectNew.GetUID()
		},
	}
}
