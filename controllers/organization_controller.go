package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
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
	"sigs.k8s.io/controller-runtime/pkg/source"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/inventory"
	"github.com/orgoperator/org-operator/internal/ledger"
	"github.com/orgoperator/org-operator/internal/membership"
	"github.com/orgoperator/org-operator/internal/podcache"
)

// OrganizationReconciler keeps an organization's home namespace and status: its namespaces,
// members and usage.
type OrganizationReconciler struct {
	client.Client
	// APIReader reads from the API server, for pods the cache has not seen.
	APIReader client.Reader
	Recorder  recorder.EventRecorder
	// Clock tells the time for subscription boundaries.
	Clock clock.PassiveClock
	// QuotaLedger settles the quota ledger the pod webhook charges; see Options.
	QuotaLedger bool
	// Pods is the compact pod cache.
	Pods *podcache.Cache
}

// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizations,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizations/status,verbs=patch
// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizations/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=pods;services;persistentvolumeclaims,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one organization's home namespace and status up to date.
func (r *OrganizationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	org := &tenancyv1alpha1.Organization{}
	if err := r.Get(ctx, req.NamespacedName, org); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !org.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, org)
	}
	if err := addFinalizer(ctx, r.Client, org, tenancyv1alpha1.OrganizationFinalizer); err != nil {
		return ctrl.Result{}, err
	}

	before := org.DeepCopy()
	defer func() {
		setReady(&org.Status.Conditions, org.Generation, retErr,
			tenancyv1alpha1.NamespacesReadyCondition, tenancyv1alpha1.MembersReadyCondition, tenancyv1alpha1.QuotasReadyCondition)
		setStalled(&org.Status.Conditions, org.Generation)
		if retErr == nil {
			org.Status.ObservedGeneration = org.Generation
		}
		requeueOnConflict(patchStatusIfChanged(ctx, r.Client, before, org, before.Status, org.Status), &result, &retErr)
	}()

	namespaces, err := r.reconcileHomeNamespace(ctx, org)
	if err != nil {
		return ctrl.Result{}, err
	}
	members, err := r.observeMembers(ctx, org)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.reconcileReaderAccess(ctx, org, members); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.observeUsage(ctx, org, namespaces); err != nil {
		return ctrl.Result{}, err
	}
	plan, untilNextBoundary, err := r.reconcileSubscription(ctx, org)
	if err != nil {
		return ctrl.Result{}, err
	}
	untilLedgerCheck, err := r.reconcileQuotas(ctx, org, plan, namespaces)
	if err != nil {
		return ctrl.Result{}, err
	}
	// Subscriptions change state, and reservations fall due, at known moments: come back
	// exactly then, not before.
	return ctrl.Result{RequeueAfter: earliest(untilNextBoundary, untilLedgerCheck)}, nil
}

