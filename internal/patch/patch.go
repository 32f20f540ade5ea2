// Package patch writes what reconcilers change on their own objects: status, only when it
// changed, and finalizers, both under an optimistic lock.
package patch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
)

// StatusIfChanged writes the status subresource only when oldStatus and newStatus differ, so that
// a reconcile that finds nothing to do makes no write.
func StatusIfChanged(ctx context.Context, c client.Client, before, obj client.Object, oldStatus, newStatus any) error {
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

// ConflictRetry is how soon an object whose status write lost a race to another writer (the pod
// webhook charging the quota ledger, a user, the previous reconcile's write not yet in the cache)
// is reconciled again, from a fresh cache.
const ConflictRetry = 100 * time.Millisecond

// RequeueOnConflict folds the status write's error into the reconcile's outcome: a conflict is
// expected and retried soon and quietly, anything else is returned for the rate limiter and logs.
func RequeueOnConflict(writeErr error, result *ctrl.Result, retErr *error) {
	switch {
	case writeErr == nil:
	case apierrors.IsConflict(writeErr) && *retErr == nil:
		*result = ctrl.Result{RequeueAfter: ConflictRetry}
	default:
		*retErr = errors.Join(*retErr, writeErr)
	}
}

// AddFinalizer adds a finalizer with an optimistic lock, so that finalizers others add at the same
// time are never lost. It writes nothing when the finalizer is there.
func AddFinalizer(ctx context.Context, c client.Client, obj client.Object, finalizer string) error {
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

// RemoveFinalizer removes a finalizer with an optimistic lock; an object already gone is fine.
func RemoveFinalizer(ctx context.Context, c client.Client, obj client.Object, finalizer string) error {
	base := obj.DeepCopyObject().(client.Object)
	controllerutil.RemoveFinalizer(obj, finalizer)
	return client.IgnoreNotFound(c.Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})))
}
