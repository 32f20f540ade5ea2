// Package metering integrates what pods request and limit over their lifetimes, per namespace
// and per day of a billing period, and prices it in credits. Everything is exact: seconds are
// whole (Kubernetes timestamps are), cpu is in millicores and memory in bytes, and sums of
// byte-seconds, which outgrow int64, are big integers.
package metering

import (
	"math/big"

	"gopkg.in/inf.v0"
	"k8s.io/apimachinery/pkg/api/resource"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/podcache"
)

// Amount is usage integrated over time.
type Amount struct {
	PodSeconds int64
	// MilliCPUSeconds and ByteSeconds integrate requests; LimitMilliCPUSeconds and
	// LimitByteSeconds limits.
	MilliCPUSeconds, LimitMilliCPUSeconds int64
	ByteSeconds, LimitByteSeconds         big.Int
}

// IsZero reports whether nothing was used.
func (a *Amount) IsZero() bool {
	return a.PodSeconds == 0 && a.MilliCPUSeconds == 0 && a.LimitMilliCPUSeconds == 0 &&
		a.ByteSeconds.Sign() == 0 && a.LimitByteSeconds.Sign() == 0
}

// Add adds b to a.
func (a *Amount) Add(b *Amount) {
	a.PodSeconds += b.PodSeconds
	a.MilliCPUSeconds += b.MilliCPUSeconds
	a.LimitMilliCPUSeconds += b.LimitMilliCPUSeconds
	a.ByteSeconds.Add(&a.ByteSeconds, &b.ByteSeconds)
	a.LimitByteSeconds.Add(&a.LimitByteSeconds, &b.LimitByteSeconds)
}

// Equal reports whether a and b are the same amounts.
func (a *Amount) Equal(b *Amount) bool {
	return a.PodSeconds == b.PodSeconds && a.MilliCPUSeconds == b.MilliCPUSeconds &&
		a.LimitMilliCPUSeconds == b.LimitMilliCPUSeconds && a.ByteSeconds.Cmp(&b.ByteSeconds) == 0 &&
		a.LimitByteSeconds.Cmp(&b.LimitByteSeconds) == 0
}

// AddPod adds what pod used in [from, to) (Unix seconds): the overlap of that span with the
// pod's lifetime, a pod still running counting up to to.
func (a *Amount) AddPod(pod *podcache.Pod, from, to int64) {
	s := Overlap(pod, from, to)
	if s <= 0 {
		return
	}
	a.PodSeconds += s
	a.MilliCPUSeconds += pod.Requests.CPU * s
	a.LimitMilliCPUSeconds += pod.Limits.CPU * s
	var t big.Int
	a.ByteSeconds.Add(&a.ByteSeconds, t.Mul(big.NewInt(pod.Requests.Memory), big.NewInt(s)))
	a.LimitByteSeconds.Add(&a.LimitByteSeconds, t.Mul(big.NewInt(pod.Limits.Memory), big.NewInt(s)))
}

// Overlap is how many seconds of [from, to) the pod's lifetime covers.
func Overlap(pod *podcache.Pod, from, to int64) int64 {
	if pod.Start == 0 {
		return 0
	}
	start, end := max(pod.Start, from), to
	if pod.End != 0 {
		end = min(pod.End, to)
	}
	return max(end-start, 0)
}

// Usage is the amount as the API shows it, priced with prices (nil: no credits).
func (a *Amount) Usage(prices *tenancyv1alpha1.MeteringPrices) tenancyv1alpha1.MeteredUsage {
	u := tenancyv1alpha1.MeteredUsage{
		PodSeconds: a.PodSeconds,
		Requests:   tenancyv1alpha1.ResourceSeconds{CPU: milli(a.MilliCPUSeconds), Memory: whole(&a.ByteSeconds)},
		Limits:     tenancyv1alpha1.ResourceSeconds{CPU: milli(a.LimitMilliCPUSeconds), Memory: whole(&a.LimitByteSeconds)},
	}
	if prices != nil && (prices.CPUCoreHour != nil || prices.MemoryGiBHour != nil || prices.PodHour != nil) {
		u.Credits = Credits(a, prices)
	}
	return u
}

