// Package ledger keeps an organization's exact account of pods against its organization-wide
// quota: the usage the operator has observed, plus the pods the admission webhook has admitted
// since. The webhook charges each pod before the API server stores it; the controller folds the
// charges into the observed usage once its cache sees the pods. Both write the ledger with a
// compare-and-swap, so no charge is lost and no two admissions take the same headroom.
package ledger

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/podcache"
	"github.com/orgoperator/org-operator/internal/usage"
)

// ReservationTimeout is how long a charge waits for its pod (or its resize) to be stored after the
// webhook wrote it. Past it, a charge that the API server's pods do not show is taken for one that
// a later step of the request refused (another admission check, the storage), and no longer
// counts. The API server stores a pod within milliseconds of the webhook's answer; the webhook
// refuses itself what the namespace's ResourceQuotas would refuse, the commonest later refusal.
// Times are stored rounded up to the second, so a refused charge counts for 2 to 3 seconds.
const ReservationTimeout = 2 * time.Second

// The names ResourceQuota gives to what a pod uses. Quotas may name compute resources bare
// (cpu) or as requests (requests.cpu); both mean the requests.
const (
	countPods = corev1.ResourceName("count/pods")
)

// charged maps every resource name the ledger enforces to the key it charges in a pod's usage.
var charged = map[corev1.ResourceName]corev1.ResourceName{
	corev1.ResourcePods:                     corev1.ResourcePods,
	countPods:                               corev1.ResourcePods,
	corev1.ResourceCPU:                      corev1.ResourceRequestsCPU,
	corev1.ResourceRequestsCPU:              corev1.ResourceRequestsCPU,
	corev1.ResourceLimitsCPU:                corev1.ResourceLimitsCPU,
	corev1.ResourceMemory:                   corev1.ResourceRequestsMemory,
	corev1.ResourceRequestsMemory:           corev1.ResourceRequestsMemory,
	corev1.ResourceLimitsMemory:             corev1.ResourceLimitsMemory,
	corev1.ResourceEphemeralStorage:         corev1.ResourceRequestsEphemeralStorage,
	corev1.ResourceRequestsEphemeralStorage: corev1.ResourceRequestsEphemeralStorage,
	corev1.ResourceLimitsEphemeralStorage:   corev1.ResourceLimitsEphemeralStorage,
}

// Supported returns, sorted, the resource names an organization-wide quota may hold: those the
// ledger charges. The API refuses any other in organizationQuota, by a CEL rule on
// api/v1alpha1.Quotas that lists the same names (a test keeps the two equal).
func Supported() []corev1.ResourceName {
	return slices.Sorted(maps.Keys(charged))
}

// Enforced returns the part of an organization-wide quota that the ledger enforces: the
// resources pods use. The rest (count/deployments.apps, requests.storage, ...) is left to the
// namespaces' ResourceQuotas.
func Enforced(hard corev1.ResourceList) corev1.ResourceList {
	var out corev1.ResourceList
	for name, q := range hard {
		if _, ok := charged[name]; ok {
			if out == nil {
				out = corev1.ResourceList{}
			}
			out[name] = q
		}
	}
	return out
}

// PodUsage is what a pod uses of the resources the ledger enforces, computed as ResourceQuota
// and the scheduler do (init containers, sidecars, overhead and pod-level resources included).
// Only non-zero entries are kept.
func PodUsage(pod *corev1.Pod) corev1.ResourceList {
	return CompactUsage(podcache.FromPod(pod))
}

// CompactUsage is PodUsage of a cached pod: the webhook and the controller charge the same.
func CompactUsage(p *podcache.Pod) corev1.ResourceList {
	out := corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")}
	for _, e := range []struct {
		name  corev1.ResourceName
		value int64
		milli bool
	}{
		{corev1.ResourceRequestsCPU, p.Requests.CPU, true},
		{corev1.ResourceRequestsMemory, p.Requests.Memory, false},
		{corev1.ResourceRequestsEphemeralStorage, p.Requests.EphemeralStorage, false},
		{corev1.ResourceLimitsCPU, p.Limits.CPU, true},
		{corev1.ResourceLimitsMemory, p.Limits.Memory, false},
		{corev1.ResourceLimitsEphemeralStorage, p.Limits.EphemeralStorage, false},
	} {
		switch {
		case e.value == 0:
		case e.milli:
			out[e.name] = resource.MustParse(resource.NewMilliQuantity(e.value, resource.DecimalSI).String())
		default:
			out[e.name] = resource.MustParse(resource.NewQuantity(e.value, resource.BinarySI).String())
		}
	}
	return out
}

// Observe sums the usage of the pods that count (not Succeeded or Failed) and returns all of
// them, counted or not: a reservation whose pod is among them is settled.
func Observe(pods []*podcache.Pod) (corev1.ResourceList, Seen) {
	lists := make([]corev1.ResourceList, 0, len(pods))
	seen := make(Seen, len(pods))
	for _, p := range pods {
		seen[p.UID] = p.Generation
		if !p.Terminal {
			lists = append(lists, CompactUsage(p))
		}
	}
	return sum(lists...), seen
}

// Seen is the generation of each pod a list shows, by UID.
type Seen map[types.UID]int64

// Settles says whether the pods seen account for a reservation: they hold its pod, at the
// generation its resize gave the pod for a resize.
func (s Seen) Settles(r tenancyv1alpha1.QuotaReservation) bool {
	uid, generation := ReservedPod(r)
	g, ok := s[uid]
	return ok && g >= generation
}

// ResizeUID is the key a resize is charged under: the pod's UID and the generation the resize
// gives the pod. A creation is charged under the pod's UID alone.
func ResizeUID(pod types.UID, generation int64) types.UID {
	return types.UID(fmt.Sprintf("%s/%d", pod, generation))
}

