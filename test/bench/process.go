package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on Linux.
const clockTicks = 100

// procStat is what /proc says about one process.
type procStat struct {
	Comm       string
	PPid       int
	CPUSeconds float64 // user + system
	RSSKiB     int64
	HWMKiB     int64 // peak RSS of the process's life
}

func readProcStat(pid int) (procStat, error) {
	var s procStat
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	open, closing := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
	if open < 0 || closing < open {
		return s, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	s.Comm = string(data[open+1 : closing])
	fields := strings.Fields(string(data[closing+1:]))
	if len(fields) < 13 {
		return s, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	s.PPid, _ = strconv.Atoi(fields[1])
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	s.CPUSeconds = (utime + stime) / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "VmRSS":
			s.RSSKiB = parseKiB(v)
		case "VmHWM":
			s.HWMKiB = parseKiB(v)
		}
	}
	return s, nil
}

func parseKiB(v string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
	return n
}

// descendantCPU returns the CPU seconds of this process's descendants, by command name
// (etcd, kube-apiserver, kube-controller-manager as "kube-controller", the manager), plus this
// process itself as "harness".
func descendantCPU() map[string]float64 {
	out := map[string]float64{}
	if self, err := readProcStat(os.Getpid()); err == nil {
		out["harness"] = self.CPUSeconds
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	parents := map[int]int{}
	stats := map[int]procStat{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := readProcStat(pid)
		if err != nil {
			continue
		}
		parents[pid] = s.PPid
		stats[pid] = s
	}
	self := os.Getpid()
	for pid, s := range stats {
		for p := parents[pid]; p > 1; p = parents[p] {
			if p == self {
				out[s.Comm] += s.CPUSeconds
				break
			}
		}
	}
	return out
}

// manager runs bin/manager as a subprocess, as a dedicated user, and restarts it on demand.
type manager struct {
	path    string
	args    []string
	env     []string
	logPath string
	metrics string // http://127.0.0.1:port/metrics
	// readyURL, when set, is the manager's /readyz: start waits for it rather than for the
	// controllers' workers, which a replica that is not the leader never starts.
	readyURL string
	name     string // the replica's name, in its log
	// onCrash, when set, is called when the process exits without being stopped or killed.
	onCrash func(gen int)
	// stopping is set while the harness stops or kills the process; gen counts the starts.
	stopping bool
	gen      int

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	started chan struct{} // closed when both controllers log "Starting workers"
	// cpuBefore is the CPU time of the processes that already exited, so that the operator's
	// CPU time adds up over restarts.
	cpuBefore float64
	lastCPU   float64
	hwmKiB    int64
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs the manager and returns once its controllers have started their workers.
func (m *manager) start(ctx context.Context, timeout time.Duration) error {
	logFile, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(m.path, m.args...)
	cmd.Env = m.env
	started := make(chan struct{})
	want := map[string]bool{`"controller":"organization"`: false, `"controller":"organizationmember"`: false}
	if m.readyURL != "" {
		want = map[string]bool{} // closes started at its first line; readiness is polled below
	}
	w := &startWatcher{out: logFile, want: want, started: started}
	cmd.Stdout, cmd.Stderr = w, w
	// Its own process group, so that Ctrl-C reaches only the harness, which stops it in order;
	// and SIGKILL from the kernel should the harness die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting %s: %w", m.path, err)
	}
	done := make(chan struct{})
	m.mu.Lock()
	m.cmd, m.done, m.started = cmd, done, started
	m.stopping = false
	m.gen++
	gen := m.gen
	m.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(done)
		m.mu.Lock()
		crashed := !m.stopping && m.onCrash != nil
		m.mu.Unlock()
		if crashed {
			m.onCrash(gen)
		}
	}()
	who := "the manager"
	if m.name != "" {
		who += " " + m.name
	}
	logf("Started %s (pid %d), log in %s", who, cmd.Process.Pid, m.logPath)

	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-started:
		if m.readyURL != "" {
			return waitReadyURL(ctx, m.readyURL, timeout, done)
		}
		return nil
	case <-done:
		return fmt.Errorf("the manager exited while starting; see %s", m.logPath)
	case <-t.C:
		return fmt.Errorf("the manager's controllers did not start within %v; see %s", timeout, m.logPath)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pid returns the running manager's process id, or 0.
func (m *manager) pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	select {
	case <-m.done:
		return 0
	default:
	}
	return m.cmd.Process.Pid
}

