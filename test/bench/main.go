// Command bench measures org-operator on a local control plane: how fast it brings many
// organizations to Ready, how many API requests it makes doing so, what it writes while nothing
// changes and after a restart, how it handles churn and pod usage, and how much memory and CPU
// it takes. It is the program behind `make bench`; docs/performance.md explains the results.
//
//	go build -o bin/bench ./test/bench
//	KUBEBUILDER_ASSETS=bin/k8s/v1.37.2 bin/bench --manager bin/manager [-orgs=1000] [-idle=5m] ...
//
// It starts etcd, kube-apiserver (with an audit log) and kube-controller-manager on 127.0.0.1,
// runs bin/manager as a subprocess under the operator's own ServiceAccount user (bound only to
// config/rbac/role.yaml), drives the scenarios through counted clients, and reads the operator's
// requests from the audit log. Everything it starts is stopped before it exits, including on
// Ctrl-C. It prints a Markdown summary and writes the full results as JSON.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/orgoperator/org-operator/internal/controlplane"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

type config struct {
	repo, manager, binDir, out string

	orgs, members, admins, extraNamespaces int
	creators                               int
	profileScenario, profileOut            string
	profileSeconds                         time.Duration

	concurrency int
	qps         float64
	burst       int
	managerArgs string
	webhooks    bool

	idle     time.Duration
	restart  bool
	joins    int
	projects int
	pods     int
	podDelta int

	meteringDuration, meteringInterval time.Duration

	quotaLimit, quotaBurst, quotaNamespaces int
	quotaKinds                              map[string]bool
	quotaSequential, quotaProbe             int

	floor        bool
	scenarios    map[string]bool
	faults       map[string]bool
	webhookDown  time.Duration
	partition    time.Duration
	poll         time.Duration
	phaseTimeout time.Duration
	timeout      time.Duration
	seed         int64
	keep         bool
	notes        string
}

func main() {
	os.Exit(run())
}

func run() int {
	cfg, err := parseFlags()
	if err != nil {
		logf("%v", err)
		return 2
	}
	// Stop everything we started on Ctrl-C or SIGTERM; the deadline bounds the whole run.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()

	workDir, err := os.MkdirTemp("", "org-operator-bench-")
	if err != nil {
		logf("%v", err)
		return 1
	}
	failed := true
	defer func() {
		if cfg.keep || failed {
			logf("Logs and the audit log are kept in %s", workDir)
			return
		}
		_ = os.RemoveAll(workDir)
	}()

	res, err := runBench(ctx, cfg, workDir)
	if res != nil {
		fmt.Print(markdown(res))
		if path, werr := writeResults(cfg, res); werr != nil {
			logf("Writing results: %v", werr)
		} else {
			logf("Results written to %s", path)
		}
	}
	if err != nil {
		logf("Benchmark failed: %v", err)
		return 1
	}
	failed = false
	return 0
}

