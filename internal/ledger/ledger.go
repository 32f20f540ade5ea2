// Package ledger enforces organization-wide quotas exactly. It keeps each organization's account
// (status.quotas.ledger): the usage the operator has observed, plus what the admission webhooks
// admitted since. The webhooks charge each object (a pod, a claim, a Deployment, ...) through a
// Charger before the API server stores it; the controller Settles the charges into the observed
// usage once its caches see the objects. Both write the ledger with a compare-and-swap on the
// organization, so no charge is lost and no two admissions take the same headroom.
//
// resources.go says what is charged and how much each object uses; holdings.go lists what an
// organization's namespaces hold; charger.go and settle.go write the ledger.
package ledger

import (
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/resourcelist"
)

// ReservationTimeout is how long a charge waits for its object (or its resize) to be stored after
// the webhook wrote it. Past it, a charge that the API server does not show is taken for one that
// a later step of the request refused (another admission check, the storage), and no longer
// counts. The API server stores an object within milliseconds of the webhook's answer; the webhook
// refuses itself what the namespace's ResourceQuotas would refuse, the commonest later refusal.
// Times are stored rounded up to the second, so a refused charge counts for 2 to 3 seconds.
const ReservationTimeout = 2 * time.Second

// Holding is one object an organization holds, as far as the ledger counts it.
type Holding struct {
	Kind            Kind
	Namespace, Name string
	UID             types.UID
	// Version is what a resize's reservation waits for: a pod's generation, a claim's storage in
	// bytes; 0 for the counted kinds.
	Version int64
	// Usage is what the object uses; nil for a pod that no longer does (Succeeded or Failed).
	Usage corev1.ResourceList
}

// Observe sums the usage of the holdings and returns all of them, using something or not: a
// reservation whose object is among them is settled.
func Observe(holdings []Holding) (corev1.ResourceList, Seen) {
	out := corev1.ResourceList{}
	seen := make(Seen, len(holdings))
	for _, h := range holdings {
		seen[h.UID] = h.Version
		resourcelist.Add(out, h.Usage)
	}
	return resourcelist.Canonical(out), seen
}

// Seen is the version of each object a list shows, by UID.
type Seen map[types.UID]int64

// Settles says whether the objects seen account for a reservation: they hold its object, at the
// version its resize gave the object for a resize.
func (s Seen) Settles(r tenancyv1alpha1.QuotaReservation) bool {
	uid, version := Reserved(r)
	v, ok := s[uid]
	return ok && v >= version
}

// Recount is what an organization uses according to a list of what it holds, rather than its
// ledger's observed usage: the holdings listed, plus the reservations that the list does not
// settle and that are younger than ReservationTimeout (their object may still be on its way).
func Recount(l *tenancyv1alpha1.QuotaLedger, holdings []Holding, now time.Time) corev1.ResourceList {
	used, seen := Observe(holdings)
	out := used.DeepCopy()
	if l != nil {
		for _, r := range l.Reservations {
			if !seen.Settles(r) && now.Before(r.Time.Add(ReservationTimeout)) {
				resourcelist.Add(out, r.Usage)
			}
		}
	}
	return out
}

// Used is what the ledger counts: the observed usage plus every reservation.
func Used(l *tenancyv1alpha1.QuotaLedger) corev1.ResourceList {
	if l == nil {
		return corev1.ResourceList{}
	}
	out := corev1.ResourceList{}
	resourcelist.Add(out, l.Observed)
	for _, r := range l.Reservations {
		resourcelist.Add(out, r.Usage)
	}
	return out
}

// ExceededError says which resources an object would take past the organization's quota, in the
// words of the API server's own quota admission.
type ExceededError struct {
	Organization             string
	Requested, Used, Limited corev1.ResourceList
}

func (e *ExceededError) Error() string {
	return fmt.Sprintf("exceeded organization quota: %s, requested: %s, used: %s, limited: %s",
		e.Organization, resourcelist.Format(e.Requested), resourcelist.Format(e.Used), resourcelist.Format(e.Limited))
}

// Check returns an ExceededError if an object using adds does not fit in hard next to used.
// Resources the object does not use are not checked, as in ResourceQuota: a pod without memory
// requests is admitted by an organization at its memory limit.
func Check(org string, hard, used, adds corev1.ResourceList) error {
	e := &ExceededError{Organization: org, Requested: corev1.ResourceList{}, Used: corev1.ResourceList{}, Limited: corev1.ResourceList{}}
	for name, limit := range hard {
		c, ok := chargeOf(name)
		if !ok {
			continue
		}
		key := c.key
		need, ok := adds[key]
		if !ok || need.IsZero() {
			continue
		}
		after := used[key].DeepCopy()
		after.Add(need)
		if after.Cmp(limit) > 0 {
			e.Requested[name] = need
			e.Used[name] = used[key]
			e.Limited[name] = limit
		}
	}
	if len(e.Limited) > 0 {
		return e
	}
	return nil
}

// MaxReservations is how many objects may wait to be seen at once, as the API bounds
// status.quotas.ledger.reservations.
const MaxReservations = 1000

// ErrBusy says the ledger holds as many reservations as it can: the caller should retry shortly.
var ErrBusy = errors.New("too many objects of this organization are being created at once; retry shortly")

