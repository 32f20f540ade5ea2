package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// runLocal starts a local control plane, runs the manager against it and applies the samples.
// It stops everything on SIGINT/SIGTERM (exit 0) or when the manager exits (its exit code).
func runLocal(opts options, signals <-chan os.Signal) int {
	etcdDir := filepath.Join(opts.dataDir, "etcd")
	kubeconfig := filepath.Join(opts.dataDir, "kubeconfig")
	logPath := filepath.Join(opts.dataDir, "control-plane.log")

	if err := os.MkdirAll(etcdDir, 0o700); err != nil {
		logf("%v", err)
		return 1
	}
	// Two etcds on one data directory hang until envtest gives up, minutes later: refuse at once.
	lock, err := lockDataDir(opts.dataDir)
	if err != nil {
		logf("%v", err)
		return 1
	}
	defer lock.Close()
	if opts.port != 0 {
		if err := portFree(opts.port); err != nil {
			logf("Port %d on 127.0.0.1 is in use (%v).", opts.port, err)
			logf("Is another `make run` running? Stop what uses the port, or pass --port to hack/run (--port 0 picks a free one).")
			return 1
		}
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		logf("%v", err)
		return 1
	}
	defer logFile.Close()

	// envtest would otherwise skip the control plane and use the kubeconfig's cluster.
	_ = os.Unsetenv("USE_EXISTING_CLUSTER")
	logf("Starting etcd, kube-apiserver and kube-controller-manager (data in %s, logs in %s)", etcdDir, logPath)
	start := time.Now()
	cp, err := controlplane.Start(controlplane.Options{
		DataDir:           etcdDir,
		APIServerPort:     opts.port,
		CRDDirectoryPaths: []string{filepath.Join(opts.repo, "config", "crd", "bases")},
		// envtest serves the webhook configurations at a local port with a CA of its own, and
		// points them at the manager started below.
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			Paths: []string{filepath.Join(opts.repo, "config", "webhook", "manifests.yaml")},
		},
		ControllerManager: true,
		Output:            logFile,
	})
	if err != nil {
		logf("Starting the control plane: %v", err)
		logf("See %s for the components' logs.", logPath)
		return 1
	}
	stopControlPlane := func() {
		logf("Stopping the control plane")
		if err := cp.Stop(); err != nil {
			logf("Stopping the control plane: %v", err)
		}
	}
	// A signal while the control plane was starting: stop it again.
	select {
	case sig := <-signals:
		logf("Got %v while starting", sig)
		stopControlPlane()
		return 0
	default:
	}
	logf("Control plane is up at %s (%s)", cp.Config.Host, time.Since(start).Round(100*time.Millisecond))

	if err := writeKubeconfig(cp, kubeconfig); err != nil {
		logf("Writing %s: %v", kubeconfig, err)
		stopControlPlane()
		return 1
	}
	// The operator runs as its ServiceAccount, with exactly the RBAC and admission policies that
	// config/default installs: what a user tries here is what a cluster does.
	managerKubeconfig := filepath.Join(opts.dataDir, "manager-kubeconfig")
	if err := installOperatorAccess(cp, opts.repo, managerKubeconfig); err != nil {
		logf("Installing the operator's RBAC: %v", err)
		stopControlPlane()
		return 1
	}
	version := "unknown version"
	if dc, err := discovery.NewDiscoveryClientForConfig(cp.Config); err == nil {
		if v, err := dc.ServerVersion(); err == nil {
			version = v.GitVersion
		}
	}

	// The manager's health probes default to :8081; a random port avoids clashes on a workstation.
	// Flags given after `--` come later and win.
	hooks := cp.Env.WebhookInstallOptions
	args := append([]string{
		"--health-probe-bind-address=:0",
		"--webhook-certs=external",
		"--webhook-host=" + hooks.LocalServingHost,
		fmt.Sprintf("--webhook-port=%d", hooks.LocalServingPort),
		"--webhook-cert-dir=" + hooks.LocalServingCertDir,
	}, opts.args...)
	mgr, err := startManager(opts.manager, args, withEnv(os.Environ(), "KUBECONFIG", managerKubeconfig))
	if err != nil {
		logf("%v", err)
		stopControlPlane()
		return 1
	}

	// Apply the samples while the manager starts; members wait for their organization's namespace.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	go func() {
		defer close(ready)
		applySamples(ctx, cp, opts.samplesDir)
	}()

	for {
		select {
		case <-ready:
			printHints(opts, kubeconfig, version, logPath)
			ready = nil
		case sig := <-signals:
			logf("Got %v, stopping", sig)
			cancel()
			mgr.stop(managerStopTimeout)
			stopControlPlane()
			logf("Stopped; state is kept in %s", opts.dataDir)
			return 0
		case <-mgr.done:
			code := exitCode(mgr.err)
			logf("Manager exited with code %d", code)
			cancel()
			stopControlPlane()
			return code
		}
	}
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

func printHints(opts options, kubeconfig, version, logPath string) {
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
