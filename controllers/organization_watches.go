package controllers

import (
	"context"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	"sigs.k8s.io/controller-runtime/pkg/source"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/ledger"
	"github.com/orgoperator/org-operator/internal/patch"
	"github.com/orgoperator/org-operator/internal/podcache"
	"github.com/orgoperator/org-operator/internal/tenancy"
)

// SetupWithManager registers the controller and the watches that map changes back to one
// organization.
func (r *OrganizationReconciler) SetupWithManager(mgr ctrl.Manager, opts Options) error {
	toOrganization := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		return organizationOfNamespace(ctx, r.Client, o.GetNamespace())
	})
	// Members and pods change in bursts (an organization's members created together, a
	// Deployment scaled): their events reach the organization after a short delay, so that a
	// burst makes one reconcile and one status write instead of one per object.
	toOrganizationSoon := enqueueAfter(burstDelay, func(ctx context.Context, o client.Object) []reconcile.Request {
		return organizationOfNamespace(ctx, r.Client, o.GetNamespace())
	})
	// A large organization's member events wait longer: each reconcile then rewrites bindings that
	// list every member, and a stream of new members folds into fewer rewrites. A member or
	// project changed or deleted is not held back by a stream: it may take access away.
	// One debouncer for members, projects and bindings: their events fold into one reconcile
	// once the burst is over.
	bursts := newDebouncer(clock.RealClock{})
	r.lostRaces = make(chan event.GenericEvent, lostRaceBuffer)
	toOrganizationBySize := enqueueDebouncedRemovalsSoon(bursts, r.memberBurstDelay, func(ctx context.Context, o client.Object) []reconcile.Request {
		return organizationOfNamespace(ctx, r.Client, o.GetNamespace())
	})
	b := ctrl.NewControllerManagedBy(mgr).
		For(&tenancyv1alpha1.Organization{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, ledger.ChargeAdded()))).
		// Namespaces created together (an organization's namespaces applied at once, its home
		// namespace just made) fold with its member burst into one reconcile. A namespace that
		// leaves or terminates reconciles at once: its bindings go without delay.
		Watches(&corev1.Namespace{}, enqueueCreationsDebounced(bursts, r.memberBurstDelay, namespaceToOrganizations),
			builder.WithPredicates(namespaceChanged())).
		Watches(&tenancyv1alpha1.OrganizationMember{}, toOrganizationBySize, builder.WithPredicates(memberChangedForOrganization())).
		// Projects created together (a GitOps sync) fold into one reconcile, as members do; the
		// organization's own status writes on them do not change their generation.
		Watches(&tenancyv1alpha1.OrganizationProject{}, toOrganizationBySize, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// The organization's own role and binding writes come back as events: folded like member
		// events, so that a burst of members arriving makes one rewrite of each shared binding
		// after it, not one per member. An edit by someone else is repaired as late.
		Watches(&rbacv1.ClusterRole{}, enqueueDebounced(bursts, r.memberBurstDelay, controllingOrganization)).
		Watches(&rbacv1.RoleBinding{}, enqueueDebounced(bursts, r.memberBurstDelay, controllingOrganization)).
		Owns(&corev1.ResourceQuota{}).
		Owns(&corev1.LimitRange{}).
		// The organization's own status writes on its reports do not change their generation.
		Owns(&tenancyv1alpha1.OrganizationUsageReport{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&tenancyv1alpha1.OrganizationPlan{}, handler.EnqueueRequestsFromMapFunc(r.planToOrganizations)).
		Watches(&rbacv1.ClusterRoleBinding{}, enqueueDebounced(bursts, r.memberBurstDelay, controllingOrganization)).
		WatchesRawSource(source.Channel(r.lostRaces, enqueueDebounced(bursts, r.memberBurstDelay, func(_ context.Context, o client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(o)}}
		}))).
		WatchesRawSource(&source.Informer{Informer: r.Pods.Informer(), Handler: toOrganizationSoon,
			Predicates: []predicate.Predicate{podUsageChanged()}}).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles})
	// Jobs and CronJobs are counted only by deletionPolicy Block: their going wakes a blocked deletion.
	for _, kind := range []client.Object{&appsv1.Deployment{}, &appsv1.StatefulSet{}, &corev1.Service{}, &batchv1.Job{}, &batchv1.CronJob{}} {
		b = b.Watches(kind, toOrganization, builder.OnlyMetadata, builder.WithPredicates(createdOrDeleted()))
	}
	// Claims are cached whole: the quota ledger charges their storage.
	b = b.Watches(&corev1.PersistentVolumeClaim{}, toOrganization, builder.WithPredicates(claimUsageChanged()))
	return b.Named("organization").Complete(r)
}

// memberChangedForOrganization passes the member events that change the organization's bindings
// or the member's status: creation, deletion, its start, a change of spec, and the loss of the
// finalizer the organization keeps on its members. The organization's own status writes on the
// member do not pass.
func memberChangedForOrganization() predicate.Predicate {
	return changedOnUpdate(func(o, n *tenancyv1alpha1.OrganizationMember) bool {
		return o.Generation != n.Generation || o.DeletionTimestamp.IsZero() != n.DeletionTimestamp.IsZero() ||
			controllerutil.ContainsFinalizer(o, tenancyv1alpha1.MemberFinalizer) && !controllerutil.ContainsFinalizer(n, tenancyv1alpha1.MemberFinalizer)
	})
}

