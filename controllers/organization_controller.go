package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/conditions"
	"github.com/orgoperator/org-operator/internal/inventory"
	"github.com/orgoperator/org-operator/internal/metering"
	"github.com/orgoperator/org-operator/internal/patch"
	"github.com/orgoperator/org-operator/internal/podcache"
	"github.com/orgoperator/org-operator/internal/tenancy"
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
	// Meter follows the pods for metering; no usage reports without it.
	Meter *metering.Tracker
	// CheckpointInterval is the least time between two writes of an organization's usage
	// report; DefaultCheckpointInterval if zero.
	CheckpointInterval time.Duration
	// ReportRetention is how long usage reports are kept after their period; DefaultReportRetention if zero.
	ReportRetention time.Duration
	// SettleDelay is how far a usage report's checkpoints trail the clock, so that pod starts
	// and ends reported late still fall after them; DefaultSettleDelay if zero.
	SettleDelay time.Duration

	// lostRaces carries organizations whose status write lost a race back into their burst of
	// events; see retryLostRace.
	lostRaces chan event.GenericEvent
}

// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizations,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizations/status,verbs=patch
// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizations/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=pods;services;persistentvolumeclaims,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// organizationPhase is one step of an organization's reconcile, in the order of Reconcile.
type organizationPhase func(ctx context.Context, s *organizationScope) error

// Reconcile brings one organization's home namespace and status up to date: it reads the scope,
// runs the phases in order and writes the status once, on every path.
func (r *OrganizationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	org := &tenancyv1alpha1.Organization{}
	if err := r.Get(ctx, req.NamespacedName, org); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	deleting := !org.DeletionTimestamp.IsZero()
	if deleting && !controllerutil.ContainsFinalizer(org, tenancyv1alpha1.OrganizationFinalizer) {
		return ctrl.Result{}, nil
	}
	if !deleting {
		if err := patch.AddFinalizer(ctx, r.Client, org, tenancyv1alpha1.OrganizationFinalizer); err != nil {
			return ctrl.Result{}, err
		}
	}
	// Taken after the finalizer's write: the status patch is locked to this resourceVersion.
	before := org.DeepCopy()
	s, err := r.newScope(ctx, org)
	defer func() {
		retErr = r.updateStatus(ctx, s, retErr)
		if s.homeCreated && retErr == nil {
			// The home namespace's creation event, debounced with the member events that follow
			// it, brings the organization back soon: that reconcile writes the status for both.
			return
		}
		written := patch.StatusIfChanged(ctx, r.Client, before, org, before.Status, org.Status)
		if written == nil {
			s.announcements.Emit()
		}
		patch.RequeueOnConflict(written, &result, &retErr)
		if result.RequeueAfter == patch.ConflictRetry {
			result.RequeueAfter = r.retryLostRace(org)
		}
	}()
	if err != nil {
		return ctrl.Result{}, err
	}
	if deleting {
		return ctrl.Result{}, r.reconcileDelete(ctx, s)
	}
	err = runPhases(ctx, s, r.reconcileHomeNamespace, r.reconcileOwner, r.reconcileProjects, r.observeUsage, r.reconcileMetering, r.reconcileMembers, r.reconcileQuotas, r.reportProjects)
	// Subscriptions change state, and reservations fall due, at known moments: come back
	// exactly then, not before.
	return ctrl.Result{RequeueAfter: s.requeueAfter()}, err
}

// runPhases runs the phases in order. An error stops them; a stalled error (one only a person
// can fix) does not, since the phases after it do not depend on it.
func runPhases(ctx context.Context, s *organizationScope, phases ...organizationPhase) error {
	var stalled error
	for _, phase := range phases {
		err := phase(ctx, s)
		if _, ok := conditions.AsStalled(err); ok {
			if stalled == nil {
				stalled = err
			}
			continue
		}
		if err != nil {
			return err
		}
	}
	return stalled
}

// reconcileDelete applies the deletion policy, then releases the organization. It never waits for
// namespaces to finish terminating, so a cluster without a namespace controller cannot hang it.
func (r *OrganizationReconciler) reconcileDelete(ctx context.Context, s *organizationScope) error {
	log := ctrl.LoggerFrom(ctx)
	org := s.org
	namespaces := s.namespaces
	if s.home != nil && tenancy.IsHome(s.home, org) && !s.home.DeletionTimestamp.IsZero() {
		namespaces = append(namespaces, *s.home) // terminating, but what it holds still blocks
	}
	var toDelete []corev1.Namespace
	switch org.Spec.DeletionPolicy {
	case tenancyv1alpha1.DeletionPolicyCascade:
		toDelete = namespaces
	default:
		blocking, err := inventory.Blocking(ctx, r.Client, r.Pods, namesOf(namespaces, nil))
		if err != nil {
			return err
		}
		if len(blocking) > 0 {
			// Watches on pods, workloads and claims bring the organization back when they go.
			s.deletionBlocked = blocking
			log.Info("Deletion blocked", "blocking", blocking)
			return nil
		}
		// Namespaces that joined by label belong to whoever labelled them; only those the operator
		// made, the home namespace and the projects', go.
		for _, ns := range namespaces {
			if metav1.IsControlledBy(&ns, org) {
				toDelete = append(toDelete, ns)
			}
		}
	}
	for i := range toDelete {
		if err := r.deleteNamespace(ctx, org, &toDelete[i]); err != nil {
			return err
		}
	}
	if err := patch.RemoveFinalizer(ctx, r.Client, org, tenancyv1alpha1.OrganizationFinalizer); err != nil {
		return err
	}
	log.Info("Released organization", "deletionPolicy", org.Spec.DeletionPolicy)
	return nil
}

func (r *OrganizationReconciler) deleteNamespace(ctx context.Context, org *tenancyv1alpha1.Organization, ns *corev1.Namespace) error {
	if !ns.DeletionTimestamp.IsZero() {
		return nil
	}
	if err := r.Delete(ctx, ns, client.Preconditions{UID: &ns.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting namespace %s: %w", ns.Name, err)
	}
	ctrl.LoggerFrom(ctx).Info("Deleted namespace", "namespace", klog.KObj(ns), "deletionPolicy", org.Spec.DeletionPolicy)
	r.Recorder.Eventf(org, ns, corev1.EventTypeNormal, tenancyv1alpha1.DeletingReason, "Delete", "Deleted namespace %s", ns.Name)
	return nil
}

// deletionBlockedMessage says what keeps an organization with deletionPolicy Block.
func deletionBlockedMessage(blocking []string) string {
	return "Deletion blocked by deletionPolicy Block until these are removed: " + strings.Join(blocking, "; ")
}
