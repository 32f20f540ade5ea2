package metering_test

import (
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/metering"
	"github.com/orgoperator/org-operator/internal/podcache"
)

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestPeriodAt(t *testing.T) {
	tests := []struct{ start, now, wantStart, wantEnd string }{
		// The seeds' example: requested on 01-12-2020, started 20-11-2020.
		{"2020-11-20T00:00:00Z", "2020-12-01T10:00:00Z", "2020-11-20T00:00:00Z", "2020-12-20T00:00:00Z"},
		{"2020-11-20T08:30:00Z", "2020-12-20T08:29:59Z", "2020-11-20T08:30:00Z", "2020-12-20T08:30:00Z"},
		{"2020-11-20T08:30:00Z", "2020-12-20T08:30:00Z", "2020-12-20T08:30:00Z", "2021-01-20T08:30:00Z"},
		// The 31st renews on the last day of shorter months.
		{"2021-01-31T00:00:00Z", "2021-02-28T12:00:00Z", "2021-02-28T00:00:00Z", "2021-03-31T00:00:00Z"},
		{"2021-01-31T00:00:00Z", "2021-04-30T00:00:00Z", "2021-04-30T00:00:00Z", "2021-05-31T00:00:00Z"},
		// Before the start: the first period.
		{"2021-01-31T00:00:00Z", "2020-04-30T00:00:00Z", "2021-01-31T00:00:00Z", "2021-02-28T00:00:00Z"},
	}
	for _, tt := range tests {
		p := metering.PeriodAt(date(tt.start), date(tt.now))
		if !p.Start.Equal(date(tt.wantStart)) || !p.End.Equal(date(tt.wantEnd)) {
			t.Errorf("PeriodAt(%s, %s) = [%s, %s), want [%s, %s)", tt.start, tt.now, p.Start, p.End, tt.wantStart, tt.wantEnd)
		}
	}
	p := metering.PeriodAt(date("2021-01-31T00:00:00Z"), date("2021-03-05T00:00:00Z"))
	if prev := p.Previous(date("2021-01-31T00:00:00Z")); !prev.End.Equal(p.Start) || !prev.Start.Equal(date("2021-01-31T00:00:00Z")) {
		t.Errorf("Previous of %v = %v", p, prev)
	}
}

func pod(ns string, uid int, start, end int64, mcpu, mem int64) *podcache.Pod {
	p := &podcache.Pod{Start: start, End: end, Requests: podcache.Amounts{CPU: mcpu, Memory: mem}, Limits: podcache.Amounts{CPU: 2 * mcpu, Memory: 2 * mem}}
	p.Namespace, p.UID = ns, types.UID(fmt.Sprint(uid))
	return p
}

// exact is the integral of the pods over [from, to), computed directly from their lifetimes.
func exact(pods []*podcache.Pod, from, to int64) (podSeconds, mcpuSeconds int64, byteSeconds *big.Int) {
	byteSeconds = new(big.Int)
	for _, p := range pods {
		if p.Start == 0 {
			continue
		}
		s, e := max(p.Start, from), to
		if p.End != 0 {
			e = min(p.End, to)
		}
		if e <= s {
			continue
		}
		podSeconds += e - s
		mcpuSeconds += p.Requests.CPU * (e - s)
		byteSeconds.Add(byteSeconds, new(big.Int).Mul(big.NewInt(p.Requests.Memory), big.NewInt(e-s)))
	}
	return
}

