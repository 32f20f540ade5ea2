package health_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/orgoperator/org-operator/internal/controlplane"
	"github.com/orgoperator/org-operator/internal/health"
)

// The suite creates Organizations and OrganizationMembers in a real API server (CRDs of
// config/crd/bases, no controller), writes their status through the status subresource to each
// stage of their lifecycle, reads them back and asks kstatus and the chart's Argo CD health checks
// what they make of them.

var (
	ctx     = context.Background()
	cp      *controlplane.ControlPlane
	k8s     client.Client
	scripts map[string]string
)

func TestHealth(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "GitOps health")
}

var _ = BeforeSuite(func() {
	var err error
	scripts, err = health.LoadScripts(filepath.Join("..", "..", "charts", "org-operator", "files", "health"))
	Expect(err).NotTo(HaveOccurred())

	cp, err = controlplane.Start(controlplane.Options{
		CRDDirectoryPaths: []string{filepath.Join("..", "..", "config", "crd", "bases")},
	})
	Expect(err).NotTo(HaveOccurred(), "set KUBEBUILDER_ASSETS to the directory hack/build-control-plane.sh prints")
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	k8s, err = client.New(cp.Config, client.Options{Scheme: s})
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if cp != nil {
		Expect(cp.Stop()).To(Succeed())
	}
})

func init() {
	SetDefaultEventuallyTimeout(10 * time.Second)
}
