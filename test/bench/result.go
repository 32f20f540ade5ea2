package main

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Result is everything one run measured; it is written as JSON to bench/results.
type Result struct {
	Date       string   `json:"date"`
	Commit     string   `json:"commit"`
	DirtyFiles []string `json:"dirtyFiles,omitempty"`
	// ManagerBuild is what the manager binary says it was built from (Go build info).
	ManagerBuild string   `json:"managerBuild"`
	Machine      Machine  `json:"machine"`
	Config       Settings `json:"config"`
	// Seconds is the whole run, the floor and the control plane's start included.
	Seconds float64 `json:"seconds"`
	// Floor is the converge scenario's fewest writes with no operator, measured before the
	// manager starts on a control plane of its own; nil with -floor=false or if it failed.
	Floor  *Floor   `json:"floor,omitempty"`
	Phases []*Phase `json:"phases"`
	// Skipped lists scenarios that could not run, and why.
	Skipped  []Skipped       `json:"skipped,omitempty"`
	Operator OperatorSummary `json:"operator"`
	// CPUSecondsByProcess is the CPU time of every process of the run, the harness included.
	CPUSecondsByProcess map[string]float64 `json:"cpuSecondsByProcess"`
	// Verification lists differences between the RBAC objects the operator made and what the
	// world asks for, after each scenario (empty when all is as it should be).
	Verification map[string][]string `json:"verification"`
	// CrossCheck compares the harness's own request counts with the audit log's.
	CrossCheck []string `json:"crossCheck"`
	Bars       []Bar    `json:"bars"`
	// Metering is the metering scenario's churn with and without metering, and its check.
	Metering *MeteringResult `json:"metering,omitempty"`
	// Faults are the cases of the faults scenario.
	Faults []*FaultCase `json:"faults,omitempty"`
	// Errors are the scenarios that failed (did not converge in time, or could not be set up).
	Errors []string `json:"errors,omitempty"`
}

type Machine struct {
	CPUs         int     `json:"cpus"`
	MemoryGiB    float64 `json:"memoryGiB"`
	CPUModel     string  `json:"cpuModel"`
	Kernel       string  `json:"kernel"`
	GoVersion    string  `json:"goVersion"`
	LoadAvgStart string  `json:"loadAvgStart"`
	LoadAvgEnd   string  `json:"loadAvgEnd"`
}

type Settings struct {
	Orgs                int      `json:"orgs"`
	MembersPerOrg       int      `json:"membersPerOrg"`
	AdminsPerOrg        int      `json:"adminsPerOrg"`
	NamespacesPerOrg    int      `json:"namespacesPerOrg"`
	Creators            int      `json:"creators"`
	Concurrency         int      `json:"concurrency"`
	QPS                 float64  `json:"qps"`
	Burst               int      `json:"burst"`
	Webhooks            bool     `json:"webhooks"`
	IdleSeconds         float64  `json:"idleSeconds"`
	Restart             bool     `json:"restart"`
	ProjectsPerOrg      int      `json:"projectsPerOrg"`
	Pods                int      `json:"pods"`
	PodChanges          int      `json:"podChanges"`
	PollIntervalSeconds float64  `json:"pollIntervalSeconds"`
	Seed                int64    `json:"seed"`
	ManagerArgs         []string `json:"managerArgs"`
	Notes               string   `json:"notes,omitempty"`
}

type OperatorSummary struct {
	// PeakRSSMiB is the highest VmHWM of the manager processes (/proc/<pid>/status).
	PeakRSSMiB float64 `json:"peakRSSMiB"`
	// PeakHeapInuseMiB is the highest go_memstats_heap_inuse_bytes seen (scraped every 2 s).
	PeakHeapInuseMiB float64 `json:"peakHeapInuseMiB"`
	// CPUSeconds is the user+system time of the manager processes over the run.
	CPUSeconds float64 `json:"cpuSeconds"`
}

type Skipped struct {
	Scenario string `json:"scenario"`
	Reason   string `json:"reason"`
}