// NamespaceUsage is the amount as a report lists a namespace's.
func (a *Amount) NamespaceUsage(name string) tenancyv1alpha1.NamespaceMeteredUsage {
	return tenancyv1alpha1.NamespaceMeteredUsage{Name: name, PodSeconds: a.PodSeconds,
		CPU: milli(a.MilliCPUSeconds), Memory: whole(&a.ByteSeconds),
		Limits: tenancyv1alpha1.ResourceSeconds{CPU: milli(a.LimitMilliCPUSeconds), Memory: whole(&a.LimitByteSeconds)}}
}

// FromUsage reads an amount back from the API.
func FromUsage(u *tenancyv1alpha1.MeteredUsage) Amount {
	var a Amount
	if u == nil {
		return a
	}
	a.PodSeconds = u.PodSeconds
	a.MilliCPUSeconds, a.LimitMilliCPUSeconds = milliOf(u.Requests.CPU), milliOf(u.Limits.CPU)
	a.ByteSeconds.Set(wholeOf(u.Requests.Memory))
	a.LimitByteSeconds.Set(wholeOf(u.Limits.Memory))
	return a
}

// FromNamespaceUsage reads a namespace's amount back from the API.
func FromNamespaceUsage(u *tenancyv1alpha1.NamespaceMeteredUsage) Amount {
	var a Amount
	a.PodSeconds = u.PodSeconds
	a.MilliCPUSeconds, a.LimitMilliCPUSeconds = milliOf(u.CPU), milliOf(u.Limits.CPU)
	a.ByteSeconds.Set(wholeOf(u.Memory))
	a.LimitByteSeconds.Set(wholeOf(u.Limits.Memory))
	return a
}

func milli(v int64) *resource.Quantity {
	if v == 0 {
		return nil
	}
	return resource.NewMilliQuantity(v, resource.DecimalSI)
}

func whole(v *big.Int) *resource.Quantity {
	if v.Sign() == 0 {
		return nil
	}
	if v.IsInt64() {
		return resource.NewQuantity(v.Int64(), resource.DecimalSI)
	}
	return resource.NewDecimalQuantity(*inf.NewDecBig(new(big.Int).Set(v), 0), resource.DecimalSI)
}

func milliOf(q *resource.Quantity) int64 {
	if q == nil {
		return 0
	}
	return q.MilliValue()
}

func wholeOf(q *resource.Quantity) *big.Int {
	if q == nil {
		return new(big.Int)
	}
	d := q.AsDec()
	// Round to whole units: amounts are written whole, so nothing is lost here.
	r := new(inf.Dec).Round(d, 0, inf.RoundDown)
	return new(big.Int).Set(r.UnscaledBig())
}

// Credits prices the requests and pod-seconds of a, rounded down to the milli-credit:
// core-seconds × cpuCoreHour / 3600 + byte-seconds × memoryGiBHour / (3600 × 2³⁰) +
// pod-seconds × podHour / 3600, computed over one exact common denominator.
func Credits(a *Amount, prices *tenancyv1alpha1.MeteringPrices) *resource.Quantity {
	gib := new(big.Int).Lsh(big.NewInt(1), 30)
	num := new(inf.Dec)
	term := func(amount *big.Int, scale inf.Scale, price *resource.Quantity, factor *big.Int) {
		if price == nil || amount.Sign() == 0 {
			return
		}
		t := new(inf.Dec).Mul(inf.NewDecBig(new(big.Int).Set(amount), scale), price.AsDec())
		num.Add(num, t.Mul(t, inf.NewDecBig(factor, 0)))
	}
	// Over the denominator 3600 × 2³⁰: cpu (millicore-seconds, scale 3) and pods carry 2³⁰.
	term(big.NewInt(a.MilliCPUSeconds), 3, prices.CPUCoreHour, gib)
	term(&a.ByteSeconds, 0, prices.MemoryGiBHour, big.NewInt(1))
	term(big.NewInt(a.PodSeconds), 0, prices.PodHour, gib)
	den := inf.NewDecBig(new(big.Int).Mul(gib, big.NewInt(3600)), 0)
	q := new(inf.Dec).QuoRound(num, den, 3, inf.RoundDown)
	return resource.NewDecimalQuantity(*q, resource.DecimalSI)
}
