// Command run is the program behind `make run`: it runs the operator (bin/manager) against the
// cluster in the kubeconfig when one answers ("remote mode"), or else against a local control
// plane (etcd, kube-apiserver, kube-controller-manager) that it starts and stops ("local mode").
//
//	go run ./hack/run --manager bin/manager [--kubectl PATH] [--port 6443] [--local] [--replicas 1] -- [manager flags]
//
// Remote mode server-side applies the CRDs in config/crd/bases and runs the manager in the
// foreground. Local mode keeps etcd's data in .local/etcd so that organizations survive a restart,
// writes an admin kubeconfig to .local/kubeconfig, runs the manager and applies config/samples.
// With --replicas N, local mode runs N managers that elect a leader, behind one webhook address.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-logr/logr/funcr"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/orgoperator/org-operator/internal/controlplane"
)

const (
	crdFieldOwner    = "org-operator"
	sampleFieldOwner = "org-operator-samples"
	probeTimeout     = 3 * time.Second
)

type options struct {
	repo       string
	manager    string
	kubectl    string
	port       int
	dataDir    string
	samplesDir string
	local      bool
	replicas   int
	args       []string // passed to the manager
}

func main() {
	os.Exit(run())
}

func run() int {
	repo, err := controlplane.RepoRoot()
	if err != nil {
		logf("%v", err)
		return 1
	}
	opts := options{repo: repo}
	flags := newFlagSet(&opts)
	_ = flags.Parse(os.Args[1:]) // ExitOnError
	opts.args = flags.Args()
	if opts.manager == "" {
		logf("--manager is required")
		flags.Usage()
		return 2
	}
	if opts.replicas < 1 {
		logf("--replicas must be 1 or more")
		return 2
	}
	for _, p := range []*string{&opts.manager, &opts.dataDir} {
		if *p, err = filepath.Abs(*p); err != nil {
			logf("%v", err)
			return 1
		}
	}
	if _, err := os.Stat(opts.manager); err != nil {
		logf("manager binary: %v (build it with `make build`)", err)
		return 1
	}

	// Libraries (envtest, controller-runtime's client) log through controller-runtime's logger.
	ctrllog.SetLogger(funcr.New(func(prefix, args string) {
		fmt.Fprintf(os.Stderr, "[run] %s %s\n", prefix, args)
	}, funcr.Options{}))

	// Catch signals from the start: the control plane's processes run in their own process
	// groups, so dying on Ctrl-C while they start would leave them behind.
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)

	if !opts.local {
		if cfg, desc := reachableCluster(); cfg != nil {
			logf("Using the cluster in the kubeconfig: %s", desc)
			if opts.replicas > 1 {
				logf("--replicas runs several managers on a local control plane only; on a cluster, install the chart " +
					"(replicaCount, 2 by default), or pass --local")
				return 2
			}
			return runRemote(cfg, opts, signals)
		} else if desc != "" {
			logf("%s; starting a local control plane instead", desc)
		} else {
			logf("No kubeconfig found; starting a local control plane")
		}
	}
	return runLocal(opts, signals)
}

// newFlagSet defines the command line's flags on opts, with defaults under opts.repo. It is a flag
// set of our own: imported packages register flags (e.g. --kubeconfig) on the global one.
func newFlagSet(opts *options) *flag.FlagSet {
	flags := flag.NewFlagSet("run", flag.ExitOnError)
	flags.StringVar(&opts.manager, "manager", "", "Path of the manager binary to run (required).")
	flags.StringVar(&opts.kubectl, "kubectl", "", "Path of kubectl, only used in the hints printed in local mode when kubectl is not on PATH.")
	flags.IntVar(&opts.port, "port", 6443, "Local mode: port of the API server on 127.0.0.1. If it is in use, run stops with an error "+
		"(another make run may be running); 0 picks a free port.")
	flags.StringVar(&opts.dataDir, "data-dir", filepath.Join(opts.repo, ".local"), "Local mode: directory for etcd's data, the admin kubeconfig and the control plane's log.")
	flags.StringVar(&opts.samplesDir, "samples", filepath.Join(opts.repo, "config", "samples"), "Local mode: directory of manifests to apply once the manager runs; empty skips them.")
	flags.BoolVar(&opts.local, "local", false, "Start a local control plane even when the kubeconfig points at a reachable cluster.")
	flags.IntVar(&opts.replicas, "replicas", 1, "Local mode: managers to run, with leader election above 1, each serving the webhooks "+
		"behind one address as a Service would (to try a failover).")
	flags.Usage = func() {
		fmt.Fprintf(flags.Output(), "Usage: go run ./hack/run --manager PATH [flags] [-- manager flags]\n\nFlags:\n")
		flags.PrintDefaults()
	}
	return flags
}

