package main

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/controllers"
)

// meteringChurnPercent is how much of the pods the metering scenario replaces per minute.
const meteringChurnPercent = 10

// MeteringResult is what the metering scenario measured: the same churn without metering and
// with it, and the reports against the pods' exact integral.
type MeteringResult struct {
	Organizations int `json:"organizations"`
	Pods          int `json:"pods"`
	// ChurnPercentPerMinute of the pods are finished and deleted, and as many created and
	// started, every minute, spread evenly.
	ChurnPercentPerMinute     int     `json:"churnPercentPerMinute"`
	ChurnSeconds              float64 `json:"churnSeconds"`
	CheckpointIntervalSeconds float64 `json:"checkpointIntervalSeconds"`
	SettleDelaySeconds        float64 `json:"settleDelaySeconds"`
	// Baseline is the churn with the manager started with --usage-metering=false, Metered the
	// same churn with a manager started with metering on; both from a fresh process.
	Baseline *MeteringRun `json:"baseline"`
	Metered  *MeteringRun `json:"metered"`
	// Check compares every organization's report with the integral of the pods the harness ran.
	Check *reportCheck `json:"check,omitempty"`
	// SecondsToFinalCheckpoint is from the end of the churn until every report had a
	// checkpoint after it.
	SecondsToFinalCheckpoint float64 `json:"secondsToFinalCheckpoint"`
	Method                   string  `json:"method"`
}

// MeteringRun is one churn window.
type MeteringRun struct {
	Phase   string  `json:"phase"`
	Seconds float64 `json:"seconds"`
	// Replaced pods (finished and deleted, one created and started for each); Behind is how
	// many the harness was late on at the end of the window (0: it kept the rate).
	Replaced   int     `json:"replaced"`
	Behind     int     `json:"behind"`
	CPUSeconds float64 `json:"cpuSeconds"`
	PeakRSSMiB float64 `json:"peakRSSMiB"`
	PeakHeap   float64 `json:"peakHeapInuseMiB"`
	Writes     int     `json:"writes"`
	// Per organization per hour of the window: usage report status patches, report creates
	// and Organization status patches.
	ReportStatusWritesPerOrgHour Distribution `json:"reportStatusWritesPerOrgHour"`
	ReportCreates                int          `json:"reportCreates"`
	RefusedReportWrites          int          `json:"refusedReportWrites"`
	OrgStatusWritesPerOrgHour    float64      `json:"orgStatusWritesPerOrgHour"`
	// MaxReportStatusWritesPerOrg and AllowedPerOrg: the most status patches of one
	// organization's report in the window, and the checkpoint intervals elapsed + 1.
	MaxReportStatusWritesPerOrg int `json:"maxReportStatusWritesPerOrg"`
	AllowedPerOrg               int `json:"allowedPerOrg"`
}

// meteringChurn keeps -pods pods running over the organizations' namespaces and replaces some
// of them at a steady rate, as a kubelet and a workload would.
type meteringChurn struct {
	b    *bench
	cl   client.Client
	rng  *rand.Rand
	mu   sync.Mutex
	all  []*meteredPod
	live []*meteredPod
	seq  int
}

