// Command manager runs the org-operator controllers.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/orgoperator/org-operator/controllers"
	"github.com/orgoperator/org-operator/internal/certs"
	"github.com/orgoperator/org-operator/internal/fence"
)

// Leader election: controller-runtime's timing, spelt out because the fence depends on it. A
// standby takes over within leaseDuration and a retryPeriod of the leader's last renewal.
const (
	leaderElectionID = "org-operator.tenancy.orgoperator.io"
	leaseDuration    = 15 * time.Second
	renewDeadline    = 10 * time.Second
	retryPeriod      = 2 * time.Second
)

// config is what the command line sets.
type config struct {
	metricsAddr, probeAddr, pprofAddr   string
	secureMetrics                       bool
	enableHTTP2                         bool
	leaderElect                         bool
	concurrency                         int
	checkpointInterval, reportRetention time.Duration
	settleDelay                         time.Duration
	metering                            bool
	qps                                 float64
	burst                               int
	webhooks                            bool
	webhookPort                         int
	webhookHost                         string
	webhookCertDir                      string
	webhookCerts                        string
	namespace                           string
	shutdownDelay                       time.Duration
	zap                                 zap.Options
}

func main() {
	c := bindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&c.zap)))
	log := ctrl.Log.WithName("setup")
	if limit, ok := softMemoryLimit(os.Getenv("MEMORY_LIMIT"), os.Getenv("GOMEMLIMIT")); ok {
		debug.SetMemoryLimit(limit)
		log.Info("Keeping the heap under 90% of the container's memory limit", "bytes", limit)
	}
	if err := c.validate(); err != nil {
		log.Error(err, "Invalid flags")
		os.Exit(2)
	}
	ctx, draining := drainOnSignal(ctrl.SetupSignalHandler(), c.shutdownDelay)
	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "Loading the kubeconfig")
		os.Exit(1)
	}
	// Setting up needs the API server (discovery); an operator started while it restarts waits
	// for it, rather than exiting into the kubelet's growing back-off.
	if err := waitForAPIServer(ctx, cfg); err != nil {
		os.Exit(1) // stopped while waiting
	}
	mgr, err := setup(c, cfg, draining)
	if err != nil {
		log.Error(err, "Unable to set up the operator")
		os.Exit(1)
	}
	log.Info("Starting manager")
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "Manager exited")
		os.Exit(1)
	}
}

func bindFlags(fs *flag.FlagSet) *config {
	c := &config{}
	fs.StringVar(&c.metricsAddr, "metrics-bind-address", "0",
		"Address of the metrics endpoint, e.g. :8443 (HTTPS) or :8080 (HTTP); 0 disables it.")
	fs.BoolVar(&c.secureMetrics, "metrics-secure", true,
		"Serve metrics over HTTPS, authenticated and authorized through the API server.")
	fs.StringVar(&c.probeAddr, "health-probe-bind-address", ":8081", "Address of the health and readiness probes.")
	fs.StringVar(&c.pprofAddr, "pprof-bind-address", "", "Address to serve Go's pprof profiles on (/debug/pprof); off if empty.")
	fs.BoolVar(&c.leaderElect, "leader-elect", false,
		"Elect a leader so that only one replica reconciles at a time.")
	fs.BoolVar(&c.enableHTTP2, "enable-http2", false,
		"Serve metrics and webhooks over HTTP/2 too (off: HTTP/2 Stream Cancellation and Rapid Reset CVEs).")
	fs.IntVar(&c.concurrency, "concurrency", 16, "Reconciles each controller runs at once.")
	fs.Float64Var(&c.qps, "kube-api-qps", 100, "Requests per second to the API server (client-go defaults to 5).")
	fs.IntVar(&c.burst, "kube-api-burst", 200, "Burst of requests to the API server.")
	fs.BoolVar(&c.webhooks, "enable-webhooks", true, "Serve the admission webhooks.")
	fs.IntVar(&c.webhookPort, "webhook-port", 9443, "Port of the webhook server.")
	fs.StringVar(&c.webhookHost, "webhook-host", "", "Address the webhook server listens on; all addresses if empty.")
	fs.StringVar(&c.webhookCertDir, "webhook-cert-dir", filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs"),
		"Directory holding the webhook server's tls.crt and tls.key.")
	fs.StringVar(&c.webhookCerts, "webhook-certs", "self-managed",
		"Who provides the webhook certificate: self-managed (the operator keeps a CA in the Secret "+
			"org-operator-webhook-certs and injects it into its webhook configurations) or external "+
			"(cert-manager or another tool writes the files into --webhook-cert-dir).")
	fs.StringVar(&c.namespace, "namespace", os.Getenv("POD_NAMESPACE"),
		"The operator's namespace, for its webhook certificate Secret; defaults to $POD_NAMESPACE.")
	fs.DurationVar(&c.shutdownDelay, "shutdown-delay", 5*time.Second,
		"On SIGTERM, how long to keep serving webhooks while reporting not ready, before stopping; keep it under the pod's terminationGracePeriodSeconds.")
	fs.DurationVar(&c.checkpointInterval, "usage-checkpoint-interval", controllers.DefaultCheckpointInterval,
		"Least time between two writes of an organization's usage report (docs/metering.md).")
	fs.DurationVar(&c.settleDelay, "usage-settle-delay", controllers.DefaultSettleDelay,
		"How far usage checkpoints trail the clock, so that pod starts and ends the kubelet reports late still fall after them (docs/metering.md).")
	fs.BoolVar(&c.metering, "usage-metering", true,
		"Meter pod usage into usage reports; false leaves metering out entirely, to measure what it costs (docs/metering.md).")
	fs.DurationVar(&c.reportRetention, "usage-report-retention", controllers.DefaultReportRetention,
		"How long usage reports are kept after their billing period ends (default 13 months of 30 days).")
	c.zap.BindFlags(fs)
	return c
}