// reachableCluster loads the kubeconfig like kubectl does (KUBECONFIG, ~/.kube/config, in-cluster)
// and asks its API server for /version. It returns the config when the server answers, and in any
// case a description for the user (empty when no kubeconfig was found).
func reachableCluster() (*rest.Config, string) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := loader.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, ""
		}
		return nil, fmt.Sprintf("The kubeconfig does not load (%v)", err)
	}
	where := cfg.Host
	if raw, err := loader.RawConfig(); err == nil && raw.CurrentContext != "" {
		where = fmt.Sprintf("context %q, server %s", raw.CurrentContext, cfg.Host)
	}
	probe := rest.CopyConfig(cfg)
	probe.Timeout = probeTimeout
	dc, err := discovery.NewDiscoveryClientForConfig(probe)
	if err != nil {
		return nil, fmt.Sprintf("The kubeconfig (%s) is unusable (%v)", where, err)
	}
	v, err := dc.ServerVersion()
	if err != nil {
		return nil, fmt.Sprintf("The cluster in the kubeconfig (%s) does not answer (%v)", where, err)
	}
	return cfg, fmt.Sprintf("%s, Kubernetes %s", where, v.GitVersion)
}

// runRemote installs the CRDs on a reachable cluster and runs the manager in the foreground,
// forwarding SIGINT and SIGTERM to it. It returns the manager's exit code.
func runRemote(cfg *rest.Config, opts options, signals <-chan os.Signal) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Ctrl-C while the CRDs are applied: give up (nothing else has started yet).
		select {
		case <-signals:
			logf("Interrupted")
			os.Exit(130)
		case <-ctx.Done():
		}
	}()
	c, err := newClient(cfg)
	if err == nil {
		err = installCRDs(ctx, c, filepath.Join(opts.repo, "config", "crd", "bases"))
	}
	if err != nil {
		cancel()
		logf("Installing the CRDs: %v", err)
		return 1
	}
	// The same RBAC and admission policies as config/default, and the manager impersonating the
	// operator's ServiceAccount, so that it has exactly the rights an installed operator has.
	if err := controlplane.InstallRBAC(ctx, c, opts.repo); err != nil {
		cancel()
		logf("Installing config/rbac: %v", err)
		return 1
	}
	cancel()
	env := os.Environ()
	kubeconfig, err := impersonatingKubeconfig(filepath.Join(opts.dataDir, "manager-kubeconfig"))
	if err != nil {
		logf("Writing a kubeconfig that impersonates %s: %v", controlplane.OperatorUser, err)
		return 1
	}
	logf("Applied config/rbac; the manager runs as %s (impersonated)", controlplane.OperatorUser)
	env = withEnv(env, "KUBECONFIG", kubeconfig)

	// The cluster cannot reach admission webhooks served from this machine: run without them,
	// as kubebuilder's `make run` does. Deployed operators (make deploy, Helm) serve them.
	logf("Running without admission webhooks: the cluster cannot call back to this machine")
	args := append([]string{"--enable-webhooks=false"}, opts.args...)
	mgr, err := startManager("the manager", opts.manager, args, env, nil)
	if err != nil {
		logf("%v", err)
		return 1
	}
	for {
		select {
		case sig := <-signals:
			logf("Got %v, passing it to the manager", sig)
			_ = mgr.cmd.Process.Signal(sig)
		case <-mgr.done:
			code := exitCode(mgr.err)
			logf("Manager exited with code %d", code)
			return code
		}
	}
}

// impersonatingKubeconfig writes to path the kubeconfig's current context, flattened, with the
// operator's ServiceAccount as the user it impersonates.
func impersonatingKubeconfig(path string) (string, error) {
	raw, err := clientcmd.NewDefaultClientConfigLoadingRules().Load()
	if err != nil {
		return "", err
	}
	if err := clientcmdapi.FlattenConfig(raw); err != nil {
		return "", err
	}
	current, ok := raw.Contexts[raw.CurrentContext]
	if !ok {
		return "", fmt.Errorf("the kubeconfig has no current context")
	}
	user := raw.AuthInfos[current.AuthInfo]
	if user == nil {
		return "", fmt.Errorf("context %q names no user", raw.CurrentContext)
	}
	user.Impersonate = controlplane.OperatorUser
	user.ImpersonateGroups = controlplane.OperatorGroups
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	return path, clientcmd.WriteToFile(*raw, path)
}

// kubectlHint is how the printed hints call kubectl.
func kubectlHint(flagPath string) string {
	if _, err := exec.LookPath("kubectl"); err == nil || flagPath == "" {
		return "kubectl"
	}
	return flagPath
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[run] "+format+"\n", args...)
}
