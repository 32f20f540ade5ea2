package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/orgoperator/org-operator/internal/controlplane"
)

const (
	managerStopTimeout = 15 * time.Second
	samplesTimeout     = 60 * time.Second
)

// localFiles are what a local run keeps in the data directory.
type localFiles struct {
	etcdDir           string
	kubeconfig        string // the admin's, printed for the user
	managerKubeconfig string // the operator's ServiceAccount, for the manager
	controlPlaneLog   string
}

func localFilesIn(dataDir string) localFiles {
	return localFiles{
		etcdDir:           filepath.Join(dataDir, "etcd"),
		kubeconfig:        filepath.Join(dataDir, "kubeconfig"),
		managerKubeconfig: filepath.Join(dataDir, "manager-kubeconfig"),
		controlPlaneLog:   filepath.Join(dataDir, "control-plane.log"),
	}
}

// runLocal starts a local control plane, runs the manager against it and applies the samples.
// It stops everything on SIGINT/SIGTERM (exit 0) or when the manager exits (its exit code).
func runLocal(opts options, signals <-chan os.Signal) int {
	files := localFilesIn(opts.dataDir)
	lock, ok := claimDataDir(opts.dataDir, files.etcdDir)
	if !ok {
		return 1
	}
	defer lock.Close()
	if !apiServerPortFree(opts.port) {
		return 1
	}
	logFile, err := os.OpenFile(files.controlPlaneLog, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		logf("%v", err)
		return 1
	}
	defer logFile.Close()

	cp, took, ok := startControlPlane(opts.repo, opts.port, files, logFile)
	if !ok {
		return 1
	}
	return runOnControlPlane(cp, took, opts, files, signals)
}

// runOnControlPlane runs the manager on the started control plane, and stops the control plane
// on every way out, while runLocal still holds the data directory's lock.
func runOnControlPlane(cp *controlplane.ControlPlane, took time.Duration, opts options, files localFiles, signals <-chan os.Signal) int {
	// A signal while the control plane was starting: stop it again.
	select {
	case sig := <-signals:
		logf("Got %v while starting", sig)
		stopControlPlane(cp)
		return 0
	default:
	}
	logf("Control plane is up at %s (%s)", cp.Config.Host, took.Round(100*time.Millisecond))

	if !installLocalAccess(cp, opts.repo, files) {
		stopControlPlane(cp)
		return 1
	}
	version := serverVersion(cp)
	env := withEnv(os.Environ(), "KUBECONFIG", files.managerKubeconfig)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgrs, err := startLocalManagers(ctx, cp.Env.WebhookInstallOptions, opts, env)
	if err != nil {
		logf("%v", err)
		stopManagers(mgrs)
		stopControlPlane(cp)
		return 1
	}
	hints := func() { printHints(opts, files.kubeconfig, version, files.controlPlaneLog, mgrs) }
	return superviseLocal(cp, mgrs, opts, signals, hints)
}

// startLocalManagers starts opts.replicas managers. One serves the webhook address envtest
// registered; several serve their own ports behind a balancer on it, and elect a leader.
func startLocalManagers(ctx context.Context, hooks envtest.WebhookInstallOptions, opts options, env []string) ([]*child, error) {
	if opts.replicas == 1 {
		// The probes default to :8081; a random port avoids clashes on a workstation.
		mgr, err := startManager("the manager", opts.manager, localManagerArgs(hooks, ":0", opts.args), env, nil)
		if err != nil {
			return nil, err
		}
		return []*child{mgr}, nil
	}
	replicas, err := newReplicas(opts.replicas, hooks.LocalServingHost)
	if err != nil {
		return nil, err
	}
	if _, err := balance(ctx, hooks, replicas); err != nil {
		return nil, err
	}
	logf("The webhook configurations point at %s:%d, which forwards to the ready managers", hooks.LocalServingHost, hooks.LocalServingPort)
	var lines sync.Mutex
	var mgrs []*child
	for _, r := range replicas {
		out := &prefixWriter{mu: &lines, w: os.Stderr, prefix: []byte("[" + r.name + "] ")}
		mgr, err := startManager(r.name, opts.manager, r.args(hooks, opts.args), withEnv(env, "POD_NAME", r.name), out)
		if err != nil {
			return mgrs, err
		}
		mgrs = append(mgrs, mgr)
	}
	return mgrs, nil
}

// stopManagers stops the managers at once, so that none waits for another's timeout.
func stopManagers(mgrs []*child) {
	var wg sync.WaitGroup
	for _, m := range mgrs {
		wg.Go(func() { m.stop(managerStopTimeout) })
	}
	wg.Wait()
}