// metering: the pods churn for -metering-duration under a manager without metering, then for as
// long under a metered one; every report must then equal the pods' exact integral.
func (b *bench) metering(ctx context.Context) error {
	cfg := b.cfg
	if cfg.pods <= 0 {
		return nil
	}
	res := &MeteringResult{ChurnPercentPerMinute: meteringChurnPercent, ChurnSeconds: cfg.meteringDuration.Seconds(),
		CheckpointIntervalSeconds: cfg.meteringInterval.Seconds(), SettleDelaySeconds: controllers.DefaultSettleDelay.Seconds(),
		Method: "One run: the churn twice on the same world, first under a manager started with --usage-metering=false (no tracker, no report phase), " +
			"then under one started with metering on; each window begins with the manager's restart (its start, lists and first reconciles count) " +
			"and its CPU, peak RSS and writes are of that window alone."}
	b.res.Metering = res
	live := b.world.live()
	orgNamespaces := map[string][]string{}
	var targets [][2]string // organization, namespace
	for _, o := range live {
		orgNamespaces[o.name] = slices.Clone(o.namespaces)
		for _, ns := range o.namespaces {
			targets = append(targets, [2]string{o.name, ns})
		}
	}
	names := sortedKeys(orgNamespaces)
	res.Organizations, res.Pods = len(live), cfg.pods
	mc := &meteringChurn{b: b, cl: b.c.clients[agentCreate], rng: rand.New(rand.NewSource(cfg.seed + 2))}
	base := slices.Clone(b.mgr.args)
	restart := func(extra ...string) error {
		b.mgr.stop(30 * time.Second)
		b.mgr.args = append(slices.Clone(base), extra...)
		return b.mgr.start(ctx, 5*time.Minute)
	}

	// Without metering: the pods start and churn.
	if err := restart("--usage-metering=false"); err != nil {
		return err
	}
	deadline := time.Now().Add(cfg.phaseTimeout)
	var retries atomic.Int64
	logf("Starting %d pods over %d namespaces", cfg.pods, len(targets))
	err := parallel(ctx, cfg.creators, cfg.pods, func(ctx context.Context, i int) error {
		t := targets[i%len(targets)]
		return mc.start(ctx, deadline, &retries, t[0], t[1])
	})
	if err != nil {
		return err
	}
	b.waitQuiet(ctx, settleTimeout)
	if res.Baseline, err = mc.window(ctx, "metering-baseline", "Churn without metering (--usage-metering=false)", names, 0,
		func() error { return restart("--usage-metering=false") }); err != nil {
		return err
	}
	if base := res.Baseline; base.ReportCreates+base.RefusedReportWrites+base.MaxReportStatusWritesPerOrg > 0 {
		return fmt.Errorf("the manager started with --usage-metering=false wrote usage reports (%d creates, %d refused, up to %d status writes per organization)",
			res.Baseline.ReportCreates, res.Baseline.RefusedReportWrites, res.Baseline.MaxReportStatusWritesPerOrg)
	}

	// Metering from a period that starts now: the reports owe every pod's lifetime from here.
	periodStart := time.Now().Truncate(time.Second)
	wantStart := map[string]time.Time{}
	patch := client.RawPatch(types.MergePatchType, []byte(fmt.Sprintf(`{"spec":{"subscription":{"startDate":%q}}}`, periodStart.UTC().Format(time.RFC3339))))
	err = parallel(ctx, cfg.creators, len(names), func(ctx context.Context, i int) error {
		return retry(ctx, deadline, &retries, func() error {
			return mc.cl.Patch(ctx, &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: names[i]}}, patch)
		})
	})
	if err != nil {
		return fmt.Errorf("starting the subscriptions: %w", err)
	}
	for _, o := range names {
		wantStart[o] = periodStart
	}
	if res.Metered, err = mc.window(ctx, "metering-churn", fmt.Sprintf("The same churn, metered (--usage-checkpoint-interval=%v)", cfg.meteringInterval),
		names, cfg.meteringInterval, func() error {
			return restart("--usage-metering=true", fmt.Sprintf("--usage-checkpoint-interval=%v", cfg.meteringInterval))
		}); err != nil {
		return err
	}

	// The churn stops; once every report has a checkpoint after the last change, each must
	// equal the integral of the pods' lifetimes up to it.
	stoppedAt := time.Now()
	wait := cfg.meteringInterval + controllers.DefaultSettleDelay + cfg.phaseTimeout
	behind, err := waitCheckpoints(ctx, b.c.clients[agentVerify], names, stoppedAt, wait)
	if len(behind) > 0 || err != nil {
		return fmt.Errorf("%d organizations had no checkpoint after the churn within %v (e.g. %s): %v", len(behind), wait, firstN(behind, 3), err)
	}
	res.SecondsToFinalCheckpoint = round1(time.Since(stoppedAt).Seconds())
	mc.mu.Lock()
	pods := slices.Clone(mc.all)
	mc.mu.Unlock()
	check, _, err := checkReports(ctx, b.c.clients[agentVerify], orgNamespaces, wantStart, pods)
	if err != nil {
		return err
	}
	res.Check = check
	logf("Metering: %d organizations, %d pods (%d deleted), %d amounts compared, max error %s",
		check.Organizations, check.Pods, check.PodsDeleted, check.Amounts, check.MaxError)
	b.res.Bars = append(b.res.Bars,
		Bar{What: "metering-error", Target: "usage reports equal the pods' exact integral (largest difference)", Value: float64(check.maxErr.Int64()), Unit: "(0 = exact)",
			Met: len(check.Problems) == 0 && check.Organizations == len(names) && check.MaxError == "0"},
		Bar{What: "metering-writes", Target: fmt.Sprintf("report status writes per organization ≤ checkpoint intervals + 1 (%d in the window)", res.Metered.AllowedPerOrg),
			Value: float64(res.Metered.MaxReportStatusWritesPerOrg), Unit: "writes (most of one organization)", Met: res.Metered.MaxReportStatusWritesPerOrg <= res.Metered.AllowedPerOrg})
	if len(check.Problems) > 0 {
		return fmt.Errorf("usage reports differ from the pods' integral: %s", strings.Join(firstN(check.Problems, 5), "; "))
	}
	if check.Organizations != len(names) {
		return fmt.Errorf("%d of %d organizations have exactly one usage report", check.Organizations, len(names))
	}
	return nil
}