// reconcileHomeNamespace creates the organization's home namespace or checks that the existing
// one is its own, sets NamespacesReady, and returns the organization's namespaces, sorted.
func (r *OrganizationReconciler) reconcileHomeNamespace(ctx context.Context, org *tenancyv1alpha1.Organization) ([]string, error) {
	log := ctrl.LoggerFrom(ctx)
	labelled, err := inventory.OrganizationNamespaces(ctx, r.Client, org.Name)
	if err != nil {
		return nil, err
	}
	notReady := func(reason, msg string) ([]string, error) {
		org.Status.HomeNamespace = ""
		setCondition(&org.Status.Conditions, org.Generation, tenancyv1alpha1.NamespacesReadyCondition, metav1.ConditionFalse, reason, msg)
		names := namesOf(labelled, func(ns *corev1.Namespace) bool { return ns.Name != org.Name })
		org.Status.Namespaces = names
		return names, nil
	}

	if tenancyv1alpha1.IsReservedName(org.Name) {
		return notReady(tenancyv1alpha1.ReservedNameReason,
			fmt.Sprintf("The name %q is reserved for the system; recreate the organization under another name", org.Name))
	}

	home := &corev1.Namespace{}
	err = r.Get(ctx, types.NamespacedName{Name: org.Name}, home)
	switch {
	case apierrors.IsNotFound(err):
		home = newHomeNamespace(org)
		if err := r.Create(ctx, home); err != nil {
			return nil, fmt.Errorf("creating home namespace %s: %w", org.Name, err)
		}
		log.Info("Created home namespace", "namespace", klog.KObj(home))
		r.Recorder.Eventf(org, home, corev1.EventTypeNormal, tenancyv1alpha1.NamespaceCreatedReason, "Create",
			"Created home namespace %s", home.Name)
		labelled = append(labelled, *home)
	case err != nil:
		return nil, err
	case !metav1.IsControlledBy(home, org):
		if meta.IsStatusConditionFalse(org.Status.Conditions, tenancyv1alpha1.NamespacesReadyCondition) &&
			meta.FindStatusCondition(org.Status.Conditions, tenancyv1alpha1.NamespacesReadyCondition).Reason == tenancyv1alpha1.NameCollisionReason {
			// Already reported; the event is emitted once, on the transition.
		} else {
			r.Recorder.Eventf(org, home, corev1.EventTypeWarning, tenancyv1alpha1.NameCollisionReason, "Create",
				"Namespace %s exists and does not belong to this organization", home.Name)
		}
		return notReady(tenancyv1alpha1.NameCollisionReason,
			fmt.Sprintf("Namespace %s already exists and is not owned by this organization; delete it or recreate the organization under another name", org.Name))
	case !home.DeletionTimestamp.IsZero():
		return notReady(tenancyv1alpha1.ProgressingReason,
			fmt.Sprintf("Waiting for the old home namespace %s to finish terminating", org.Name))
	default:
		if err := r.ensureHomeLabels(ctx, org, home); err != nil {
			return nil, err
		}
	}

	org.Status.HomeNamespace = home.Name
	names := namesOf(labelled, func(*corev1.Namespace) bool { return true })
	if !slices.Contains(names, home.Name) {
		names = append(names, home.Name)
		slices.Sort(names)
	}
	org.Status.Namespaces = names
	setCondition(&org.Status.Conditions, org.Generation, tenancyv1alpha1.NamespacesReadyCondition, metav1.ConditionTrue,
		tenancyv1alpha1.ReconciledReason, fmt.Sprintf("%d namespaces", len(names)))
	return names, nil
}

func newHomeNamespace(org *tenancyv1alpha1.Organization) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: org.Name, Labels: homeLabels(org.Name)}}
	// Organization is in the scheme and the namespace has no owner yet: this cannot fail.
	_ = controllerutil.SetControllerReference(org, ns, scheme())
	return ns
}

func homeLabels(org string) map[string]string {
	return map[string]string{
		tenancyv1alpha1.OrganizationLabel:  org,
		tenancyv1alpha1.HomeNamespaceLabel: "true",
		tenancyv1alpha1.ManagedByLabel:     tenancyv1alpha1.ManagedByValue,
	}
}

// ensureHomeLabels restores the home namespace's labels if someone removed or changed them.
func (r *OrganizationReconciler) ensureHomeLabels(ctx context.Context, org *tenancyv1alpha1.Organization, home *corev1.Namespace) error {
	want := homeLabels(org.Name)
	missing := false
	for k, v := range want {
		if home.Labels[k] != v {
			missing = true
		}
	}
	if !missing {
		return nil
	}
	base := home.DeepCopy()
	if home.Labels == nil {
		home.Labels = map[string]string{}
	}
	for k, v := range want {
		home.Labels[k] = v
	}
	if err := r.Patch(ctx, home, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("restoring labels of home namespace %s: %w", home.Name, err)
	}
	ctrl.LoggerFrom(ctx).Info("Restored home namespace labels", "namespace", klog.KObj(home))
	return nil
}