// sample reads the running manager's RSS and CPU time.
func (m *manager) sample() (rssKiB int64, cpu float64) {
	pid := m.pid()
	if pid == 0 {
		m.mu.Lock()
		defer m.mu.Unlock()
		return 0, m.cpuBefore + m.lastCPU
	}
	s, err := readProcStat(pid)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		m.lastCPU = s.CPUSeconds
		m.hwmKiB = max(m.hwmKiB, s.HWMKiB)
		rssKiB = s.RSSKiB
	}
	return rssKiB, m.cpuBefore + m.lastCPU
}

// stop sends SIGTERM and waits, then SIGKILL.
func (m *manager) stop(timeout time.Duration) { m.signalAndWait(syscall.SIGTERM, timeout) }

// kill sends SIGKILL and waits: nothing is flushed or released.
func (m *manager) kill() { m.signalAndWait(syscall.SIGKILL, time.Minute) }

// signalAndWait sends sig and waits for the process to exit, then SIGKILL after timeout. The
// exit is the harness's doing: it is not restarted as a crash.
func (m *manager) signalAndWait(sig syscall.Signal, timeout time.Duration) {
	m.sample() // last CPU reading of this process
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.stopping = true
	m.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	select {
	case <-done:
	default:
		_ = cmd.Process.Signal(sig)
		select {
		case <-done:
		case <-time.After(timeout):
			logf("The manager did not stop within %v; killing it", timeout)
			_ = cmd.Process.Kill()
			<-done
		}
	}
	m.mu.Lock()
	m.cpuBefore += m.lastCPU
	m.lastCPU = 0
	m.cmd = nil
	m.mu.Unlock()
}

// startWatcher copies the manager's output to its log and closes started once every wanted
// controller has logged "Starting workers" (controller-runtime logs it after its caches synced).
type startWatcher struct {
	out     io.Writer
	mu      sync.Mutex
	buf     []byte
	want    map[string]bool
	started chan struct{}
	closed  bool
}

func (w *startWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.buf = append(w.buf, p...)
		for {
			i := bytes.IndexByte(w.buf, '\n')
			if i < 0 {
				break
			}
			line := string(w.buf[:i])
			w.buf = w.buf[i+1:]
			if strings.Contains(line, "Starting workers") {
				for k := range w.want {
					if strings.Contains(line, k) {
						w.want[k] = true
					}
				}
			}
			all := true
			for _, seen := range w.want {
				all = all && seen
			}
			if all {
				w.closed = true
				w.buf = nil
				close(w.started)
				break
			}
		}
	}
	return w.out.Write(p)
}

// metricsSample is what the manager's metrics endpoint says at one moment.
type metricsSample struct {
	HeapInuse  float64
	HeapAlloc  float64
	Reconciles map[string]float64 // by controller, all results
	Errors     map[string]float64 // reconcile errors by controller
	Depth      map[string]float64 // workqueue depth by controller
	// ReconcileSeconds and QueueSeconds are the sums of the reconcile-time and queue-wait
	// histograms by controller; ReconcileCount and QueueCount their counts.
	ReconcileSeconds, ReconcileCount map[string]float64
	QueueSeconds, QueueCount         map[string]float64
	// Leader is controller-runtime's leader_election_master_status: this replica leads.
	Leader bool
}

var errNoManager = errors.New("the manager is not running")