// start creates a pod in ns and starts it now, as the scheduler and the kubelet would.
func (mc *meteringChurn) start(ctx context.Context, deadline time.Time, retries *atomic.Int64, org, ns string) error {
	mc.mu.Lock()
	mc.seq++
	seq := mc.seq
	mc.mu.Unlock()
	p := &meteredPod{org: org, ns: ns, name: fmt.Sprintf("m%06d", seq),
		cpuMilli: int64(50 + 10*(seq%10)), memBytes: int64(32+16*(seq%4)) << 20}
	if err := retry(ctx, deadline, retries, func() error { return mc.cl.Create(ctx, benchPod(p.ns, p.name, p.cpuMilli, p.memBytes)) }); err != nil {
		return fmt.Errorf("creating pod %s: %w", p.key(), err)
	}
	p.start = time.Now().Truncate(time.Second)
	if err := retry(ctx, deadline, retries, func() error { return p.writeStatus(ctx, mc.cl) }); err != nil {
		return fmt.Errorf("starting pod %s: %w", p.key(), err)
	}
	mc.mu.Lock()
	mc.all = append(mc.all, p)
	mc.live = append(mc.live, p)
	mc.mu.Unlock()
	return nil
}

// replace finishes a running pod chosen at random, deletes it, and starts another in its
// namespace.
func (mc *meteringChurn) replace(ctx context.Context, deadline time.Time, retries *atomic.Int64) error {
	mc.mu.Lock()
	if len(mc.live) == 0 {
		mc.mu.Unlock()
		return fmt.Errorf("no pod left to replace")
	}
	i := mc.rng.Intn(len(mc.live))
	p := mc.live[i]
	mc.live[i] = mc.live[len(mc.live)-1]
	mc.live = mc.live[:len(mc.live)-1]
	mc.mu.Unlock()
	p.end = time.Now().Truncate(time.Second)
	if err := retry(ctx, deadline, retries, func() error { return p.writeStatus(ctx, mc.cl) }); err != nil {
		return fmt.Errorf("finishing pod %s: %w", p.key(), err)
	}
	err := retry(ctx, deadline, retries, func() error {
		return client.IgnoreNotFound(mc.cl.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: p.name}}, client.GracePeriodSeconds(0)))
	})
	if err != nil {
		return fmt.Errorf("deleting pod %s: %w", p.key(), err)
	}
	mc.mu.Lock()
	p.deleted = true
	mc.mu.Unlock()
	return mc.start(ctx, deadline, retries, p.org, p.ns)
}