// membersPerBurstDelay and maxMemberBurstDelay scale the delay of member events: one burstDelay
// more per membersPerBurstDelay members, at most maxMemberBurstDelay.
const (
	membersPerBurstDelay = 250
	maxMemberBurstDelay  = 5 * time.Second
)

// memberBurstDelay is how quiet an organization's member events must be before it reconciles:
// the burst delay, longer for organizations with many members (as their status last counted
// them). A stream of events waits at most maxBurstWait, or this delay when longer.
func (r *OrganizationReconciler) memberBurstDelay(ctx context.Context, req reconcile.Request) time.Duration {
	org := &tenancyv1alpha1.Organization{}
	if err := r.Get(ctx, req.NamespacedName, org); err != nil {
		return burstDelay
	}
	return burstDelayFor(org)
}

func burstDelayFor(org *tenancyv1alpha1.Organization) time.Duration {
	return min(burstDelay*time.Duration(1+org.Status.MemberCount/membersPerBurstDelay), maxMemberBurstDelay)
}

// lostRaceBuffer is how many lost races can wait to join their bursts; beyond it they come back
// after conflictRetry.
const lostRaceBuffer = 1024

// conflictRetry is how soon an organization whose status write lost a race comes back. A large
// organization's writes race the member webhook's admission records at every member created: it
// comes back after its burst delay, so that a stream of members does not turn each lost race
// into another rewrite of its shared bindings.
func conflictRetry(org *tenancyv1alpha1.Organization) time.Duration {
	if d := burstDelayFor(org); d > burstDelay {
		return d
	}
	return patch.ConflictRetry
}

// retryLostRace schedules the reconcile of an organization whose status write lost a race, and
// returns the requeue delay, if any. While its members arrive the race is with the member
// webhook's admission records: the retry joins their burst and runs once it is over, instead of
// racing the next record. Without room in the channel it comes back after conflictRetry.
func (r *OrganizationReconciler) retryLostRace(org *tenancyv1alpha1.Organization) time.Duration {
	select {
	case r.lostRaces <- event.GenericEvent{Object: org}:
		return 0
	default:
		return conflictRetry(org)
	}
}

// controllingOrganization maps an object to the Organization that controls it.
func controllingOrganization(_ context.Context, o client.Object) []reconcile.Request {
	ref := metav1.GetControllerOf(o)
	if ref == nil || ref.Kind != "Organization" || !strings.HasPrefix(ref.APIVersion, tenancyv1alpha1.GroupVersion.Group+"/") {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: ref.Name}}}
}

// namespaceToOrganizations maps a namespace to the organization it is labelled into and to the
// organization named after it (whose home namespace it is or collides with).
func namespaceToOrganizations(_ context.Context, o client.Object) []reconcile.Request {
	reqs := []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.GetName()}}}
	if org := o.GetLabels()[tenancyv1alpha1.OrganizationLabel]; org != "" && org != o.GetName() {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: org}})
	}
	return reqs
}

// organizationOfNamespace maps an object in a namespace to the namespace's organization, if any.
func organizationOfNamespace(ctx context.Context, c client.Client, namespace string) []reconcile.Request {
	place, err := tenancy.Resolver{Reader: c}.Namespace(ctx, namespace)
	if err != nil || place.Organization == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: place.Organization}}}
}

// podUsageChanged passes pod events that change usage: creation, deletion, a move to or from a
// terminal phase, a change of resources (in-place resize), and its start and end (metering).
func podUsageChanged() predicate.Predicate {
	return changedOnUpdate(func(o, n *podcache.Pod) bool {
		return o.Terminal != n.Terminal || o.Requests != n.Requests || o.Limits != n.Limits || o.Start != n.Start || o.End != n.End
	})
}

// claimUsageChanged passes claim events that change usage: creation, deletion and a change of
// the storage it counts (an expansion).
func claimUsageChanged() predicate.Predicate {
	return changedOnUpdate(func(o, n *corev1.PersistentVolumeClaim) bool {
		return ledger.ClaimVersion(o) != ledger.ClaimVersion(n)
	})
}

// createdOrDeleted passes only creations and deletions: counts are all usage reads from these kinds.
func createdOrDeleted() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc:  func(event.UpdateEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// planToOrganizations maps a plan to the organizations subscribed to it.
func (r *OrganizationReconciler) planToOrganizations(ctx context.Context, o client.Object) []reconcile.Request {
	orgs := &tenancyv1alpha1.OrganizationList{}
	if err := r.List(ctx, orgs, client.MatchingFields{organizationPlanIndex: o.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing organizations of plan", "plan", o.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(orgs.Items))
	for _, org := range orgs.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: org.Name}})
	}
	return reqs
}