func namesOf(namespaces []corev1.Namespace, keep func(*corev1.Namespace) bool) []string {
	names := make([]string, 0, len(namespaces))
	for i := range namespaces {
		if keep(&namespaces[i]) {
			names = append(names, namespaces[i].Name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// reconcileDelete applies the deletion policy, then releases the organization. It never waits for
// namespaces to finish terminating, so a cluster without a namespace controller cannot hang it.
func (r *OrganizationReconciler) reconcileDelete(ctx context.Context, org *tenancyv1alpha1.Organization) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(org, tenancyv1alpha1.OrganizationFinalizer) {
		return ctrl.Result{}, nil
	}
	log := ctrl.LoggerFrom(ctx)
	labelled, err := inventory.OrganizationNamespaces(ctx, r.Client, org.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	home := &corev1.Namespace{}
	if err := r.Get(ctx, types.NamespacedName{Name: org.Name}, home); err == nil && metav1.IsControlledBy(home, org) {
		labelled = append(labelled, *home)
	} else if client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, err
	}
	// A namespace can appear twice: the home namespace carries the organization label too.
	namespaces := slices.CompactFunc(sortedByName(labelled), func(a, b corev1.Namespace) bool { return a.Name == b.Name })

	var toDelete []corev1.Namespace
	switch org.Spec.DeletionPolicy {
	case tenancyv1alpha1.DeletionPolicyCascade:
		toDelete = namespaces
	default:
		blocking, err := inventory.Blocking(ctx, r.Client, r.Pods, namesOf(namespaces, func(*corev1.Namespace) bool { return true }))
		if err != nil {
			return ctrl.Result{}, err
		}
		if len(blocking) > 0 {
			msg := "Deletion blocked by deletionPolicy Block until these are removed: " + strings.Join(blocking, "; ")
			before := org.DeepCopy()
			if !meta.IsStatusConditionFalse(org.Status.Conditions, tenancyv1alpha1.ReadyCondition) ||
				meta.FindStatusCondition(org.Status.Conditions, tenancyv1alpha1.ReadyCondition).Reason != tenancyv1alpha1.DeletionBlockedReason {
				r.Recorder.Eventf(org, nil, corev1.EventTypeWarning, tenancyv1alpha1.DeletionBlockedReason, "Delete", "%s", msg)
			}
			setCondition(&org.Status.Conditions, org.Generation, tenancyv1alpha1.ReadyCondition, metav1.ConditionFalse,
				tenancyv1alpha1.DeletionBlockedReason, msg)
			setStalled(&org.Status.Conditions, org.Generation)
			// Deletion bumps the generation; this status describes it.
			org.Status.ObservedGeneration = org.Generation
			log.Info("Deletion blocked", "blocking", blocking)
			// Watches on pods, workloads and claims bring the organization back when they go.
			return ctrl.Result{}, patchStatusIfChanged(ctx, r.Client, before, org, before.Status, org.Status)
		}
		// Namespaces that joined by label belong to whoever labelled them; only the home namespace goes.
		for _, ns := range namespaces {
			if metav1.IsControlledBy(&ns, org) {
				toDelete = append(toDelete, ns)
			}
		}
	}

	for i := range toDelete {
		ns := &toDelete[i]
		if !ns.DeletionTimestamp.IsZero() {
			continue
		}
		if err := r.Delete(ctx, ns, client.Preconditions{UID: &ns.UID}); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, fmt.Errorf("deleting namespace %s: %w", ns.Name, err)
		}
		log.Info("Deleted namespace", "namespace", klog.KObj(ns), "deletionPolicy", org.Spec.DeletionPolicy)
		r.Recorder.Eventf(org, ns, corev1.EventTypeNormal, tenancyv1alpha1.DeletingReason, "Delete", "Deleted namespace %s", ns.Name)
	}

	if err := removeFinalizer(ctx, r.Client, org, tenancyv1alpha1.OrganizationFinalizer); err != nil {
		return ctrl.Result{}, err
	}
	log.Info("Released organization", "deletionPolicy", org.Spec.DeletionPolicy)
	return ctrl.Result{}, nil
}

func sortedByName(namespaces []corev1.Namespace) []corev1.Namespace {
	slices.SortFunc(namespaces, func(a, b corev1.Namespace) int { return strings.Compare(a.Name, b.Name) })
	return namespaces
}

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
	b := ctrl.NewControllerManagedBy(mgr).
		For(&tenancyv1alpha1.Organization{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, ledger.ChargeAdded()))).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(namespaceToOrganizations),
			builder.WithPredicates(namespaceChanged())).
		Watches(&tenancyv1alpha1.OrganizationMember{}, toOrganizationSoon, builder.WithPredicates(memberChangedForOrganization())).
		Owns(&rbacv1.ClusterRole{}).
		Owns(&corev1.ResourceQuota{}).
		Owns(&corev1.LimitRange{}).
		Watches(&tenancyv1alpha1.OrganizationPlan{}, handler.EnqueueRequestsFromMapFunc(r.planToOrganizations)).
		Owns(&rbacv1.ClusterRoleBinding{}).
		WatchesRawSource(&source.Informer{Informer: r.Pods.Informer(), Handler: toOrganizationSoon,
			Predicates: []predicate.Predicate{podUsageChanged()}}).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles})
	for _, kind := range []client.Object{&appsv1.Deployment{}, &appsv1.StatefulSet{}, &corev1.Service{}} {
		b = b.Watches(kind, toOrganization, builder.OnlyMetadata, builder.WithPredicates(createdOrDeleted()))
	}
	// Claims are cached whole: the quota ledger charges their storage.
	b = b.Watches(&corev1.PersistentVolumeClaim{}, toOrganization, builder.WithPredicates(claimUsageChanged()))
	return b.Named("organization").Complete(r)
}