// claimDataDir creates the data directory and locks it, or logs why it cannot.
// Two etcds on one data directory hang until envtest gives up, minutes later: refuse at once.
func claimDataDir(dataDir, etcdDir string) (*os.File, bool) {
	if err := os.MkdirAll(etcdDir, 0o700); err != nil {
		logf("%v", err)
		return nil, false
	}
	lock, err := lockDataDir(dataDir)
	if err != nil {
		logf("%v", err)
		return nil, false
	}
	return lock, true
}

// apiServerPortFree checks the API server's fixed port (0 picks one) before anything starts:
// a port in use mostly means another `make run`, and saying so beats a failed start.
func apiServerPortFree(port int) bool {
	if port == 0 {
		return true
	}
	if err := portFree(port); err != nil {
		logf("Port %d on 127.0.0.1 is in use (%v).", port, err)
		logf("Is another `make run` running? Stop what uses the port, or pass --port to hack/run (--port 0 picks a free one).")
		return false
	}
	return true
}

// startControlPlane starts etcd, kube-apiserver and kube-controller-manager with the CRDs and
// webhook configurations installed, their output in logFile; it reports how long that took.
func startControlPlane(repo string, port int, files localFiles, logFile *os.File) (*controlplane.ControlPlane, time.Duration, bool) {
	// envtest would otherwise skip the control plane and use the kubeconfig's cluster.
	_ = os.Unsetenv("USE_EXISTING_CLUSTER")
	logf("Starting etcd, kube-apiserver and kube-controller-manager (data in %s, logs in %s)", files.etcdDir, files.controlPlaneLog)
	start := time.Now()
	cp, err := controlplane.Start(controlplane.Options{
		DataDir:           files.etcdDir,
		APIServerPort:     port,
		CRDDirectoryPaths: []string{filepath.Join(repo, "config", "crd", "bases")},
		// envtest serves the webhook configurations at a local port with a CA of its own, and
		// points them at the manager started below.
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			Paths: []string{filepath.Join(repo, "config", "webhook", "manifests.yaml")},
		},
		ControllerManager: true,
		Output:            logFile,
	})
	if err != nil {
		logf("Starting the control plane: %v", err)
		logf("See %s for the components' logs.", files.controlPlaneLog)
		return nil, 0, false
	}
	return cp, time.Since(start), true
}

func stopControlPlane(cp *controlplane.ControlPlane) {
	logf("Stopping the control plane")
	if err := cp.Stop(); err != nil {
		logf("Stopping the control plane: %v", err)
	}
}

// installLocalAccess writes the admin kubeconfig for the user and the operator's RBAC and
// kubeconfig for the manager, or logs why it cannot.
func installLocalAccess(cp *controlplane.ControlPlane, repo string, files localFiles) bool {
	if err := writeKubeconfig(cp, files.kubeconfig); err != nil {
		logf("Writing %s: %v", files.kubeconfig, err)
		return false
	}
	// The operator runs as its ServiceAccount, with exactly the RBAC and admission policies that
	// config/default installs: what a user tries here is what a cluster does.
	if err := installOperatorAccess(cp, repo, files.managerKubeconfig); err != nil {
		logf("Installing the operator's RBAC: %v", err)
		return false
	}
	return true
}

// serverVersion is the API server's version for the hints; a failure only costs the hint.
func serverVersion(cp *controlplane.ControlPlane) string {
	if dc, err := discovery.NewDiscoveryClientForConfig(cp.Config); err == nil {
		if v, err := dc.ServerVersion(); err == nil {
			return v.GitVersion
		}
	}
	return "unknown version"
}

// localManagerArgs points the manager's webhook server at what envtest registered, and its
// health probes at probes. Flags given after `--` come later and win.
func localManagerArgs(hooks envtest.WebhookInstallOptions, probes string, extra []string) []string {
	return append([]string{
		"--health-probe-bind-address=" + probes,
		"--webhook-certs=external",
		"--webhook-host=" + hooks.LocalServingHost,
		fmt.Sprintf("--webhook-port=%d", hooks.LocalServingPort),
		"--webhook-cert-dir=" + hooks.LocalServingCertDir,
	}, extra...)
}