func (c *config) validate() error {
	if c.settleDelay <= 0 || c.checkpointInterval <= 0 {
		return errors.New("--usage-settle-delay and --usage-checkpoint-interval must be positive")
	}
	if c.webhooks && c.webhookCerts != "self-managed" && c.webhookCerts != "external" {
		return fmt.Errorf("unknown --webhook-certs %q: want self-managed or external", c.webhookCerts)
	}
	if c.selfManagedCerts() && c.namespace == "" {
		return errors.New("self-managed webhook certificates need --namespace or $POD_NAMESPACE")
	}
	return nil
}

func (c *config) selfManagedCerts() bool { return c.webhooks && c.webhookCerts == "self-managed" }

// setup creates the manager with the operator, its webhooks and its probes.
func setup(c *config, cfg *rest.Config, draining *atomic.Bool) (ctrl.Manager, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = float32(c.qps), c.burst
	cfg.UserAgent = userAgent(os.Getenv("POD_NAME"))
	if c.leaderElect {
		cfg.Wrap(fence.New(c.namespace, leaderElectionID, renewDeadline).Wrap)
	}
	mgr, err := ctrl.NewManager(cfg, c.managerOptions())
	if err != nil {
		return nil, fmt.Errorf("creating the manager: %w", err)
	}
	op, err := controllers.SetupOperator(mgr, controllers.OperatorOptions{
		Controllers: controllers.Options{MaxConcurrentReconciles: c.concurrency,
			CheckpointInterval: c.checkpointInterval, ReportRetention: c.reportRetention, SettleDelay: c.settleDelay},
		Webhooks:        c.webhooks,
		Metrics:         ctrlmetrics.Registry,
		DisableMetering: !c.metering,
	})
	if err != nil {
		return nil, err
	}
	readyz := healthz.Checker(healthz.Ping)
	if c.webhooks {
		if readyz, err = setupWebhooks(mgr, c.selfManagedCerts(), c.certOptions(), op.SetupWebhooks); err != nil {
			return nil, fmt.Errorf("setting up the webhooks: %w", err)
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding the health check: %w", err)
	}
	serving := readyz
	readyz = func(req *http.Request) error {
		if draining.Load() {
			return errors.New("shutting down")
		}
		return serving(req)
	}
	if err := mgr.AddReadyzCheck("readyz", readyz); err != nil {
		return nil, fmt.Errorf("adding the ready check: %w", err)
	}
	return mgr, nil
}

func (c *config) managerOptions() ctrl.Options {
	var tlsOpts []func(*tls.Config)
	if !c.enableHTTP2 {
		tlsOpts = append(tlsOpts, func(t *tls.Config) { t.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: c.metricsAddr, SecureServing: c.secureMetrics, TLSOpts: tlsOpts}
	if c.secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return controllers.ManagerOptions(ctrl.Options{
		Metrics: metricsOpts,
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: c.webhookHost, Port: c.webhookPort, CertDir: c.webhookCertDir, TLSOpts: tlsOpts,
		}),
		HealthProbeBindAddress:        c.probeAddr,
		PprofBindAddress:              c.pprofAddr,
		LeaderElection:                c.leaderElect,
		LeaderElectionID:              leaderElectionID,
		LeaderElectionNamespace:       c.namespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 ptr.To(leaseDuration),
		RenewDeadline:                 ptr.To(renewDeadline),
		RetryPeriod:                   ptr.To(retryPeriod),
	})
}

func (c *config) certOptions() certs.Options {
	return certs.Options{
		Namespace: c.namespace, SecretName: "org-operator-webhook-certs", ServiceName: "org-operator-webhook-service",
		CertDir:         c.webhookCertDir,
		MutatingWebhook: "org-operator-mutating-webhook-configuration", ValidatingWebhook: "org-operator-validating-webhook-configuration",
	}
}

// setupWebhooks registers the admission webhooks and returns the readiness check of their
// server. With self-managed certificates, the server is created only once the rotator has written
// the certificate files, since it cannot start without them: the manager adds a webhook server
// to its runnables on first use, and starts it at once when it is already running.
func setupWebhooks(mgr ctrl.Manager, selfManaged bool, certOpts certs.Options, register func() error) (healthz.Checker, error) {
	if !selfManaged {
		if err := register(); err != nil {
			return nil, err
		}
		return mgr.GetWebhookServer().StartedChecker(), nil
	}
	ready := make(chan struct{})
	if err := certs.Add(mgr, certOpts, ready); err != nil {
		return nil, err
	}
	var started atomic.Pointer[healthz.Checker]
	go func() {
		<-ready
		if err := register(); err != nil {
			ctrl.Log.WithName("setup").Error(err, "Unable to set up webhooks")
			os.Exit(1)
		}
		checker := mgr.GetWebhookServer().StartedChecker()
		started.Store(&checker)
	}()
	return func(req *http.Request) error {
		checker := started.Load()
		if checker == nil {
			return errors.New("waiting for the webhook certificate")
		}
		return (*checker)(req)
	}, nil
}

// drainOnSignal returns a context that ends delay after signalled does, and a flag set as soon
// as signalled ends. Meanwhile readiness fails, so that the Service stops sending new webhook
// calls here, while the webhooks still answer those already sent or on their way: a rolling
// update or a node drain refuses no admission.
func drainOnSignal(signalled context.Context, delay time.Duration) (context.Context, *atomic.Bool) {
	ctx, cancel := context.WithCancel(context.Background())
	draining := &atomic.Bool{}
	go func() {
		<-signalled.Done()
		draining.Store(true)
		ctrl.Log.WithName("setup").Info("Shutting down: not ready, still serving", "for", delay.String())
		time.Sleep(delay)
		cancel()
	}()
	return ctx, draining
}

// waitForAPIServer returns once the API server answers /version, retrying with a growing pause
// (up to 10 s); it returns an error only when ctx ends.
func waitForAPIServer(ctx context.Context, cfg *rest.Config) error {
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = 5 * time.Second
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	log := ctrl.Log.WithName("setup")
	for pause := 500 * time.Millisecond; ; pause = min(2*pause, 10*time.Second) {
		_, err := dc.ServerVersion()
		if err == nil {
			return nil
		}
		log.Info("Waiting for the API server", "error", err.Error())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
}

// userAgent names the operator to the API server, with its pod's name when the chart gives it
// ($POD_NAME), so that audit logs tell replicas apart.
func userAgent(pod string) string {
	if pod == "" {
		return "org-operator"
	}
	return "org-operator (" + pod + ")"
}

// softMemoryLimit returns 90 % of the container's memory limit (MEMORY_LIMIT, in bytes, from the
// downward API), so that Go collects harder as the heap nears the limit instead of the container
// being killed. GOMEMLIMIT, when set, wins; so does an absent or unparsable limit.
func softMemoryLimit(containerLimit, goMemLimit string) (int64, bool) {
	if goMemLimit != "" || containerLimit == "" {
		return 0, false
	}
	limit, err := strconv.ParseInt(containerLimit, 10, 64)
	if err != nil || limit <= 0 {
		return 0, false
	}
	return limit / 10 * 9, true
}