func parseFlags() (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	fs.StringVar(&cfg.manager, "manager", "bin/manager", "The manager binary to benchmark (make build).")
	fs.StringVar(&cfg.binDir, "bin-dir", os.Getenv("KUBEBUILDER_ASSETS"), "Directory of etcd, kube-apiserver and kube-controller-manager (make control-plane); defaults to $KUBEBUILDER_ASSETS.")
	fs.StringVar(&cfg.out, "out", "", "JSON results file (.json is added to a name without an extension), the Markdown summary next to it as .md; default bench/results/<date>-orgs<N>.json in the repository.")
	fs.IntVar(&cfg.orgs, "orgs", 100, "Organizations to create.")
	fs.IntVar(&cfg.members, "members", 5, "Members per organization.")
	fs.IntVar(&cfg.admins, "admins", 1, "Of those, members with admin: true.")
	fs.IntVar(&cfg.extraNamespaces, "namespaces", 2, "Namespaces labelled into each organization, besides its home namespace.")
	fs.IntVar(&cfg.creators, "creators", 8, "Parallel creators in the harness.")
	fs.IntVar(&cfg.concurrency, "concurrency", 16, "Manager --concurrency (reconciles per controller at once); 16 is the manager's default.")
	fs.Float64Var(&cfg.qps, "qps", 100, "Manager --kube-api-qps; 100 is the manager's default. Negative disables client-side rate limiting.")
	fs.IntVar(&cfg.burst, "burst", 200, "Manager --kube-api-burst; 200 is the manager's default.")
	fs.BoolVar(&cfg.webhooks, "webhooks", true, "Serve the admission webhooks from the manager and register them, as a real install does.")
	fs.StringVar(&cfg.profileScenario, "apiserver-profile", "", "Take a CPU profile of kube-apiserver from the start of this scenario (go tool pprof reads it).")
	fs.StringVar(&cfg.profileOut, "apiserver-profile-out", "kube-apiserver.pprof", "Where -apiserver-profile writes the profile.")
	fs.DurationVar(&cfg.profileSeconds, "apiserver-profile-duration", 20*time.Second, "How long -apiserver-profile profiles.")
	fs.StringVar(&cfg.managerArgs, "manager-args", "", "More manager flags, space-separated (e.g. -manager-args=--pprof-bind-address=127.0.0.1:6060).")
	fs.DurationVar(&cfg.idle, "idle", 60*time.Second, "Idle window after convergence (the issue asks for 5m).")
	fs.BoolVar(&cfg.restart, "restart", true, "After the idle window, restart the manager (a forced full resync) and count its writes.")
	fs.IntVar(&cfg.joins, "joins", 5, "Join scenario: new namespaces labelled into the largest organization one at a time, then taken out again one at a time.")
	fs.IntVar(&cfg.projects, "projects", 3, "Projects scenario: projects each organization creates at once.")
	fs.IntVar(&cfg.pods, "pods", 3000, "Pods to spread over the organizations' namespaces in the usage scenario.")
	fs.IntVar(&cfg.podDelta, "pod-changes", 100, "Pods deleted and created (half each) after the usage has converged.")
	fs.DurationVar(&cfg.meteringDuration, "metering-duration", 3*time.Minute, "Metering scenario: how long the -pods pods churn (10 % replaced per minute), once without metering and once with it.")
	fs.DurationVar(&cfg.meteringInterval, "metering-interval", time.Minute, "Metering scenario: the metered manager's --usage-checkpoint-interval (the manager's default is 5m).")
	fs.IntVar(&cfg.quotaLimit, "quota-limit", 50, "Quota burst: the organization-wide quota, in pods.")
	fs.IntVar(&cfg.quotaBurst, "quota-burst", 200, "Quota burst: pods created at once.")
	fs.IntVar(&cfg.quotaNamespaces, "quota-namespaces", 5, "Quota burst: namespaces of the organization, its home namespace included.")
	quotaKinds := fs.String("quota-kinds", "baseline,pods,pvcs,deployments,resize,latency,probe", "Quota scenario: which measurements to make (baseline: the same pod creations without the webhook, for comparison; pods, pvcs, deployments: a burst of -quota-burst creations against a limit of -quota-limit; resize: -quota-burst in-place resizes of which exactly -quota-limit fit; latency: -quota-sequential pod creations one at a time; probe: the refused-while-room-existed probe).")
	fs.IntVar(&cfg.quotaSequential, "quota-sequential", 100, "Quota scenario: pods created one at a time to measure the charging webhook's latency at concurrency 1.")
	fs.IntVar(&cfg.quotaProbe, "quota-probe", 30, "Quota scenario: delete-then-create rounds of the refused-while-room-existed probe in a full organization.")
	fs.BoolVar(&cfg.floor, "floor", true, "Before the manager starts, measure the floor on a control plane of its own: the converge scenario's creates and the operator's fewest writes, by 24 writers with no operator; converge is reported as a ratio to it.")
	scenarios := fs.String("scenarios", "converge,projects,idle,join,churn,usage,quota", "Scenarios to run, in this order (metering last); projects, idle, join, churn, usage and metering need converge. faults (the fault suite, make test-faults) runs alone.")
	faults := fs.String("faults", strings.Join(faultCases, ","), "Faults scenario: which cases to run (kill: SIGKILL at three moments of a -orgs converge; delete: SIGKILL during Cascade deletions and member removals; control-plane: kube-apiserver and etcd restarted mid-converge; webhook-down: every replica stopped for -webhook-down; failover: two replicas, the leader killed during a -quota-burst pod burst; partition: two replicas, the leader paused for -partition; metering: SIGKILL while metered pods run, then every usage report against the pods' exact integral).")
	fs.DurationVar(&cfg.webhookDown, "webhook-down", 30*time.Second, "Faults scenario: how long every replica stays stopped in the webhook-down case.")
	fs.DurationVar(&cfg.partition, "partition", 60*time.Second, "Faults scenario: how long the leader stays cut off in the partition case.")
	fs.DurationVar(&cfg.poll, "poll", 0, "Interval of the polls (a List of organizations and of members) that wait for a namespace join or leave and for the fault cases; the scenarios' convergence is watched instead. Default 250ms, plus 1ms per organization.")
	fs.DurationVar(&cfg.phaseTimeout, "phase-timeout", 0, "Longest wait for one scenario to converge; default 2m plus 0.6s per organization.")
	fs.DurationVar(&cfg.timeout, "timeout", 90*time.Minute, "Longest run as a whole.")
	fs.Int64Var(&cfg.seed, "seed", 1, "Seed of the random choices (which members, organizations and pods change).")
	fs.BoolVar(&cfg.keep, "keep", false, "Keep the work directory (control plane and manager logs, audit log).")
	fs.StringVar(&cfg.notes, "notes", "", "Free text stored with the results, e.g. the load on the machine.")
	_ = fs.Parse(os.Args[1:])

	var err error
	if cfg.repo, err = controlplane.RepoRoot(); err != nil {
		return nil, err
	}
	if cfg.binDir == "" {
		return nil, errors.New("no control plane binaries: pass -bin-dir or set KUBEBUILDER_ASSETS (make control-plane builds them)")
	}
	for _, p := range []*string{&cfg.manager, &cfg.binDir} {
		if *p, err = filepath.Abs(*p); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(cfg.manager); err != nil {
		return nil, fmt.Errorf("manager binary: %w (make build)", err)
	}
	if cfg.quotaNamespaces < 1 || cfg.quotaBurst < 1 || cfg.quotaLimit < 1 {
		return nil, errors.New("need -quota-namespaces, -quota-burst and -quota-limit >= 1")
	}
	if cfg.orgs < 1 || cfg.members < 1 || cfg.admins < 0 || cfg.admins > cfg.members || cfg.extraNamespaces < 0 || cfg.creators < 1 {
		return nil, errors.New("need -orgs >= 1, -members >= 1, 0 <= -admins <= -members, -namespaces >= 0, -creators >= 1")
	}
	cfg.quotaKinds = map[string]bool{}
	for _, k := range strings.Split(*quotaKinds, ",") {
		switch k = strings.TrimSpace(k); k {
		case "baseline", "pods", "pvcs", "deployments", "resize", "latency", "probe":
			cfg.quotaKinds[k] = true
		case "":
		default:
			return nil, fmt.Errorf("unknown -quota-kinds entry %q", k)
		}
	}
	if cfg.quotaSequential < 1 || cfg.quotaProbe < 1 {
		return nil, errors.New("need -quota-sequential and -quota-probe >= 1")
	}
	if cfg.joins < 1 {
		return nil, errors.New("need -joins >= 1")
	}
	if cfg.projects < 1 {
		return nil, errors.New("need -projects >= 1")
	}
	cfg.scenarios = map[string]bool{}
	for _, s := range strings.Split(*scenarios, ",") {
		switch s = strings.TrimSpace(s); s {
		case "converge", "projects", "idle", "join", "churn", "usage", "quota", "metering", "faults":
			cfg.scenarios[s] = true
		case "":
		default:
			return nil, fmt.Errorf("unknown scenario %q", s)
		}
	}
	if !cfg.scenarios["converge"] && (cfg.scenarios["projects"] || cfg.scenarios["idle"] || cfg.scenarios["join"] || cfg.scenarios["churn"] || cfg.scenarios["usage"] || cfg.scenarios["metering"]) {
		return nil, errors.New("projects, idle, join, churn, usage and metering need the converge scenario")
	}
	if cfg.meteringDuration <= 0 || cfg.meteringInterval <= 0 {
		return nil, errors.New("need -metering-duration and -metering-interval > 0")
	}
	if cfg.scenarios["faults"] && len(cfg.scenarios) > 1 {
		return nil, errors.New("the faults scenario runs alone")
	}
	cfg.faults = map[string]bool{}
	for _, c := range strings.Split(*faults, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		if !slices.Contains(faultCases, c) {
			return nil, fmt.Errorf("unknown fault case %q", c)
		}
		cfg.faults[c] = true
	}
	if cfg.phaseTimeout == 0 {
		cfg.phaseTimeout = 2*time.Minute + time.Duration(cfg.orgs)*600*time.Millisecond
	}
	if cfg.poll == 0 {
		cfg.poll = 250*time.Millisecond + time.Duration(cfg.orgs)*time.Millisecond
	}
	if cfg.out == "" {
		name := fmt.Sprintf("orgs%d", cfg.orgs)
		if cfg.scenarios["faults"] {
			name = "faults"
		}
		cfg.out = filepath.Join(cfg.repo, "bench", "results", fmt.Sprintf("%s-%s.json", time.Now().Format("2006-01-02"), name))
	}
	// A name without an extension would give a JSON file without one, and its summary the .md.
	if filepath.Ext(cfg.out) == "" {
		cfg.out += ".json"
	}
	return cfg, nil
}

func runBench(ctx context.Context, cfg *config, workDir string) (*Result, error) {
	res := newResult(cfg)
	begun := time.Now()
	// The floor first, on a control plane of its own that is stopped before the run's starts.
	var floorErr error
	if cfg.floor && !cfg.scenarios["faults"] {
		if res.Floor, floorErr = measureFloor(ctx, cfg, workDir); floorErr != nil {
			floorErr = fmt.Errorf("floor: %w", floorErr)
			logf("%v", floorErr)
		}
	}
	logf("Starting the control plane (work directory %s)", workDir)
	started := time.Now()
	c, err := startCluster(ctx, cfg, workDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		logf("Stopping the control plane")
		if err := c.cp.Stop(); err != nil {
			logf("Stopping the control plane: %v", err)
		}
	}()
	logf("Control plane is up at %s (%s)", c.host, time.Since(started).Round(100*time.Millisecond))
	if cfg.scenarios["faults"] {
		err := runFaults(ctx, cfg, c, workDir, res)
		if err != nil {
			res.Errors = strings.Split(err.Error(), "\n")
		}
		res.Seconds = round1(time.Since(begun).Seconds())
		return res, err
	}

	port, err := freePort()
	if err != nil {
		return nil, err
	}
	mgr := &manager{
		path:    cfg.manager,
		args:    c.managerArgs(cfg, port),
		env:     append(os.Environ(), "KUBECONFIG="+c.operatorKubeconfig),
		logPath: filepath.Join(workDir, "manager.log"),
		metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", port),
	}
	res.Config.ManagerArgs = mgr.args
	if err := mgr.start(ctx, 2*time.Minute); err != nil {
		mgr.stop(20 * time.Second)
		return nil, err
	}
	defer mgr.stop(20 * time.Second)

	smp := &sampler{mgr: mgr, heapEvery: 4}
	smpCtx, stopSampler := context.WithCancel(ctx)
	defer stopSampler()
	go smp.run(smpCtx)

	b := &bench{
		cfg: cfg, c: c, mgr: mgr, smp: smp, res: res,
		audit:  newAuditLog(filepath.Join(workDir, "audit.log")),
		world:  &world{orgs: map[string]*orgModel{}},
		poller: &poller{c: c, interval: cfg.poll},
	}
	res.Machine.LoadAvgStart = loadAvg()
	cpuStart := descendantCPU()

	err = errors.Join(floorErr, b.runScenarios(ctx))
	if err != nil {
		res.Errors = strings.Split(err.Error(), "\n")
	}

	res.Machine.LoadAvgEnd = loadAvg()
	res.CPUSecondsByProcess = diffFloat(cpuStart, descendantCPU())
	_, res.Operator.CPUSeconds = mgr.sample()
	// The manager's accounting adds up over restarts; /proc only knows the process running now.
	res.CPUSecondsByProcess[managerComm(cfg)] = round1(res.Operator.CPUSeconds)
	rss, heap := smp.overall()
	mgr.mu.Lock()
	res.Operator.PeakRSSMiB = round1(float64(max(mgr.hwmKiB, rss)) / 1024)
	mgr.mu.Unlock()
	res.Operator.PeakHeapInuseMiB = round1(heap / (1 << 20))
	res.Operator.CPUSeconds = round1(res.Operator.CPUSeconds)
	b.crossCheck()
	res.Seconds = round1(time.Since(begun).Seconds())
	return res, err
}

// bench holds what the scenarios share.
type bench struct {
	cfg    *config
	c      *cluster
	mgr    *manager
	smp    *sampler
	audit  *auditLog
	world  *world
	poller *poller
	res    *Result
}

func (b *bench) runScenarios(ctx context.Context) error {
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"converge", b.converge},
		{"projects", b.projects},
		{"idle", b.idle},
		{"join", b.join},
		{"churn", b.churn},
		{"usage", b.usage},
		{"quota", b.quotaBurst},
		{"metering", b.metering},
	}
	// A scenario that fails is reported and the next one runs, except after converge: the
	// others start from its world.
	var errs []error
	for _, s := range steps {
		if !b.cfg.scenarios[s.name] {
			continue
		}
		logf("Scenario %s", s.name)
		if s.name == b.cfg.profileScenario {
			go func() {
				if err := b.c.profileAPIServer(ctx, b.cfg.profileOut, b.cfg.profileSeconds); err != nil {
					logf("%v", err)
					return
				}
				logf("kube-apiserver CPU profile of scenario %s written to %s", s.name, b.cfg.profileOut)
			}()
		}
		if err := s.run(ctx); err != nil {
			errs = append(errs, fmt.Errorf("scenario %s: %w", s.name, err))
			logf("Scenario %s failed: %v", s.name, err)
			if s.name == "converge" {
				break
			}
		}
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
	}
	return errors.Join(errs...)
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func gitDescribe(repo string) (commit string, dirty []string) {
	out, err := exec.Command("git", "-C", repo, "rev-parse", "--short", "HEAD").Output()
	if err == nil {
		commit = strings.TrimSpace(string(out))
	}
	// Changes to what the manager is built from.
	out, err = exec.Command("git", "-C", repo, "status", "--porcelain", "--", "main.go", "api", "controllers", "internal", "go.mod").Output()
	if err == nil {
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" {
				dirty = append(dirty, l)
			}
		}
	}
	return commit, dirty
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[bench %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

func diffFloat(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d > 0.005 {
			out[k] = round1(d)
		}
	}
	return out
}
