package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

var ownScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(tenancyv1alpha1.AddToScheme(s))
	return s
}()

// scheme knows the built-in kinds and this operator's; owner references are computed from it.
func scheme() *runtime.Scheme { return ownScheme }

// setCondition sets a condition for the given generation, keeping its transition time when the
// status does not change.
func setCondition(conds *[]metav1.Condition, generation int64, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: generation,
	})
}

// setReady summarises the given conditions into Ready: False with the first failing condition's
// reason and message, True when all are True. A reconcile error makes Ready False with
// ReconcileError, unless a more specific reason (such as DeletionBlocked) already says why.
func setReady(conds *[]metav1.Condition, generation int64, reconcileErr error, dependsOn ...string) {
	if reconcileErr != nil {
		setCondition(conds, generation, tenancyv1alpha1.ReadyCondition, metav1.ConditionFalse,
			tenancyv1alpha1.ReconcileErrorReason, truncate(reconcileErr.Error()))
		return
	}
	for _, t := range dependsOn {
		c := meta.FindStatusCondition(*conds, t)
		if c == nil {
			setCondition(conds, generation, tenancyv1alpha1.ReadyCondition, metav1.ConditionUnknown,
				tenancyv1alpha1.ProgressingReason, fmt.Sprintf("%s not yet determined", t))
			return
		}
		if c.Status != metav1.ConditionTrue {
			setCondition(conds, generation, tenancyv1alpha1.ReadyCondition, c.Status, c.Reason, c.Message)
			return
		}
	}
	setCondition(conds, generation, tenancyv1alpha1.ReadyCondition, metav1.ConditionTrue,
		tenancyv1alpha1.ReconciledReason, "Reconciled")
}

// stalledReasons are the Ready reasons that no retry can fix: someone must change something.
var stalledReasons = map[string]bool{
	tenancyv1alpha1.NameCollisionReason:              true,
	tenancyv1alpha1.ReservedNameReason:               true,
	tenancyv1alpha1.OrganizationNotFoundReason:       true,
	string(tenancyv1alpha1.SubscriptionPlanNotFound): true,
}

// setStalled keeps the Stalled condition in step with Ready: present and True while Ready is
// False for a reason no retry can fix, absent otherwise (as kstatus expects).
func setStalled(conds *[]metav1.Condition, generation int64) {
	ready := meta.FindStatusCondition(*conds, tenancyv1alpha1.ReadyCondition)
	if ready == nil || ready.Status != metav1.ConditionFalse || !stalledReasons[ready.Reason] {
		meta.RemoveStatusCondition(conds, tenancyv1alpha1.StalledCondition)
		return
	}
	setCondition(conds, generation, tenancyv1alpha1.StalledCondition, metav1.ConditionTrue, ready.Reason, ready.Message)
}

// Condition messages are bounded by the API (32768); errors from the API server can be long.
func truncate(s string) string {
	const max = 1024
	if len(s) > max {
		return s[:max-3] + "..."
	}
	return s
}

// patchStatusIfChanged writes the status subresource only when oldStatus and newStatus differ, so
// that a reconcile that finds nothing to do makes no write.
func patchStatusIfChanged(ctx context.Context, c client.Client, before, obj client.Object, oldStatus, newStatus any) error {
	if equality.Semantic.DeepEqual(oldStatus, newStatus) {
		return nil
	}
	// The optimistic lock makes a patch computed against a stale cached copy conflict instead of
	// silently leaving out a field whose new value equals the stale one; the returned conflict
	// makes the reconcile run again on fresh data.
	if err := c.Status().Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return client.IgnoreNotFound(err)
	}
	return nil
}

// conflictRetry is how soon an object whose status write lost a race to another writer (the pod
// webhook charging the quota ledger, a user, the previous reconcile's write not yet in the cache)
// is reconciled again, from a fresh cache.
const conflictRetry = 100 * time.Millisecond

// requeueOnConflict folds the status write's error into the reconcile's outcome: a conflict is
// expected and retried soon and quietly, anything else is returned for the rate limiter and logs.
func requeueOnConflict(writeErr error, result *ctrl.Result, retErr *error) {
	switch {
	case writeErr == nil:
	case apierrors.IsConflict(writeErr) && *retErr == nil:
		*result = ctrl.Result{RequeueAfter: conflictRetry}
	default:
		*retErr = errors.Join(*retErr, writeErr)
	}
}

// addFinalizer adds a finalizer with an optimistic lock, so that finalizers others add at the same
// time are never lost. It writes nothing when the finalizer is there.
func addFinalizer(ctx context.Context, c client.Client, obj client.Object, finalizer string) error {
	if controllerutil.ContainsFinalizer(obj, finalizer) {
		return nil
	}
	base := obj.DeepCopyObject().(client.Object)
	controllerutil.AddFinalizer(obj, finalizer)
	if err := c.Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("adding finalizer: %w", err)
	}
	return nil
}

// removeFinalizer removes a finalizer with an optimistic lock; an object already gone is fine.
func removeFinalizer(ctx context.Context, c client.Client, obj client.Object, finalizer string) error {
	base := obj.DeepCopyObject().(client.Object)
	controllerutil.RemoveFinalizer(obj, finalizer)
	return client.IgnoreNotFound(c.Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})))
}

// readyChanged passes updates that change an object's Ready condition, its own status writes
// included. The reconcile that follows compares against the status as stored: if the write was
// made from a stale cache (a later reconcile saw the world as it was before an earlier write), the
// difference shows and is fixed, instead of waiting for the next change. When all is in place it
// reads the cache and writes nothing.
func readyChanged() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(conditioned)
			n, ok2 := e.ObjectNew.(conditioned)
			if !ok1 || !ok2 {
				return false
			}
			a := meta.FindStatusCondition(o.GetConditions(), tenancyv1alpha1.ReadyCondition)
			b := meta.FindStatusCondition(n.GetConditions(), tenancyv1alpha1.ReadyCondition)
			return (a == nil) != (b == nil) || (a != nil && (a.Status != b.Status || a.Reason != b.Reason || a.Message != b.Message))
		},
	}
}

// conditioned objects expose their status conditions.
type conditioned interface {
	GetConditions() []metav1.Condition
}
