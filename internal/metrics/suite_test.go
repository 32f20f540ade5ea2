package metrics_test

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/controlplane"
	orgmetrics "github.com/orgoperator/org-operator/internal/metrics"
)

// The suite runs a manager the way main.go does: as a user holding only the operator's
// ClusterRoles from config/rbac, metrics served over HTTPS behind authentication and
// authorization through the API server, the collector registered with controller-runtime's
// registry. No controller runs: the specs write status through the status subresource.

var (
	cp         *controlplane.ControlPlane
	k8s        client.Client // cluster admin, uncached
	scheme     = runtime.NewScheme()
	cancel     context.CancelFunc
	metricsURL string
)

func TestMetrics(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Metrics")
}

var _ = BeforeSuite(func() {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(tenancyv1alpha1.AddToScheme(scheme))

	var err error
	cp, err = controlplane.Start(controlplane.Options{
		CRDDirectoryPaths: []string{filepath.Join("..", "..", "config", "crd", "bases")},
	})
	Expect(err).NotTo(HaveOccurred(), "set KUBEBUILDER_ASSETS to the directory hack/build-control-plane.sh prints")
	k8s, err = client.New(cp.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	ctx := context.Background()
	// The operator's RBAC as config/default installs it, the operator as its ServiceAccount.
	root, err := controlplane.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	Expect(controlplane.InstallRBAC(ctx, k8s, root)).To(Succeed())
	operatorCfg, err := cp.OperatorConfig()
	Expect(err).NotTo(HaveOccurred())
	operatorCfg = rest.CopyConfig(operatorCfg)

	addr := freeLoopbackAddress()
	metricsURL = "https://" + addr + "/metrics"
	mgr, err := ctrl.NewManager(operatorCfg, ctrl.Options{
		Scheme: scheme,
		Metrics: metricsserver.Options{
			BindAddress:    addr,
			SecureServing:  true,
			FilterProvider: filters.WithAuthenticationAndAuthorization,
		},
		HealthProbeBindAddress: "0",
	})
	Expect(err).NotTo(HaveOccurred())
	// The line main.go runs.
	Expect(ctrlmetrics.Registry.Register(orgmetrics.NewCollector(mgr.GetCache()))).To(Succeed())
	// The collector reads organizations from the cache: start their informer as a controller would.
	_, err = mgr.GetCache().GetInformer(ctx, &tenancyv1alpha1.Organization{})
	Expect(err).NotTo(HaveOccurred())

	var mgrCtx context.Context
	mgrCtx, cancel = context.WithCancel(context.Background())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(mgrCtx)).To(Succeed())
	}()
	Eventually(func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err
	}).Should(Succeed(), "metrics server did not start on %s", addr)
})

var _ = AfterSuite(func() {
	if cancel != nil {
		cancel()
	}
	if cp != nil {
		Expect(cp.Stop()).To(Succeed())
	}
})

// freeLoopbackAddress returns a loopback address with a port that was free a moment ago.
// controller-runtime does not report the port it bound for ":0", so the suite picks one.
func freeLoopbackAddress() string {
	GinkgoHelper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer l.Close()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
}

// bindClusterRole binds a ClusterRole to one subject cluster-wide.
func bindClusterRole(ctx context.Context, role string, subject map[string]any) {
	GinkgoHelper()
	crb := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1",
		"kind":       "ClusterRoleBinding",
		"metadata":   map[string]any{"generateName": role + "-"},
		"roleRef":    map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
		"subjects":   []any{subject},
	}}
	Expect(k8s.Create(ctx, crb)).To(Succeed())
}

func init() {
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(200 * time.Millisecond)
}
