package v1alpha1_test

import (
	"context"
	"path/filepath"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/controlplane"
)

// The suite runs the CRDs in config/crd/bases against a real kube-apiserver (no controller runs):
// it proves that every OpenAPI bound, pattern, enum, default and CEL rule of the API does what
// the types say, with the messages the API server really returns.

// membersNamespace holds the OrganizationMembers the tests create.
const membersNamespace = "validation"

var (
	ctx context.Context
	cp  *controlplane.ControlPlane
	// scheme holds the client-go types and the v1alpha1 types. It is built before the spec tree,
	// whose table entries use it.
	scheme    = newScheme()
	k8sClient client.Client
)

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(tenancyv1alpha1.AddToScheme(s))
	return s
}

func TestAPI(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "API validation suite")
}

var _ = BeforeSuite(func() {
	ctx = context.Background()

	crds, err := filepath.Abs(filepath.Join("..", "..", "config", "crd", "bases"))
	Expect(err).NotTo(HaveOccurred())
	cp, err = controlplane.Start(controlplane.Options{CRDDirectoryPaths: []string{crds}})
	Expect(err).NotTo(HaveOccurred(), "set KUBEBUILDER_ASSETS to the directory hack/build-control-plane.sh prints")

	k8sClient, err = client.New(cp.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: membersNamespace}})).To(Succeed())
})

var _ = AfterSuite(func() {
	if cp != nil {
		Expect(cp.Stop()).To(Succeed())
	}
})