// superviseLocal applies the samples, calls hints once they are in, and then waits: a signal
// stops the managers and the control plane (exit 0). A manager that exits leaves the others
// running, as a crashed replica does; the last one exiting stops the control plane (its exit code).
func superviseLocal(cp *controlplane.ControlPlane, mgrs []*child, opts options, signals <-chan os.Signal, hints func()) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	applied := applySamplesInBackground(ctx, cp, opts.samplesDir)
	exited := make(chan *child, len(mgrs))
	for _, m := range mgrs {
		go func() { <-m.done; exited <- m }()
	}
	running := len(mgrs)
	for {
		select {
		case <-applied:
			hints()
			applied = nil
		case sig := <-signals:
			logf("Got %v, stopping", sig)
			cancel()
			stopManagers(mgrs)
			stopControlPlane(cp)
			logf("Stopped; state is kept in %s", opts.dataDir)
			return 0
		case m := <-exited:
			running--
			code := exitCode(m.err)
			if len(mgrs) == 1 {
				logf("Manager exited with code %d", code)
			} else {
				logf("%s (pid %d) exited with code %d; %d of %d managers still running", m.name, m.cmd.Process.Pid, code, running, len(mgrs))
			}
			if running > 0 {
				continue
			}
			cancel()
			stopControlPlane(cp)
			return code
		}
	}
}

// applySamplesInBackground applies the samples while the manager starts (members wait for their
// organization's namespace); the channel is closed when it is done.
func applySamplesInBackground(ctx context.Context, cp *controlplane.ControlPlane, dir string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		applySamples(ctx, cp, dir)
	}()
	return done
}

func applySamples(ctx context.Context, cp *controlplane.ControlPlane, dir string) {
	if dir == "" {
		return
	}
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		logf("No samples to apply (%s does not exist)", dir)
		return
	}
	c, err := newClient(cp.Config)
	if err != nil {
		logf("Applying samples: %v", err)
		return
	}
	objs, err := readManifests(dir)
	if err != nil {
		logf("Reading samples: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, samplesTimeout)
	defer cancel()
	if err := applyAll(ctx, c, objs, sampleFieldOwner); err != nil {
		logf("Applying samples from %s: %v", dir, err)
	}
}

// installOperatorAccess applies config/rbac and writes a kubeconfig of the operator's
// ServiceAccount for the manager.
func installOperatorAccess(cp *controlplane.ControlPlane, repo, kubeconfig string) error {
	c, err := newClient(cp.Config)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), samplesTimeout)
	defer cancel()
	if err := controlplane.InstallRBAC(ctx, c, repo); err != nil {
		return err
	}
	logf("Applied config/rbac: the manager runs as %s", controlplane.OperatorUser)
	data, err := cp.OperatorKubeconfig()
	if err != nil {
		return err
	}
	return writeFileAtomic(kubeconfig, data)
}

func writeKubeconfig(cp *controlplane.ControlPlane, path string) error {
	data, err := cp.AdminKubeconfig()
	if err != nil {
		return err
	}
	return writeFileAtomic(path, data)
}

func writeFileAtomic(path string, data []byte) error {
	// Write to a temporary file and rename, so a reader never sees half a kubeconfig.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func printHints(opts options, kubeconfig, version, logPath string, mgrs []*child) {
	kubectl := kubectlHint(opts.kubectl)
	rel := func(p string) string {
		if r, err := filepath.Rel(opts.repo, p); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
		return p
	}
	fmt.Fprintf(os.Stderr, `
Local control plane is running (etcd, kube-apiserver, kube-controller-manager %s).
  export KUBECONFIG=%s
  %s get organizations
  %s get orgmembers -A
  %s get rolebindings -A -l app.kubernetes.io/managed-by=org-operator
Control plane logs: %s
Press Ctrl-C to stop; state is kept in %s/ (rm -rf %s to start over).

`, version, kubeconfig, kubectl, kubectl, kubectl, rel(logPath), rel(opts.dataDir), rel(opts.dataDir))
	if len(mgrs) > 1 {
		// The Lease's holder is hostname_<random>, the same host for all: the log names the leader.
		fmt.Fprintf(os.Stderr, "%d managers elect a leader, which logs \"Successfully acquired lease\"; to fail over, kill its pid:\n", len(mgrs))
		for _, m := range mgrs {
			fmt.Fprintf(os.Stderr, "  %s: pid %d\n", m.name, m.cmd.Process.Pid)
		}
		fmt.Fprintf(os.Stderr, "  %s get lease -n %s -w   # another holder some 15 to 20 s later (the lease duration, then a retry)\n\n",
			kubectl, controlplane.OperatorNamespace)
	}
}

// lockDataDir takes an exclusive lock on dir/run.lock, held until this process exits.
func lockDataDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "run.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid, _ := os.ReadFile(path)
		f.Close()
		return nil, fmt.Errorf("Another hack/run (pid %s) is using %s: stop it first, or pass --data-dir", strings.TrimSpace(string(pid)), dir)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// portFree reports whether the API server can listen on 127.0.0.1:port.
func portFree(port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return l.Close()
}

// withEnv returns env with key set to value.
func withEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, fmt.Sprintf("%s=%s", key, value))
}