// A period advanced in many checkpoints, at random moments, sums to the same amounts as in one
// step and as the direct integral, per namespace and per day, however the checkpoints fall.
func TestAdvanceIsExactAcrossCheckpoints(t *testing.T) {
	period := metering.Period{Start: date("2026-11-20T00:00:00Z"), End: date("2026-12-20T00:00:00Z")}
	from, to := period.Start.Unix(), period.End.Unix()
	rng := rand.New(rand.NewPCG(1, 2))
	var pods []*podcache.Pod
	for i := range 200 {
		start := from - 86400 + rng.Int64N(to-from+86400)
		end := int64(0)
		if rng.IntN(3) > 0 {
			end = start + rng.Int64N(5*86400)
		}
		if rng.IntN(10) == 0 {
			start, end = 0, 0 // never started
		}
		pods = append(pods, pod([]string{"a", "b", "c"}[i%3], i, start, end, 1+rng.Int64N(4000), 1+rng.Int64N(64<<30)))
	}
	source := func(ns string) (live, gone []*podcache.Pod) {
		for _, p := range pods {
			if p.Namespace == ns {
				live = append(live, p)
			}
		}
		return live, nil
	}
	namespaces := []string{"a", "b", "c"}
	prices := &tenancyv1alpha1.MeteringPrices{CPUCoreHour: ptr(resource.MustParse("0.05")), MemoryGiBHour: ptr(resource.MustParse("0.01")), PodHour: ptr(resource.MustParse("0.001"))}
	now := period.End.Add(time.Hour)

	oneShot := metering.AdvanceStatus(&tenancyv1alpha1.OrganizationUsageReportStatus{}, period, namespaces, source, now, prices)
	st := tenancyv1alpha1.OrganizationUsageReportStatus{}
	for at := period.Start; at.Before(now); at = at.Add(time.Duration(1+rng.Int64N(7200)) * time.Second) {
		st = roundTrip(t, metering.AdvanceStatus(&st, period, namespaces, source, at, prices).Status)
	}
	st = roundTrip(t, metering.AdvanceStatus(&st, period, namespaces, source, now, prices).Status)

	ps, mcpu, bytes := exact(pods, from, to)
	got := metering.FromUsage(&st.Total)
	if got.PodSeconds != ps || got.MilliCPUSeconds != mcpu || got.ByteSeconds.Cmp(bytes) != 0 {
		t.Fatalf("stepped total = %d pod-s, %d mcpu-s, %s byte-s; exact %d, %d, %s", got.PodSeconds, got.MilliCPUSeconds, &got.ByteSeconds, ps, mcpu, bytes)
	}
	if one := metering.FromUsage(&oneShot.Status.Total); !one.Equal(&got) {
		t.Fatalf("one step %+v differs from many %+v", one, got)
	}
	if st.Total.Credits.Cmp(*oneShot.Status.Total.Credits) != 0 {
		t.Errorf("credits %s in steps, %s at once", st.Total.Credits, oneShot.Status.Total.Credits)
	}
	for _, ns := range st.Namespaces {
		live, _ := source(ns.Name)
		ps, mcpu, bytes := exact(live, from, to)
		a := metering.FromNamespaceUsage(&ns)
		if a.PodSeconds != ps || a.MilliCPUSeconds != mcpu || a.ByteSeconds.Cmp(bytes) != 0 {
			t.Errorf("namespace %s = %d, %d, %s; exact %d, %d, %s", ns.Name, a.PodSeconds, a.MilliCPUSeconds, &a.ByteSeconds, ps, mcpu, bytes)
		}
	}
	var sum metering.Amount
	for _, d := range st.Days {
		day, _ := time.Parse(time.DateOnly, d.Date)
		ps, mcpu, bytes := exact(pods, max(from, day.Unix()), min(to, day.Add(24*time.Hour).Unix()))
		a := metering.FromUsage(&d.MeteredUsage)
		if a.PodSeconds != ps || a.MilliCPUSeconds != mcpu || a.ByteSeconds.Cmp(bytes) != 0 {
			t.Errorf("day %s = %d, %d; exact %d, %d", d.Date, a.PodSeconds, a.MilliCPUSeconds, ps, mcpu)
		}
		sum.Add(&a)
	}
	if !sum.Equal(&got) {
		t.Errorf("days sum to %+v, total is %+v", sum, got)
	}
	if len(st.Days) != 30 {
		t.Errorf("%d day buckets, want 30", len(st.Days))
	}
}