// ReservedPod returns the UID of a reservation's pod and, for a resize, the generation the resize
// gives the pod (0 for a creation).
func ReservedPod(r tenancyv1alpha1.QuotaReservation) (types.UID, int64) {
	uid, gen, ok := strings.Cut(string(r.UID), "/")
	if !ok {
		return r.UID, 0
	}
	g, err := strconv.ParseInt(gen, 10, 64)
	if err != nil {
		return r.UID, 0
	}
	return types.UID(uid), g
}

// ResizeUsage is what resizing a pod from old to new adds to its usage: the increases only, as
// ResourceQuota charges a resize. A decrease frees room once the operator sees the resized pod.
func ResizeUsage(old, new *corev1.Pod) corev1.ResourceList {
	before, after := PodUsage(old), PodUsage(new)
	out := corev1.ResourceList{}
	for name, q := range after {
		if name == corev1.ResourcePods {
			continue
		}
		if prev := before[name]; q.Cmp(prev) > 0 {
			q.Sub(prev)
			out[name] = q
		}
	}
	return canonical(out)
}

// Recount is what an organization uses according to a list of its pods, rather than its ledger's
// observed usage: the pods listed, plus the reservations that the list does not settle and that
// are younger than ReservationTimeout (their pod may still be on its way).
func Recount(l *tenancyv1alpha1.QuotaLedger, pods []*podcache.Pod, now time.Time) corev1.ResourceList {
	used, seen := Observe(pods)
	out := used.DeepCopy()
	if l != nil {
		for _, r := range l.Reservations {
			if !seen.Settles(r) && now.Before(r.Time.Add(ReservationTimeout)) {
				add(out, r.Usage)
			}
		}
	}
	return out
}

// Below says whether usage a is less than b in some resource.
func Below(a, b corev1.ResourceList) bool {
	for name, y := range b {
		if x := a[name]; x.Cmp(y) < 0 {
			return true
		}
	}
	return false
}

// Used is what the ledger counts: the observed usage plus every reservation.
func Used(l *tenancyv1alpha1.QuotaLedger) corev1.ResourceList {
	if l == nil {
		return corev1.ResourceList{}
	}
	out := corev1.ResourceList{}
	add(out, l.Observed)
	for _, r := range l.Reservations {
		add(out, r.Usage)
	}
	return out
}

// ExceededError says which resources a pod would take past the organization's quota, in the
// words of the API server's own quota admission.
type ExceededError struct {
	Organization             string
	Requested, Used, Limited corev1.ResourceList
}

func (e *ExceededError) Error() string {
	return fmt.Sprintf("exceeded organization quota: %s, requested: %s, used: %s, limited: %s",
		e.Organization, format(e.Requested), format(e.Used), format(e.Limited))
}

// Check returns an ExceededError if a pod using podUsage does not fit in hard next to used.
// Resources the pod does not use are not checked, as in ResourceQuota: a pod without memory
// requests is admitted by an organization at its memory limit.
func Check(org string, hard, used, podUsage corev1.ResourceList) error {
	e := &ExceededError{Organization: org, Requested: corev1.ResourceList{}, Used: corev1.ResourceList{}, Limited: corev1.ResourceList{}}
	for name, limit := range hard {
		key, ok := charged[name]
		if !ok {
			continue
		}
		need, ok := podUsage[key]
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

// MaxReservations is how many pods may wait to be seen at once, as the API bounds
// status.quotas.ledger.reservations.
const MaxReservations = 1000

// ErrBusy says the ledger holds as many reservations as it can: the caller should retry shortly.
var ErrBusy = errors.New("too many pods of this organization are being created at once; retry shortly")

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
	if i >= 0 && equality.Semantic.DeepEqual(canonical(l.Reservations[i].Usage), canonical(r.Usage)) {
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
	add(after, r.Usage)
	return &out, after, nil
}

// Covering returns observed with a zero for every resource of hard it lacks, under the name the
// ledger charges, so that the ledger shows what it counts even before any pod exists.
func Covering(observed, hard corev1.ResourceList) corev1.ResourceList {
	out := observed.DeepCopy()
	if out == nil {
		out = corev1.ResourceList{}
	}
	for name := range hard {
		if key, ok := charged[name]; ok {
			if _, have := out[key]; !have {
				out[key] = resource.MustParse("0")
			}
		}
	}
	return out
}

// Rebase returns the ledger with observed as its observed usage and without the reservations that
// are settled: seen settles them, or their pod (or resize) was never stored. exists tells whether
// a reservation's pod is stored as the reservation charged it; it is asked only for reservations
// older than ReservationTimeout. Rebase also returns when the oldest remaining reservation reaches
// that age (zero if none remain), so the caller can come back exactly then.
func Rebase(l *tenancyv1alpha1.QuotaLedger, observed corev1.ResourceList, seen Seen, now time.Time,
	exists func(tenancyv1alpha1.QuotaReservation) (bool, error)) (*tenancyv1alpha1.QuotaLedger, time.Time, error) {
	out := &tenancyv1alpha1.QuotaLedger{Observed: canonical(observed)}
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

func sum(lists ...corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	for _, l := range lists {
		add(out, l)
	}
	return canonical(out)
}

func add(into, l corev1.ResourceList) {
	for name, q := range l {
		s := into[name]
		s.Add(q)
		into[name] = s
	}
}

// canonical rewrites quantities in their canonical form, so that a ledger computed twice equals
// the one read back from the API server.
var canonical = usage.Canonical

func format(l corev1.ResourceList) string {
	parts := make([]string, 0, len(l))
	for name, q := range l {
		parts = append(parts, fmt.Sprintf("%s=%s", name, q.String()))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}