// window starts the manager with restart, then replaces pods at the scenario's rate for
// -metering-duration, spread evenly over it, and records the phase from before the restart (a
// fresh process: its start, lists and first reconciles count); interval, when not zero, is the
// checkpoint interval the report writes are bounded by.
func (mc *meteringChurn) window(ctx context.Context, name, description string, orgs []string, interval time.Duration, restart func() error) (*MeteringRun, error) {
	b, cfg := mc.b, mc.b.cfg
	perSecond := float64(cfg.pods) * meteringChurnPercent / 100 / 60
	pr := b.begin(name, fmt.Sprintf("%s: a fresh manager, then %d %% of %d pods replaced per minute for %v", description, meteringChurnPercent, cfg.pods, cfg.meteringDuration),
		len(orgs), "org")
	if err := restart(); err != nil {
		return nil, err
	}
	start := time.Now()
	end := start.Add(cfg.meteringDuration)
	deadline := end.Add(cfg.phaseTimeout)
	var retries atomic.Int64
	var done atomic.Int64
	work := make(chan struct{}, 1<<16)
	errs := make(chan error, cfg.creators)
	var wg sync.WaitGroup
	for range cfg.creators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if err := mc.replace(ctx, deadline, &retries); err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
				done.Add(1)
			}
		}()
	}
	sent := 0
	for now := time.Now(); now.Before(end) && ctx.Err() == nil; now = time.Now() {
		for due := int(now.Sub(start).Seconds() * perSecond); sent < due; sent++ {
			work <- struct{}{}
		}
		select {
		case err := <-errs:
			close(work)
			wg.Wait()
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
	behind := sent - int(done.Load())
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	windowEnd := time.Now()
	pr.p.Seconds, pr.p.Converged, pr.p.Settled = round2(windowEnd.Sub(pr.start).Seconds()), true, true
	p := b.finish(pr, windowEnd, true)
	hours := windowEnd.Sub(pr.start).Hours()
	statusPatches, creates, refused := reportWrites(p.records, orgs)
	most := countsDistribution(statusPatches).Max
	d := scaledDistribution(statusPatches, 1/hours)
	run := &MeteringRun{Phase: name, Seconds: p.Seconds, Replaced: int(done.Load()), Behind: behind,
		CPUSeconds: p.OperatorCPUSeconds, PeakRSSMiB: p.PeakRSSMiB, PeakHeap: p.PeakHeapInuseMiB, Writes: p.Operator.Writes,
		ReportStatusWritesPerOrgHour: d, ReportCreates: sumCounts(creates), RefusedReportWrites: sumCounts(refused),
		OrgStatusWritesPerOrgHour:   round1(float64(p.Operator.ByRequest["patch organizations/status"]) / float64(len(orgs)) / hours),
		MaxReportStatusWritesPerOrg: most}
	if interval > 0 {
		run.AllowedPerOrg = int(windowEnd.Sub(pr.start)/interval) + 1
	}
	p.Extra = map[string]any{"replaced": run.Replaced, "behindAtEnd": behind, "retries": retries.Load()}
	logf("%s: %d pods replaced (%d behind), operator %.1f CPU s, peak RSS %.0f MiB, report status writes per organization per hour %.1f (max %d in the window)",
		name, run.Replaced, behind, run.CPUSeconds, run.PeakRSSMiB, d.Mean, most)
	return run, nil
}

// scaledDistribution describes counts multiplied by f (writes per hour from writes in a window).
func scaledDistribution(counts map[string]int, f float64) Distribution {
	d := countsDistribution(counts)
	return Distribution{Objects: d.Objects, Min: int(float64(d.Min)*f + 0.5), P50: int(float64(d.P50)*f + 0.5), Max: int(float64(d.Max)*f + 0.5),
		Mean: round1(d.Mean * f)}
}

// meteringMarkdown is the metering scenario's section of the summary.
func meteringMarkdown(r *Result) string {
	m := r.Metering
	if m == nil || m.Baseline == nil {
		return ""
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("\n### Metering: %d organizations, %d pods, %d %% replaced per minute for %.0f s\n\n", m.Organizations, m.Pods, m.ChurnPercentPerMinute, m.ChurnSeconds)
	w("%s Checkpoint interval %.0f s, settle delay %.0f s.\n\n", m.Method, m.CheckpointIntervalSeconds, m.SettleDelaySeconds)
	w("| Run | Pods replaced (behind) | Operator CPU (s) | Peak RSS (MiB) | Peak heap (MiB) | Writes | Report status writes per organization per hour (min / p50 / max) | Report creates | Organization status writes per organization per hour |\n")
	w("|---|---:|---:|---:|---:|---:|---|---:|---:|\n")
	for _, run := range []*MeteringRun{m.Baseline, m.Metered} {
		if run == nil {
			continue
		}
		d := run.ReportStatusWritesPerOrgHour
		w("| %s | %d (%d) | %.1f | %.1f | %.1f | %d | %.1f (%d / %d / %d) | %d | %.1f |\n", run.Phase, run.Replaced, run.Behind, run.CPUSeconds, run.PeakRSSMiB, run.PeakHeap,
			run.Writes, d.Mean, d.Min, d.P50, d.Max, run.ReportCreates, run.OrgStatusWritesPerOrgHour)
	}
	if base, met := m.Baseline, m.Metered; met != nil && base.CPUSeconds > 0 && base.PeakRSSMiB > 0 {
		w("\nMetered against not metered: CPU %.2f×, peak RSS %.2f×.\n", met.CPUSeconds/base.CPUSeconds, met.PeakRSSMiB/base.PeakRSSMiB)
	}
	if c := m.Check; c != nil {
		w("\nReports against the pods' exact integral, %.1f s after the churn stopped: %d organizations, %d pods (%d deleted, %d running), %d amounts compared, largest difference %s.\n",
			m.SecondsToFinalCheckpoint, c.Organizations, c.Pods, c.PodsDeleted, c.PodsRunning, c.Amounts, c.MaxError)
		for _, p := range c.Problems {
			w("- problem: %s\n", p)
		}
	}
	if met := m.Metered; met != nil {
		w("Most report status writes of one organization in the metered window: %d, against %d checkpoint intervals elapsed + 1.\n", met.MaxReportStatusWritesPerOrg, met.AllowedPerOrg)
	}
	return b.String()
}