// Reserve charges r to the ledger if it fits in hard next to used, what the organization uses
// (Used of the ledger, or a Recount), and returns the ledger to write and what is used with r. A
// charge already reserved is admitted again without a second charge: admission may be retried. A
// reservation under the same key with another usage (a resize tried again differently after a
// refusal) is replaced, and checked as if both counted.
func Reserve(org string, l *tenancyv1alpha1.QuotaLedger, used, hard corev1.ResourceList, r tenancyv1alpha1.QuotaReservation) (*tenancyv1alpha1.QuotaLedger, corev1.ResourceList, error) {
	if l == nil {
		l = &tenancyv1alpha1.QuotaLedger{}
	}
	i := slices.IndexFunc(l.Reservations, func(have tenancyv1alpha1.QuotaReservation) bool { return have.UID == r.UID })
	if i >= 0 && equality.Semantic.DeepEqual(resourcelist.Canonical(l.Reservations[i].Usage), resourcelist.Canonical(r.Usage)) {
		return l, used, nil
	}
	if err := Check(org, hard, used, r.Usage); err != nil {
		return l, used, err
	}
	if i < 0 && len(l.Reservations) >= MaxReservations {
		return l, used, ErrBusy
	}
	// The input stays untouched: the caller may still decide against it. Reservations are never
	// modified in place, so sharing them is safe.
	out := *l
	if i >= 0 {
		out.Reservations = slices.Clone(l.Reservations)
		out.Reservations[i] = r
	} else {
		out.Reservations = append(slices.Clip(l.Reservations), r)
	}
	after := used.DeepCopy()
	if after == nil {
		after = corev1.ResourceList{}
	}
	resourcelist.Add(after, r.Usage)
	return &out, after, nil
}

// Covering returns observed with a zero for every resource of hard it lacks, under the name the
// ledger charges, so that the ledger shows what it counts even before anything exists.
func Covering(observed, hard corev1.ResourceList) corev1.ResourceList {
	out := observed.DeepCopy()
	if out == nil {
		out = corev1.ResourceList{}
	}
	for name := range hard {
		if c, ok := chargeOf(name); ok {
			if _, have := out[c.key]; !have {
				out[c.key] = resource.MustParse("0")
			}
		}
	}
	return out
}

// Rebase returns the ledger with observed as its observed usage and without the reservations that
// are settled: seen settles them, or their object (or resize) was never stored. exists tells
// whether a reservation's object is stored as the reservation charged it; it is asked only for reservations
// older than ReservationTimeout. Rebase also returns when the oldest remaining reservation reaches
// that age (zero if none remain), so the caller can come back exactly then.
func Rebase(l *tenancyv1alpha1.QuotaLedger, observed corev1.ResourceList, seen Seen, now time.Time,
	exists func(tenancyv1alpha1.QuotaReservation) (bool, error)) (*tenancyv1alpha1.QuotaLedger, time.Time, error) {
	out := &tenancyv1alpha1.QuotaLedger{Observed: resourcelist.Canonical(observed)}
	var next time.Time
	if l == nil {
		return out, next, nil
	}
	for _, r := range l.Reservations {
		if seen.Settles(r) {
			continue
		}
		due := r.Time.Add(ReservationTimeout)
		if !now.Before(due) {
			stored, err := exists(r)
			if err != nil {
				return nil, time.Time{}, err
			}
			if !stored {
				continue
			}
			// Stored, but not yet in the cache: keep counting it and look again later.
			due = now.Add(ReservationTimeout)
		}
		out.Reservations = append(out.Reservations, r)
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	return out, next, nil
}

// Reservation is the charge of a holding at now: how a namespace joining an organization brings
// in what it already holds.
func (h Holding) Reservation(now time.Time) tenancyv1alpha1.QuotaReservation {
	r := tenancyv1alpha1.QuotaReservation{UID: h.UID, Namespace: h.Namespace, Name: h.Name, Time: metav1.NewTime(now), Usage: h.Usage}
	if h.Kind != Pods {
		r.Resource = string(h.Kind)
	}
	return r
}

// Join charges the holdings of a namespace joining an organization to its ledger l, as the
// webhooks charge new objects: the operator settles the charges once it sees the objects in the
// organization. All are charged, fitting or not; Join returns the new ledger, the first excess
// over hard (nil if all fit), and whether it charged anything.
func Join(org string, l *tenancyv1alpha1.QuotaLedger, hard corev1.ResourceList, holdings []Holding, now time.Time) (*tenancyv1alpha1.QuotaLedger, *ExceededError, bool, error) {
	used := Used(l)
	var excess *ExceededError
	charged := false
	for _, h := range holdings {
		if h.Usage == nil || !Limits(hard, h.Usage) {
			continue
		}
		r := h.Reservation(now)
		next, after, err := Reserve(org, l, used, hard, r)
		var exceeded *ExceededError
		switch {
		case errors.As(err, &exceeded):
			if excess == nil {
				excess = exceeded
			}
			next = l.DeepCopy()
			if next == nil {
				next = &tenancyv1alpha1.QuotaLedger{}
			}
			next.Reservations = append(next.Reservations, r)
			after = resourcelist.Sum(used, r.Usage)
		case err != nil:
			return nil, nil, false, err
		}
		l, used, charged = next, after, true
	}
	return l, excess, charged, nil
}