func (m *manager) scrape(ctx context.Context) (metricsSample, error) {
	s := metricsSample{Reconciles: map[string]float64{}, Errors: map[string]float64{}, Depth: map[string]float64{},
		ReconcileSeconds: map[string]float64{}, ReconcileCount: map[string]float64{},
		QueueSeconds: map[string]float64{}, QueueCount: map[string]float64{}}
	if m.pid() == 0 {
		return s, errNoManager
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.metrics, nil)
	if err != nil {
		return s, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("metrics: %s", resp.Status)
	}
	// Counters summed by the label that names their controller or queue.
	byLabel := map[string]struct {
		into  map[string]float64
		label string
	}{
		"controller_runtime_reconcile_total":              {s.Reconciles, "controller"},
		"controller_runtime_reconcile_errors_total":       {s.Errors, "controller"},
		"controller_runtime_reconcile_time_seconds_sum":   {s.ReconcileSeconds, "controller"},
		"controller_runtime_reconcile_time_seconds_count": {s.ReconcileCount, "controller"},
		"workqueue_depth":                        {s.Depth, "name"},
		"workqueue_queue_duration_seconds_sum":   {s.QueueSeconds, "name"},
		"workqueue_queue_duration_seconds_count": {s.QueueCount, "name"},
	}
	err = scanSamples(resp.Body, func(name, labels string, v float64) {
		switch name {
		case "go_memstats_heap_inuse_bytes":
			s.HeapInuse = v
		case "go_memstats_heap_alloc_bytes":
			s.HeapAlloc = v
		case "leader_election_master_status":
			s.Leader = s.Leader || v == 1
		default:
			if c, ok := byLabel[name]; ok {
				c.into[label(labels, c.label)] += v
			}
		}
	})
	return s, err
}

// scanSamples calls fn with the name, labels and value of every sample of a Prometheus text
// exposition.
func scanSamples(r io.Reader, fn func(name, labels string, v float64)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		nameLabels, value, ok := cutLast(line, ' ')
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		name, labels, _ := strings.Cut(nameLabels, "{")
		fn(name, labels, v)
	}
	return sc.Err()
}

func cutLast(s string, sep byte) (string, string, bool) {
	i := strings.LastIndexByte(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

func label(labels, name string) string {
	i := strings.Index(labels, name+`="`)
	if i < 0 {
		return ""
	}
	rest := labels[i+len(name)+2:]
	j := strings.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return rest[:j]
}

// sampler watches the manager's memory, heap and CPU, and the CPU of every process the
// benchmark started, for the whole run; phases read peaks and deltas from it.
type sampler struct {
	mgr *manager

	mu sync.Mutex
	// heapEvery is how many 500 ms ticks pass between two scrapes of the manager's metrics
	// (4: every 2 s); a scrape costs the manager some CPU, so idle windows scrape less.
	heapEvery int
	peakRSS   int64   // KiB, since the last reset
	peakHeap  float64 // heap in use, bytes, since the last reset
	lastHeap  float64
	allRSS    int64
	allHeap   float64
}

func (s *sampler) run(ctx context.Context) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rss, _ := s.mgr.sample()
		var heap float64
		s.mu.Lock()
		every := max(s.heapEvery, 1)
		s.mu.Unlock()
		if n%every == 0 {
			if m, err := s.mgr.scrape(ctx); err == nil {
				heap = m.HeapInuse
			}
		}
		n++
		s.mu.Lock()
		s.peakRSS = max(s.peakRSS, rss)
		s.allRSS = max(s.allRSS, rss)
		if heap > 0 {
			s.lastHeap = heap
			s.peakHeap = max(s.peakHeap, heap)
			s.allHeap = max(s.allHeap, heap)
		}
		s.mu.Unlock()
	}
}

// resetPeaks starts a new peak window and returns the peaks of the previous one.
func (s *sampler) resetPeaks() (rssKiB int64, heap float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rssKiB, heap = s.peakRSS, s.peakHeap
	s.peakRSS, s.peakHeap = 0, 0
	return rssKiB, heap
}

func (s *sampler) setHeapEvery(ticks int) {
	s.mu.Lock()
	s.heapEvery = ticks
	s.mu.Unlock()
}

func (s *sampler) overall() (rssKiB int64, heap float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.allRSS, s.allHeap
}

func writeFile(dir, name, content string) (string, error) {
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, []byte(content), 0o600)
}
