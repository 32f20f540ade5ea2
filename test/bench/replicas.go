package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/orgoperator/org-operator/internal/balancer"
	"github.com/orgoperator/org-operator/internal/controlplane"
)

// The manager's leader election timing (controller-runtime's defaults, which the chart keeps).
const (
	leaseDuration = 15 * time.Second
	retryPeriod   = 2 * time.Second
	// takeoverBound is the longest a standby may take to lead once the leader stopped renewing.
	// The standby sees the last renewal only at its next retry (up to 2.2 retry periods with
	// client-go's jitter), counts the lease duration from then, and acquires at the retry after
	// that; plus two seconds for a loaded machine.
	takeoverBound = leaseDuration + 2*22*retryPeriod/10 + 2*time.Second
)

// replicas runs the manager as the chart does: processes with leader election, every one serving
// the webhooks, behind one address that the balancer keeps for them in place of the Service.
type replicas struct {
	b     *bench
	lb    *balancer.Balancer
	procs []*manager

	mu       sync.Mutex
	restarts []int // by replica: exits of its own, after which it was started again
}

// restartCrashed starts replica i again after it exited by itself, with the kubelet's back-off
// (10 s, doubling, up to 5 minutes; the first restart at once), unless the harness started or
// stopped it in the meantime.
func (r *replicas) restartCrashed(ctx context.Context, i, gen int) {
	m := r.procs[i]
	r.mu.Lock()
	n := r.restarts[i]
	r.restarts[i]++
	r.mu.Unlock()
	delay := time.Duration(0)
	if n > 0 {
		delay = min(10*time.Second<<(n-1), 5*time.Minute)
	}
	m.mu.Lock()
	state := m.cmd.ProcessState.String()
	m.mu.Unlock()
	logf("The manager %s exited by itself (%s, see %s); starting it again in %v, as the kubelet would", m.name, state, m.logPath, delay)
	select {
	case <-ctx.Done():
		return
	case <-time.After(delay):
	}
	m.mu.Lock()
	stale := m.gen != gen || m.stopping
	m.mu.Unlock()
	if stale {
		return
	}
	if err := r.start(ctx, i); err != nil {
		logf("Starting %s again: %v", m.name, err)
	}
}

// restartCount is how many times replica i exited by itself.
func (r *replicas) restartCount(i int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.restarts[i]
}

// startReplicas starts n managers behind the webhook address envtest registered.
func (b *bench) startReplicas(ctx context.Context, workDir string, n int) (*replicas, error) {
	hooks := b.c.cp.Env.WebhookInstallOptions
	lb, err := balancer.Listen(ctx, fmt.Sprintf("%s:%d", hooks.LocalServingHost, hooks.LocalServingPort), balancer.Options{})
	if err != nil {
		return nil, fmt.Errorf("listening for the webhooks: %w", err)
	}
	r := &replicas{b: b, lb: lb, restarts: make([]int, n)}
	var backends []balancer.Backend
	for i := range n {
		ports := make([]int, 3)
		for j := range ports {
			if ports[j], err = freePort(); err != nil {
				return nil, err
			}
		}
		metricsPort, probePort, hookPort := ports[0], ports[1], ports[2]
		name := fmt.Sprintf("org-operator-%d", i)
		m := &manager{
			path:     b.cfg.manager,
			args:     r.args(metricsPort, probePort, hookPort),
			env:      append(os.Environ(), "KUBECONFIG="+b.c.operatorKubeconfig, "POD_NAME="+name),
			logPath:  filepath.Join(workDir, name+".log"),
			metrics:  fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort),
			readyURL: fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort),
			name:     name,
		}
		idx := i
		m.onCrash = func(gen int) { r.restartCrashed(ctx, idx, gen) }
		r.procs = append(r.procs, m)
		backends = append(backends, balancer.Backend{Addr: fmt.Sprintf("127.0.0.1:%d", hookPort), ReadyURL: m.readyURL})
	}
	lb.SetBackends(ctx, backends...)
	for i := range r.procs {
		if err := r.start(ctx, i); err != nil {
			r.stopAll()
			return nil, err
		}
	}
	return r, nil
}

// args are the chart's flags: leader election in the operator's namespace, webhooks served
// with a certificate from outside (envtest's here, cert-manager's or the rotator's there).
func (r *replicas) args(metricsPort, probePort, hookPort int) []string {
	cfg := r.b.cfg
	hooks := r.b.c.cp.Env.WebhookInstallOptions
	return append([]string{
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort),
		"--metrics-secure=false",
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probePort),
		"--leader-elect=true",
		"--namespace=" + controlplane.OperatorNamespace,
		fmt.Sprintf("--concurrency=%d", cfg.concurrency),
		fmt.Sprintf("--kube-api-qps=%g", cfg.qps),
		fmt.Sprintf("--kube-api-burst=%d", cfg.burst),
		"--enable-webhooks=true",
		"--webhook-certs=external",
		"--webhook-host=127.0.0.1",
		fmt.Sprintf("--webhook-port=%d", hookPort),
		"--webhook-cert-dir=" + hooks.LocalServingCertDir,
		fmt.Sprintf("--usage-checkpoint-interval=%v", faultsCheckpointInterval),
		fmt.Sprintf("--usage-settle-delay=%v", faultsSettleDelay),
	}, strings.Fields(cfg.managerArgs)...)
}

// start starts replica i and returns once it is ready (serving webhooks), not once elected.
func (r *replicas) start(ctx context.Context, i int) error {
	return r.procs[i].start(ctx, 2*time.Minute)
}

// kill sends SIGKILL to replica i and waits for it to be gone; the harness starts it again
// itself, when it chooses.
func (r *replicas) kill(i int) { r.procs[i].kill() }

// signal sends sig (SIGSTOP, SIGCONT) to replica i.
func (r *replicas) signal(i int, sig syscall.Signal) error {
	pid := r.procs[i].pid()
	if pid == 0 {
		return fmt.Errorf("replica %d is not running", i)
	}
	return syscall.Kill(pid, sig)
}

func (r *replicas) stopAll() {
	for _, m := range r.procs {
		_ = syscall.Kill(m.pid(), syscall.SIGCONT) // a paused replica cannot stop
		m.stop(20 * time.Second)
	}
}

// leader returns the replica whose leader election metric says it leads, or -1; the replicas
// in skip (a paused one, which would not answer) are not asked.
func (r *replicas) leader(ctx context.Context, skip ...int) int {
	for i, m := range r.procs {
		if m.pid() == 0 || slices.Contains(skip, i) {
			continue
		}
		if s, err := m.scrape(ctx); err == nil && s.Leader {
			return i
		}
	}
	return -1
}

// waitLeader waits until some replica leads, and points the bench at it (its metrics tell
// when the operator is quiet).
func (r *replicas) waitLeader(ctx context.Context, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		if i := r.leader(ctx); i >= 0 {
			r.b.mgr = r.procs[i]
			return i, nil
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("no replica became leader within %v", timeout)
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitReadyURL polls a readiness endpoint until it answers 200.
func waitReadyURL(ctx context.Context, url string, timeout time.Duration, done <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return errors.New("the manager exited while starting")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %v", url, timeout)
		}
	}
}
