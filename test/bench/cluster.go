package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/controlplane"
)

// Users the audit log tells apart. The operator runs as the ServiceAccount user a real install
// has, bound only to config/rbac/role.yaml; the harness is a cluster admin of its own.
const (
	operatorUser = controlplane.OperatorUser
	benchUser    = "org-operator-bench"
	operatorUA   = "org-operator" // main.go sets it
)

// Harness clients, told apart by user agent in the audit log and counted separately.
const (
	agentCreate = "org-operator-bench/create" // creates and changes the objects the scenarios need
	agentPoll   = "org-operator-bench/poll"   // lists organizations and members until they converge
	agentVerify = "org-operator-bench/verify" // checks the objects the operator made, after convergence
	// agentMetrics reads the API server's /metrics; not counted, and left out of the cross-check.
	agentMetrics = "org-operator-bench/metrics"
)

func benchScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(tenancyv1alpha1.AddToScheme(s))
	return s
}

// cluster is the control plane, the harness's clients and the operator's credentials.
type cluster struct {
	cp       *controlplane.ControlPlane
	scheme   *runtime.Scheme
	counters map[string]*requestCounter // by user agent
	clients  map[string]client.Client
	poll     *http.Client
	metrics  *http.Client // agentMetrics
	host     string

	operatorKubeconfig string
}

func startCluster(ctx context.Context, cfg *config, workDir string) (*cluster, error) {
	cp, err := startControlPlane(cfg, workDir, cfg.webhooks)
	if err != nil {
		return nil, err
	}
	c := &cluster{cp: cp, scheme: benchScheme(), counters: map[string]*requestCounter{}, clients: map[string]client.Client{}}
	if err := c.setup(ctx, cfg, workDir); err != nil {
		_ = cp.Stop()
		return nil, err
	}
	return c, nil
}

// startControlPlane starts etcd, kube-apiserver (its audit log and its components' logs in dir)
// and kube-controller-manager, with the project's CRDs and, if webhooks, its webhook
// configurations.
func startControlPlane(cfg *config, dir string, webhooks bool) (*controlplane.ControlPlane, error) {
	policy, err := writeFile(dir, "audit-policy.yaml", auditPolicy(operatorUser, benchUser))
	if err != nil {
		return nil, err
	}
	cpLog, err := os.Create(filepath.Join(dir, "control-plane.log"))
	if err != nil {
		return nil, err
	}
	opts := controlplane.Options{
		BinDir:            cfg.binDir,
		CRDDirectoryPaths: []string{filepath.Join(cfg.repo, "config", "crd", "bases")},
		ControllerManager: true,
		APIServerArgs: map[string][]string{
			"audit-log-path":             {filepath.Join(dir, "audit.log")},
			"audit-policy-file":          {policy},
			"audit-log-maxsize":          {"100000"}, // MB: never rotate within a run
			"audit-log-maxbackup":        {"1"},
			"audit-log-format":           {"json"},
			"audit-log-mode":             {"blocking"},
			"audit-log-compress":         {"false"},
			"audit-log-truncate-enabled": {"false"},
		},
		Output: cpLog,
	}
	if webhooks {
		opts.WebhookInstallOptions = envtest.WebhookInstallOptions{
			Paths: []string{filepath.Join(cfg.repo, "config", "webhook", "manifests.yaml")},
		}
	}
	cp, err := controlplane.Start(opts)
	if err != nil {
		return nil, fmt.Errorf("%w (control plane log: %s)", err, cpLog.Name())
	}
	return cp, nil
}

func (c *cluster) setup(ctx context.Context, cfg *config, workDir string) error {
	bench, err := c.cp.AddUser(benchUser, "system:masters")
	if err != nil {
		return err
	}
	c.host = strings.TrimSuffix(bench.Host, "/")
	for _, agent := range []string{agentCreate, agentPoll, agentVerify} {
		counter := newRequestCounter()
		rc := rest.CopyConfig(bench)
		rc.UserAgent = agent
		rc.QPS = -1 // no client-side rate limit: as fast as the API server accepts
		rc.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &countingTransport{next: rt, counter: counter} })
		c.counters[agent] = counter
		cl, err := client.New(rc, client.Options{Scheme: c.scheme})
		if err != nil {
			return err
		}
		c.clients[agent] = cl
		if agent == agentPoll {
			if c.poll, err = rest.HTTPClientFor(rc); err != nil {
				return err
			}
		}
	}

	mc := rest.CopyConfig(bench)
	mc.UserAgent = agentMetrics
	if c.metrics, err = rest.HTTPClientFor(mc); err != nil {
		return err
	}

	// The operator's permissions and guards, exactly as config/default installs them.
	if err := controlplane.InstallRBAC(ctx, c.clients[agentCreate], cfg.repo); err != nil {
		return err
	}
	kubeconfig, err := c.cp.OperatorKubeconfig()
	if err != nil {
		return err
	}
	c.operatorKubeconfig, err = writeFile(workDir, "operator.kubeconfig", string(kubeconfig))
	return err
}

// managerArgs are the flags of bin/manager for this run.
func (c *cluster) managerArgs(cfg *config, metricsPort int) []string {
	args := []string{
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort),
		"--metrics-secure=false",
		"--health-probe-bind-address=0",
		"--leader-elect=false",
		fmt.Sprintf("--concurrency=%d", cfg.concurrency),
		fmt.Sprintf("--kube-api-qps=%g", cfg.qps),
		fmt.Sprintf("--kube-api-burst=%d", cfg.burst),
		fmt.Sprintf("--enable-webhooks=%t", cfg.webhooks),
	}
	args = append(args, strings.Fields(cfg.managerArgs)...)
	if cfg.webhooks {
		hooks := c.cp.Env.WebhookInstallOptions
		args = append(args,
			"--webhook-certs=external",
			"--webhook-host="+hooks.LocalServingHost,
			fmt.Sprintf("--webhook-port=%d", hooks.LocalServingPort),
			"--webhook-cert-dir="+hooks.LocalServingCertDir,
		)
	}
	return args
}

// isOperator and isHarness select audit records.
func isOperator(r *auditRecord) bool { return r.User == operatorUser }

func isAgent(agent string) func(*auditRecord) bool {
	return func(r *auditRecord) bool { return r.User == benchUser && r.Agent == agent }
}
