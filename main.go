// Command manager runs the org-operator controllers.
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/controllers"
	"github.com/orgoperator/org-operator/internal/certs"
	orgmetrics "github.com/orgoperator/org-operator/internal/metrics"
	"github.com/orgoperator/org-operator/internal/podcache"
	orgwebhook "github.com/orgoperator/org-operator/internal/webhook"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(tenancyv1alpha1.AddToScheme(scheme))
}

func main() {
	var (
		metricsAddr, probeAddr string
		secureMetrics          bool
		enableHTTP2            bool
		leaderElect            bool
		concurrency            int
		qps                    float64
		burst                  int
		enableWebhooks         bool
		webhookPort            int
		webhookHost            string
		webhookCertDir         string
		webhookCerts           string
		namespace              string
		pprofAddr              string
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0",
		"Address of the metrics endpoint, e.g. :8443 (HTTPS) or :8080 (HTTP); 0 disables it.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true,
		"Serve metrics over HTTPS, authenticated and authorized through the API server.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the health and readiness probes.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "", "Address to serve Go's pprof profiles on (/debug/pprof); off if empty.")
	flag.BoolVar(&leaderElect, "leader-elect", false,
		"Elect a leader so that only one replica reconciles at a time.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false,
		"Serve metrics and webhooks over HTTP/2 too (off: HTTP/2 Stream Cancellation and Rapid Reset CVEs).")
	flag.IntVar(&concurrency, "concurrency", 16, "Reconciles each controller runs at once.")
	flag.Float64Var(&qps, "kube-api-qps", 100, "Requests per second to the API server (client-go defaults to 5).")
	flag.IntVar(&burst, "kube-api-burst", 200, "Burst of requests to the API server.")
	flag.BoolVar(&enableWebhooks, "enable-webhooks", true, "Serve the admission webhooks.")
	flag.IntVar(&webhookPort, "webhook-port", 9443, "Port of the webhook server.")
	flag.StringVar(&webhookHost, "webhook-host", "", "Address the webhook server listens on; all addresses if empty.")
	flag.StringVar(&webhookCertDir, "webhook-cert-dir", filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs"),
		"Directory holding the webhook server's tls.crt and tls.key.")
	flag.StringVar(&webhookCerts, "webhook-certs", "self-managed",
		"Who provides the webhook certificate: self-managed (the operator keeps a CA in the Secret "+
			"org-operator-webhook-certs and injects it into its webhook configurations) or external "+
			"(cert-manager or another tool writes the files into --webhook-cert-dir).")
	flag.StringVar(&namespace, "namespace", os.Getenv("POD_NAMESPACE"),
		"The operator's namespace, for its webhook certificate Secret; defaults to $POD_NAMESPACE.")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")
	if limit, ok := softMemoryLimit(os.Getenv("MEMORY_LIMIT"), os.Getenv("GOMEMLIMIT")); ok {
		debug.SetMemoryLimit(limit)
		log.Info("Keeping the heap under 90% of the container's memory limit", "bytes", limit)
	}

	var tlsOpts []func(*tls.Config)
	if !enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: metricsAddr, SecureServing: secureMetrics, TLSOpts: tlsOpts}
	if secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	cfg := ctrl.GetConfigOrDie()
	cfg.QPS, cfg.Burst = float32(qps), burst
	cfg.UserAgent = "org-operator"

	selfManaged := enableWebhooks && webhookCerts == "self-managed"
	if enableWebhooks && webhookCerts != "self-managed" && webhookCerts != "external" {
		log.Error(nil, "Unknown --webhook-certs", "value", webhookCerts)
		os.Exit(2)
	}
	if selfManaged && namespace == "" {
		log.Error(nil, "Self-managed webhook certificates need --namespace or $POD_NAMESPACE")
		os.Exit(2)
	}
	certOpts := certs.Options{
		Namespace: namespace, SecretName: "org-operator-webhook-certs", ServiceName: "org-operator-webhook-service",
		CertDir:         webhookCertDir,
		MutatingWebhook: "org-operator-mutating-webhook-configuration", ValidatingWebhook: "org-operator-validating-webhook-configuration",
	}

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsOpts,
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: webhookHost, Port: webhookPort, CertDir: webhookCertDir, TLSOpts: tlsOpts,
		}),
		HealthProbeBindAddress:        probeAddr,
		PprofBindAddress:              pprofAddr,
		LeaderElection:                leaderElect,
		LeaderElectionID:              "org-operator.tenancy.orgoperator.io",
		LeaderElectionNamespace:       namespace,
		LeaderElectionReleaseOnCancel: true,
		Cache:                         controllers.CacheOptions(),
	})
	if err != nil {
		log.Error(err, "Unable to create manager")
		os.Exit(1)
	}
	// Per-organization gauges, read from the cache at scrape time.
	if err := ctrlmetrics.Registry.Register(orgmetrics.NewCollector(mgr.GetCache())); err != nil {
		log.Error(err, "Unable to register the organization metrics")
		os.Exit(1)
	}
	// Pods are kept compact, outside the manager's cache: usage and the quota ledger read them.
	pods, err := podcache.New(mgr.GetConfig())
	if err == nil {
		err = mgr.Add(pods)
	}
	if err != nil {
		log.Error(err, "Unable to set up the pod cache")
		os.Exit(1)
	}
	if err := controllers.SetupWithManager(mgr, controllers.Options{MaxConcurrentReconciles: concurrency, QuotaLedger: enableWebhooks, Pods: pods}); err != nil {
		log.Error(err, "Unable to set up controllers")
		os.Exit(1)
	}
	readyz := healthz.Ping
	if enableWebhooks {
		if readyz, err = setupWebhooks(mgr, selfManaged, certOpts, orgwebhook.Options{Pods: pods}); err != nil {
			log.Error(err, "Unable to set up webhooks")
			os.Exit(1)
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "Unable to set up health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", readyz); err != nil {
		log.Error(err, "Unable to set up ready check")
		os.Exit(1)
	}
	log.Info("Starting manager")
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "Manager exited")
		os.Exit(1)
	}
}

// setupWebhooks registers the admission webhooks and returns the readiness check of their
// server. With self-managed certificates, the server is created only once the rotator has written
// the certificate files, since it cannot start without them: the manager adds a webhook server
// to its runnables on first use, and starts it at once when it is already running.
func setupWebhooks(mgr ctrl.Manager, selfManaged bool, certOpts certs.Options, opts orgwebhook.Options) (healthz.Checker, error) {
	if !selfManaged {
		if err := orgwebhook.SetupWithManager(mgr, opts); err != nil {
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
		if err := orgwebhook.SetupWithManager(mgr, opts); err != nil {
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