// Bar compares a measurement with the target.
type Bar struct {
	What   string  `json:"what"`
	Target string  `json:"target"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Met    bool    `json:"met"`
}

// Phase is one measured step of a scenario.
type Phase struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Units is what the per-unit numbers divide by (organizations, changes, pods), named by UnitName.
	Units    int    `json:"units"`
	UnitName string `json:"unitName"`
	// Seconds is the time to converge (from the first change to the poll that saw every object
	// converged), or the length of the window for idle phases.
	Seconds float64 `json:"seconds"`
	// FloorRatio is Seconds over the floor's seconds (converge only).
	FloorRatio float64  `json:"floorRatio,omitempty"`
	Converged  bool     `json:"converged"`
	Pending    []string `json:"pending,omitempty"`
	// SettledSeconds is from the start of the phase to the operator's last request in it; the
	// phase's requests are counted until the operator has been quiet for a few seconds.
	SettledSeconds float64 `json:"settledSeconds"`
	Settled        bool    `json:"settled"`
	// Operator is what the operator asked of the API server, from the audit log.
	Operator Requests `json:"operator"`
	// WritesPerUnit and MinimumWritesPerUnit compare the operator's writes with the fewest that
	// can produce the objects and statuses the phase asks for (MinimumByRequest, per unit).
	WritesPerUnit        float64            `json:"writesPerUnit"`
	MinimumWritesPerUnit float64            `json:"minimumWritesPerUnit,omitempty"`
	MinimumByRequest     map[string]float64 `json:"minimumByRequest,omitempty"`
	// Harness is the harness's traffic from the audit log, by client; HarnessClient is the same
	// counted by the clients themselves.
	Harness       map[string]Requests       `json:"harness"`
	HarnessClient map[string]map[string]int `json:"harnessClient"`
	// Reconciles and ReconcileErrors are controller-runtime's counters over the phase.
	Reconciles      map[string]float64 `json:"reconciles"`
	ReconcileErrors map[string]float64 `json:"reconcileErrors"`
	// MeanReconcileSeconds and MeanQueueSeconds, by controller: how long one reconcile took and
	// how long a request waited in the work queue, on average. WorkerUtilization is the time spent
	// reconciling over (workers × phase duration): near 1, the workers are the bottleneck.
	MeanReconcileSeconds map[string]float64 `json:"meanReconcileSeconds,omitempty"`
	MeanQueueSeconds     map[string]float64 `json:"meanQueueSeconds,omitempty"`
	WorkerUtilization    map[string]float64 `json:"workerUtilization,omitempty"`
	// CPUSecondsByProcess is the CPU time of each process during the phase.
	CPUSecondsByProcess map[string]float64 `json:"cpuSecondsByProcess"`
	// CPU time of the manager, and peaks of its RSS and heap in use, during the phase.
	OperatorCPUSeconds float64 `json:"operatorCPUSeconds"`
	PeakRSSMiB         float64 `json:"peakRSSMiB"`
	PeakHeapInuseMiB   float64 `json:"peakHeapInuseMiB"`
	// TimeToReady is, per kind, from the object's creation to its last transition to converged.
	TimeToReady map[string]Percentiles `json:"timeToReady,omitempty"`
	// Distributions describe how a kind of request spread over objects (status patches per
	// organization...).
	Distributions map[string]Distribution `json:"distributions,omitempty"`
	// StatusPatchCauses says, by resource, what the operator's status patches changed (a patch
	// that changes several fields counts under each).
	StatusPatchCauses map[string]map[string]int `json:"statusPatchCauses,omitempty"`
	// Changes are the phase's changes one by one, for phases that make them one at a time.
	Changes []Change       `json:"changes,omitempty"`
	Extra   map[string]any `json:"extra,omitempty"`
	Notes   []string       `json:"notes,omitempty"`

	records []auditRecord
}

// Change is one change of a phase that makes them one at a time, measured from the change until
// the operator was quiet again.
type Change struct {
	What string `json:"what"`
	// Seconds is from the change until the poll that saw it converged.
	Seconds   float64        `json:"seconds"`
	Converged bool           `json:"converged"`
	Writes    int            `json:"writes"`
	ByRequest map[string]int `json:"byRequest"`
}

type Percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func percentiles(values []float64) Percentiles {
	if len(values) == 0 {
		return Percentiles{}
	}
	sort.Float64s(values)
	at := func(q float64) float64 {
		i := int(q*float64(len(values))+0.999999) - 1
		return values[max(0, min(i, len(values)-1))]
	}
	return Percentiles{N: len(values), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: values[len(values)-1]}
}

func (p Percentiles) round(f func(float64) float64) Percentiles {
	p.P50, p.P90, p.P99, p.Max = f(p.P50), f(p.P90), f(p.P99), f(p.Max)
	return p
}

func newResult(cfg *config) *Result {
	commit, dirty := gitDescribe(cfg.repo)
	r := &Result{
		Date: time.Now().Format(time.RFC3339), Commit: commit, DirtyFiles: dirty,
		Machine: Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), MemoryGiB: memTotalGiB(), CPUModel: cpuModel(), Kernel: kernel()},
		Config: Settings{
			Orgs: cfg.orgs, MembersPerOrg: cfg.members, AdminsPerOrg: cfg.admins, NamespacesPerOrg: 1 + cfg.extraNamespaces,
			Creators: cfg.creators, Concurrency: cfg.concurrency, QPS: cfg.qps, Burst: cfg.burst, Webhooks: cfg.webhooks,
			IdleSeconds: cfg.idle.Seconds(), Restart: cfg.restart, ProjectsPerOrg: cfg.projects, Pods: cfg.pods, PodChanges: cfg.podDelta,
			PollIntervalSeconds: cfg.poll.Seconds(), Seed: cfg.seed, Notes: cfg.notes,
		},
		Verification: map[string][]string{},
		ManagerBuild: managerBuild(cfg.manager),
	}
	return r
}

// managerBuild reads the VCS stamp Go puts in binaries built inside a git checkout.
func managerBuild(path string) string {
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return "unknown: " + err.Error()
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["vcs.revision"] == "" {
		return fmt.Sprintf("%s, %s, no VCS information (built outside a git checkout)", info.GoVersion, path)
	}
	out := fmt.Sprintf("%s, %s, commit %s", info.GoVersion, path, settings["vcs.revision"])
	if settings["vcs.modified"] == "true" {
		out += " with uncommitted changes"
	}
	return out
}

func memTotalGiB() float64 {
	data, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			return round1(float64(parseKiB(v)) / (1 << 20))
		}
	}
	return 0
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func kernel() string {
	data, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(data))
}

// phaseRun is a phase being measured.
type phaseRun struct {
	p       *Phase
	start   time.Time
	cpu     float64
	clients map[string]map[string]int
	metrics metricsSample
	procCPU map[string]float64
}

// converged records the outcome of the wait before the phase is finished.
func (pr *phaseRun) converged(conv convergence, quiet bool) {
	pr.p.Seconds, pr.p.Converged, pr.p.Pending, pr.p.Settled = round2(conv.Seconds), conv.Converged, conv.Pending, quiet
}

func (b *bench) begin(name, description string, units int, unitName string) *phaseRun {
	b.smp.resetPeaks()
	_, cpu := b.mgr.sample()
	m, _ := b.mgr.scrape(context.Background())
	clients := map[string]map[string]int{}
	for agent, c := range b.c.counters {
		clients[agent] = c.snapshot()
	}
	return &phaseRun{
		p:     &Phase{Name: name, Description: description, Units: units, UnitName: unitName},
		start: time.Now(), cpu: cpu, clients: clients, metrics: m, procCPU: descendantCPU(),
	}
}

// finish counts the phase's requests up to end and records the phase. restarted says the
// manager was restarted within the phase, so that its counters started again from zero.
func (b *bench) finish(pr *phaseRun, end time.Time, restarted bool) *Phase {
	p := pr.p
	time.Sleep(time.Second) // requests received before end may complete just after it
	if err := b.audit.refresh(); err != nil {
		p.Notes = append(p.Notes, "reading the audit log: "+err.Error())
	}
	p.records = b.audit.between(pr.start, end, isOperator)
	p.Operator = summarize(p.records)
	history := b.audit.between(time.Time{}, end, isOperator)
	p.StatusPatchCauses = map[string]map[string]int{}
	for _, res := range []string{"organizations", "organizationmembers", "organizationprojects"} {
		if c := statusCauses(history, res, pr.start, end); len(c) > 0 {
			p.StatusPatchCauses[res] = c
		}
	}
	if p.Units > 0 {
		p.WritesPerUnit = round2(float64(p.Operator.Writes) / float64(p.Units))
	}
	if last := b.audit.lastAt(func(r *auditRecord) bool { return isOperator(r) && !r.At.Before(pr.start) && r.At.Before(end) }); !last.IsZero() {
		p.SettledSeconds = round2(last.Sub(pr.start).Seconds())
	}
	p.Harness = map[string]Requests{}
	p.HarnessClient = map[string]map[string]int{}
	for agent, c := range b.c.counters {
		if d := diffCounts(pr.clients[agent], c.snapshot()); len(d) > 0 {
			p.HarnessClient[agent] = d
		}
		if recs := b.audit.between(pr.start, end, isAgent(agent)); len(recs) > 0 {
			s := summarize(recs)
			p.Harness[agent] = s
		}
	}
	m, err := b.mgr.scrape(context.Background())
	if err == nil {
		before := pr.metrics
		if restarted {
			before = metricsSample{}
		}
		p.Reconciles = diffFloat(before.Reconciles, m.Reconciles)
		p.ReconcileErrors = diffFloat(before.Errors, m.Errors)
		p.MeanReconcileSeconds, p.MeanQueueSeconds, p.WorkerUtilization = map[string]float64{}, map[string]float64{}, map[string]float64{}
		window := end.Sub(pr.start).Seconds()
		for ctrl, sum := range m.ReconcileSeconds {
			busy := sum - before.ReconcileSeconds[ctrl]
			if n := m.ReconcileCount[ctrl] - before.ReconcileCount[ctrl]; n > 0 {
				p.MeanReconcileSeconds[ctrl] = round3(busy / n)
				p.WorkerUtilization[ctrl] = round2(busy / (float64(b.cfg.concurrency) * window))
			}
		}
		for q, sum := range m.QueueSeconds {
			if n := m.QueueCount[q] - before.QueueCount[q]; n > 0 {
				p.MeanQueueSeconds[q] = round3((sum - before.QueueSeconds[q]) / n)
			}
		}
	}
	p.CPUSecondsByProcess = diffFloat(pr.procCPU, descendantCPU())
	_, cpu := b.mgr.sample()
	p.OperatorCPUSeconds = round1(cpu - pr.cpu)
	// By process name, a restarted manager would count from its own start: use the manager's
	// accounting, which adds up over restarts.
	p.CPUSecondsByProcess[managerComm(b.cfg)] = p.OperatorCPUSeconds
	rss, heap := b.smp.resetPeaks()
	p.PeakRSSMiB = round1(float64(rss) / 1024)
	p.PeakHeapInuseMiB = round1(heap / (1 << 20))
	b.res.Phases = append(b.res.Phases, p)
	logf("Phase %s: %.1fs (converged %v), operator writes %d (%.1f per %s), reads %d, events %d",
		p.Name, p.Seconds, p.Converged, p.Operator.Writes, p.WritesPerUnit, p.UnitName, p.Operator.Reads, p.Operator.Events)
	return p
}

// managerComm is the manager's process name as /proc has it: truncated to 15 bytes.
func managerComm(cfg *config) string {
	comm := filepath.Base(cfg.manager)
	return comm[:min(len(comm), 15)]
}

// waitQuiet waits until the manager's work queues are empty, its reconcile counters stand still
// and it has made no request for quietFor; it returns when that was seen.
func (b *bench) waitQuiet(ctx context.Context, timeout time.Duration) (time.Time, bool) {
	const quietFor = 3 * time.Second
	deadline := time.Now().Add(timeout)
	var prev metricsSample
	have := false
	for {
		m, err := b.mgr.scrape(ctx)
		_ = b.audit.refresh()
		last := b.audit.lastAt(isOperatorWork)
		if err == nil && have && m.Depth["organization"] == 0 && m.Depth["organizationmember"] == 0 &&
			maps.Equal(prev.Reconciles, m.Reconciles) && time.Since(last) > quietFor {
			return time.Now(), true
		}
		prev, have = m, err == nil
		if time.Now().After(deadline) || ctx.Err() != nil {
			return time.Now(), false
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// setMinimum records the fewest writes per unit, by request, and their sum.
func (p *Phase) setMinimum(min map[string]float64) {
	p.MinimumByRequest = min
	total := 0.0
	for _, v := range min {
		total += v
	}
	p.MinimumWritesPerUnit = round2(total)
}

// crossCheck compares, for the whole run, the requests the harness's clients counted with those
// the audit log recorded for them.
func (b *bench) crossCheck() {
	_ = b.audit.refresh()
	for _, agent := range sortedKeys(b.c.counters) {
		counted := b.c.counters[agent].snapshot()
		recs := b.audit.between(time.Time{}, time.Now().Add(time.Hour), isAgent(agent))
		audited := map[string]int{}
		for _, r := range recs {
			audited[r.key()]++
		}
		diff := 0
		for _, k := range sortedKeys(counted) {
			if counted[k] != audited[k] {
				diff++
				b.res.CrossCheck = append(b.res.CrossCheck, fmt.Sprintf("%s: %q counted %d, audited %d", agent, k, counted[k], audited[k]))
			}
		}
		for k, n := range audited {
			if _, ok := counted[k]; !ok {
				diff++
				b.res.CrossCheck = append(b.res.CrossCheck, fmt.Sprintf("%s: %q counted 0, audited %d", agent, k, n))
			}
		}
		if diff == 0 {
			b.res.CrossCheck = append(b.res.CrossCheck, fmt.Sprintf("%s: %d requests counted by the client, all in the audit log", agent, sumCounts(counted)))
		}
	}
}

func writeResults(cfg *config, res *Result) (string, error) {
	if err := os.MkdirAll(filepath.Dir(cfg.out), 0o755); err != nil {
		return "", err
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(cfg.out, append(data, '\n'), 0o644); err != nil {
		return "", err
	}
	// The Markdown summary next to it, for reading in a review.
	md := strings.TrimSuffix(cfg.out, filepath.Ext(cfg.out)) + ".md"
	return cfg.out, os.WriteFile(md, []byte(strings.TrimPrefix(markdown(res), "\n")), 0o644)
}
