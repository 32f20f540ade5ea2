package ledger

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

// Settle folds the reservations of objects the caches have seen into the ledger's observed usage,
// and drops those whose object was never stored; l is the organization's ledger, namespaces its
// namespaces and hard what the ledger enforces. It returns the ledger to write and how long until
// a reservation left needs another look (zero if none remain). The status patch that carries the
// result must hold an optimistic lock, so that a charge a webhook made meanwhile makes it
// conflict, not vanish.
func Settle(ctx context.Context, h Holdings, apiReader client.Reader, l *tenancyv1alpha1.QuotaLedger, namespaces []string,
	hard corev1.ResourceList, now time.Time) (*tenancyv1alpha1.QuotaLedger, time.Duration, error) {
	holdings, err := h.List(ctx, namespaces, settledKinds(l, hard))
	if err != nil {
		return nil, 0, err
	}
	observed, seen := Observe(holdings)
	settled, next, err := Rebase(l, observed, seen, now, func(res tenancyv1alpha1.QuotaReservation) (bool, error) {
		return storedAsCharged(ctx, apiReader, res)
	})
	if err != nil {
		return nil, 0, fmt.Errorf("settling the quota ledger: %w", err)
	}
	var after time.Duration
	if !next.IsZero() {
		after = max(next.Sub(now), time.Second)
	}
	return settled, after, nil
}

// settledKinds are the kinds to list: those hard limits, and those of the reservations left (the
// quota may have changed since they were charged).
func settledKinds(l *tenancyv1alpha1.QuotaLedger, hard corev1.ResourceList) []Kind {
	kinds := KindsOf(hard)
	if l != nil {
		for _, r := range l.Reservations {
			if k := KindOf(r); !slices.Contains(kinds, k) {
				kinds = append(kinds, k)
			}
		}
	}
	return kinds
}

// ChargeAdded passes updates of an organization in which a webhook charged something to its
// ledger, so that the charge is settled, or checked when its object does not show up. The
// controller's own ledger writes only remove reservations and pass nothing.
func ChargeAdded() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*tenancyv1alpha1.Organization)
			n, ok2 := e.ObjectNew.(*tenancyv1alpha1.Organization)
			if !ok1 || !ok2 {
				return false
			}
			newLedger := n.Status.Quotas.LedgerOrNil()
			if newLedger == nil {
				return false
			}
			had := map[types.UID]bool{}
			if l := o.Status.Quotas.LedgerOrNil(); l != nil {
				for _, r := range l.Reservations {
					had[r.UID] = true
				}
			}
			for _, r := range newLedger.Reservations {
				if !had[r.UID] {
					return true
				}
			}
			return false
		},
	}
}