// burstDelay is how long member and pod events wait before they reconcile their organization.
const burstDelay = time.Second

// enqueueAfter maps an object to requests, as handler.EnqueueRequestsFromMapFunc does, and adds
// them after delay. A request already waiting keeps its earlier time, so events within the delay
// fold into one reconcile.
func enqueueAfter(delay time.Duration, fn handler.MapFunc) handler.EventHandler {
	add := func(ctx context.Context, o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		for _, req := range fn(ctx, o) {
			q.AddAfter(req, delay)
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.ObjectNew, q)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
	}
}

// memberChangedForOrganization passes the member events that change what the organization
// reports: creation, deletion, its start, and a change of spec.admin, of the user (the reader
// binding's subject) or of Ready.
func memberChangedForOrganization() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*tenancyv1alpha1.OrganizationMember)
			n, ok2 := e.ObjectNew.(*tenancyv1alpha1.OrganizationMember)
			if !ok1 || !ok2 {
				return true
			}
			return o.Spec.Admin != n.Spec.Admin || memberReady(o) != memberReady(n) ||
				membership.Subject(o) != membership.Subject(n) ||
				o.DeletionTimestamp.IsZero() != n.DeletionTimestamp.IsZero()
		},
	}
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
	ns := &corev1.Namespace{}
	if err := c.Get(ctx, types.NamespacedName{Name: namespace}, ns); err != nil {
		return nil
	}
	if org := ns.Labels[tenancyv1alpha1.OrganizationLabel]; org != "" {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: org}}}
	}
	return nil
}

// namespaceChanged passes namespace events that change membership: creation, deletion, the
// organization label, the owner, and the start of termination.
func namespaceChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, n := e.ObjectOld, e.ObjectNew
			return o.GetLabels()[tenancyv1alpha1.OrganizationLabel] != n.GetLabels()[tenancyv1alpha1.OrganizationLabel] ||
				o.GetLabels()[tenancyv1alpha1.HomeNamespaceLabel] != n.GetLabels()[tenancyv1alpha1.HomeNamespaceLabel] ||
				o.GetDeletionTimestamp().IsZero() != n.GetDeletionTimestamp().IsZero() ||
				len(o.GetOwnerReferences()) != len(n.GetOwnerReferences())
		},
	}
}

// podUsageChanged passes pod events that change usage: creation, deletion, a move to or from a
// terminal phase, and a change of resources (in-place resize).
func podUsageChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*podcache.Pod)
			n, ok2 := e.ObjectNew.(*podcache.Pod)
			if !ok1 || !ok2 {
				return true
			}
			return o.Terminal != n.Terminal || o.Requests != n.Requests || o.Limits != n.Limits
		},
	}
}

// claimUsageChanged passes claim events that change usage: creation, deletion and a change of
// the storage it counts (an expansion).
func claimUsageChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*corev1.PersistentVolumeClaim)
			n, ok2 := e.ObjectNew.(*corev1.PersistentVolumeClaim)
			return !ok1 || !ok2 || ledger.ClaimVersion(o) != ledger.ClaimVersion(n)
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
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