func roundTrip(t *testing.T, st tenancyv1alpha1.OrganizationUsageReportStatus) tenancyv1alpha1.OrganizationUsageReportStatus {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var out tenancyv1alpha1.OrganizationUsageReportStatus
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// A namespace that leaves moves into deletedNamespaces, and the total keeps it.
func TestDeletedNamespaces(t *testing.T) {
	period := metering.Period{Start: date("2026-11-20T00:00:00Z"), End: date("2026-12-20T00:00:00Z")}
	s := period.Start.Unix()
	pods := map[string][]*podcache.Pod{"a": {pod("a", 1, s, s+100, 1000, 1)}, "b": {pod("b", 2, s, s+50, 1000, 1)}}
	source := func(ns string) (live, gone []*podcache.Pod) { return nil, pods[ns] }
	st := metering.AdvanceStatus(&tenancyv1alpha1.OrganizationUsageReportStatus{}, period, []string{"a", "b"}, source, period.Start.Add(time.Hour), nil).Status
	if len(st.Namespaces) != 2 || st.Total.PodSeconds != 150 || st.Total.Credits != nil {
		t.Fatalf("first checkpoint: %+v", st)
	}
	delete(pods, "b")
	st = metering.AdvanceStatus(&st, period, []string{"a"}, source, period.Start.Add(2*time.Hour), nil).Status
	if len(st.Namespaces) != 1 || st.Namespaces[0].Name != "a" || st.DeletedNamespaces == nil || st.DeletedNamespaces.PodSeconds != 50 || st.Total.PodSeconds != 150 {
		t.Fatalf("after b left: %+v", st)
	}
}

func TestCredits(t *testing.T) {
	prices := &tenancyv1alpha1.MeteringPrices{CPUCoreHour: ptr(resource.MustParse("0.036")), MemoryGiBHour: ptr(resource.MustParse("1")), PodHour: ptr(resource.MustParse("3.6"))}
	var a metering.Amount
	// One core for an hour: 0.036; 1 GiB for half an hour: 0.5; one pod for a second: 0.001.
	a.MilliCPUSeconds = 1000 * 3600
	a.ByteSeconds.SetInt64(1 << 30 * 1800)
	a.PodSeconds = 1
	if got := metering.Credits(&a, prices); got.String() != "537m" {
		t.Errorf("credits = %s, want 537m", got)
	}
	// Rounded down to the milli-credit, never up.
	var b metering.Amount
	b.PodSeconds = 1
	if got := metering.Credits(&b, &tenancyv1alpha1.MeteringPrices{PodHour: ptr(resource.MustParse("3.5999"))}); got.String() != "0" {
		t.Errorf("credits = %s, want 0", got)
	}
}

// A report of 1,000 namespaces with a month of large amounts, 32 days and every field set,
// stays under 256 KiB as JSON, metadata and the API server's managedFields for them included.
func TestReportSizeBound(t *testing.T) {
	// 31 days from midday: 32 calendar days, the most a period has.
	period := metering.Period{Start: date("2026-12-20T12:00:00Z"), End: date("2027-01-20T12:00:00Z")}
	var namespaces []string
	pods := map[string][]*podcache.Pod{}
	for i := range tenancyv1alpha1.MaxReportNamespaces {
		ns := fmt.Sprintf("team-%04d-production-%s", i, strings.Repeat("x", 42)) // 63 characters, the longest
		namespaces = append(namespaces, ns)
		pods[ns] = []*podcache.Pod{pod(ns, i, period.Start.Unix()-1, 0, 64_000+int64(i), 256<<30+int64(i))}
	}
	source := func(ns string) (live, gone []*podcache.Pod) { return pods[ns], nil }
	prices := &tenancyv1alpha1.MeteringPrices{CPUCoreHour: ptr(resource.MustParse("0.05")), MemoryGiBHour: ptr(resource.MustParse("0.01"))}
	st := metering.AdvanceStatus(&tenancyv1alpha1.OrganizationUsageReportStatus{}, period, namespaces[:500], source, period.End, prices).Status
	st = metering.AdvanceStatus(&st, period, namespaces[500:], source, period.End, prices).Status // the first 500 are now deleted
	st = metering.AdvanceStatus(&tenancyv1alpha1.OrganizationUsageReportStatus{}, period, namespaces, source, period.End, prices).Status
	st.DeletedNamespaces = &st.Total
	st.Allowance = ptr(resource.MustParse("1000000"))
	report := &tenancyv1alpha1.OrganizationUsageReport{
		TypeMeta:   metav1.TypeMeta{APIVersion: tenancyv1alpha1.GroupVersion.String(), Kind: "OrganizationUsageReport"},
		ObjectMeta: metav1.ObjectMeta{Name: "an-organization-name-of-some-length-2026-11-20", Namespace: "an-organization-name-of-some-length"},
		Status:     st,
	}
	b, err := json.Marshal(report)
	if err != nil {
		t.Fatal(err)
	}
	managed := managedFieldsSize(st)
	if len(st.Namespaces) != 1000 || len(st.Days) != tenancyv1alpha1.MaxReportDays {
		t.Fatalf("%d namespaces, %d days", len(st.Namespaces), len(st.Days))
	}
	t.Logf("report: %d bytes, managedFields about %d bytes", len(b), managed)
	t.Logf("first namespace: %+v", string(must(json.Marshal(st.Namespaces[0]))))
	if total := len(b) + managed; total > 256<<10 {
		t.Errorf("a report of 1,000 namespaces takes %d bytes, over 256 KiB", total)
	}
}

// managedFieldsSize is the size of the fieldsV1 the API server records for the status: one
// entry per field set (per list entry of a map list), in its format.
func managedFieldsSize(st tenancyv1alpha1.OrganizationUsageReportStatus) int {
	// namespaces is an atomic list: one entry for all of them.
	n := len(`"f:namespaces":{},`)
	n += len(st.Days) * len(`"k:{\"date\":\"2026-11-20\"}":{".":{},"f:credits":{},"f:date":{},"f:limits":{".":{},"f:cpu":{},"f:memory":{}},"f:podSeconds":{},"f:requests":{".":{},"f:cpu":{},"f:memory":{}}},`)
	return n + 1024
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// The rate is what the pods running at the checkpoint add per second; finished pods add nothing.
func TestRate(t *testing.T) {
	period := metering.Period{Start: date("2026-11-20T00:00:00Z"), End: date("2026-12-20T00:00:00Z")}
	s := period.Start.Unix()
	pods := []*podcache.Pod{pod("a", 1, s, 0, 250, 1<<20), pod("a", 2, s, 0, 750, 1<<20), pod("a", 3, s, s+10, 4000, 1)}
	source := func(string) (live, gone []*podcache.Pod) { return pods, nil }
	adv := metering.AdvanceStatus(&tenancyv1alpha1.OrganizationUsageReportStatus{}, period, []string{"a"}, source, period.Start.Add(time.Minute), nil)
	if !adv.Running || adv.Rate.PodSeconds != 2 || adv.Rate.MilliCPUSeconds != 1000 || adv.Rate.ByteSeconds.Int64() != 2<<20 {
		t.Errorf("running %v, rate %+v", adv.Running, adv.Rate)
	}
}
