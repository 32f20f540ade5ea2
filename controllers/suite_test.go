package controllers_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/controllers"
	"github.com/orgoperator/org-operator/internal/controlplane"
)

var (
	cp        *controlplane.ControlPlane
	k8s       client.Client // cluster admin, uncached: what the tests assert through
	mgrClient client.Client // the manager's cached client, as the operator's user
	scheme    = runtime.NewScheme()
	cancel    context.CancelFunc
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controllers")
}

var _ = BeforeSuite(func() {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(tenancyv1alpha1.AddToScheme(scheme))

	var err error
	cp, err = controlplane.Start(controlplane.Options{
		CRDDirectoryPaths: []string{filepath.Join("..", "config", "crd", "bases")},
		ControllerManager: true, // namespace deletion and garbage collection
	})
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(cp.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	// The operator runs as a user holding only the generated ClusterRole, so every spec also
	// checks that the RBAC markers grant enough, and the roles it hands out exist.
	ctx := context.Background()
	applyManifest(ctx, filepath.Join("..", "config", "rbac", "role.yaml"))
	applyManifest(ctx, filepath.Join("..", "config", "rbac", "organization_admin_role.yaml"))
	Expect(k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: ctrl.ObjectMeta{Name: "org-operator-test"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "org-operator-manager-role"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "org-operator"}},
	})).To(Succeed())
	operatorCfg, err := cp.AddUser("org-operator")
	Expect(err).NotTo(HaveOccurred())
	operatorCfg = rest.CopyConfig(operatorCfg)
	operatorCfg.QPS, operatorCfg.Burst = 100, 200

	mgr, err := ctrl.NewManager(operatorCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  controllers.CacheOptions(),
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(controllers.SetupWithManager(mgr, controllers.Options{MaxConcurrentReconciles: 2})).To(Succeed())
	mgrClient = mgr.GetClient()

	var mgrCtx context.Context
	mgrCtx, cancel = context.WithCancel(context.Background())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(mgrCtx)).To(Succeed())
	}()
})

var _ = AfterSuite(func() {
	if cancel != nil {
		cancel()
	}
	if cp != nil {
		Expect(cp.Stop()).To(Succeed())
	}
})

// applyManifest creates every object of a YAML file.
func applyManifest(ctx context.Context, path string) {
	GinkgoHelper()
	f, err := os.Open(path)
	Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		obj := &rbacv1.ClusterRole{}
		if err := dec.Decode(obj); err != nil {
			break
		}
		if obj.Name == "" {
			continue
		}
		Expect(k8s.Create(ctx, obj)).To(Succeed())
	}
}

const (
	timeout  = 30 * time.Second
	interval = 100 * time.Millisecond
)

func init() {
	SetDefaultEventuallyTimeout(timeout)
	SetDefaultEventuallyPollingInterval(interval)
	SetDefaultConsistentlyDuration(2 * time.Second)
}
