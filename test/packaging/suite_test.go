// Package packaging tests the ways the operator is shipped, for real: the Helm chart (lint,
// template, schema, install, upgrade and uninstall into a local control plane), the kustomize
// overlays (server-side applied), the container image (built with ko offline and inspected), and
// the generated files that must not drift from their sources (chart copies of the CRDs and RBAC,
// the CRD reference pages, the health checks shown in docs/gitops.md).
package packaging_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/orgoperator/org-operator/internal/controlplane"
)

var (
	// root is the repository root; every command runs there.
	root string
	// helm and ko are the binaries of go.mod's tool directives; kubectl is the control plane's.
	helm, ko, kubectl string
)

func TestPackaging(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Packaging")
}

var _ = BeforeSuite(func() {
	var err error
	root, err = filepath.Abs(filepath.Join("..", ".."))
	Expect(err).NotTo(HaveOccurred())
	helm = goTool("helm")
	ko = goTool("ko")
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	Expect(assets).NotTo(BeEmpty(), "set KUBEBUILDER_ASSETS to the directory hack/build-control-plane.sh prints")
	kubectl = filepath.Join(assets, "kubectl")
	Expect(kubectl).To(BeAnExistingFile())
})

// goTool returns the path of a tool of go.mod's tool directives, building it (once, through the
// build cache) if needed.
func goTool(name string) string {
	GinkgoHelper()
	out, err := exec.Command("go", "tool", "-n", name).Output()
	Expect(err).NotTo(HaveOccurred(), "go tool -n %s: %s", name, stderrOf(err))
	path := strings.TrimSpace(string(out))
	Expect(path).To(BeAnExistingFile())
	return path
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

// command is a command run from the repository root with extra environment.
type command struct {
	name  string
	args  []string
	env   []string
	stdin io.Reader
}

// run runs c and returns its standard output, its standard error and its error.
func (c command) run() (string, string, error) {
	cmd := exec.Command(c.name, c.args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stdin = c.stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(&stderr, GinkgoWriter)
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// mustRun runs c and fails the spec with its standard error if it fails.
func (c command) mustRun() string {
	GinkgoHelper()
	stdout, stderr, err := c.run()
	Expect(err).NotTo(HaveOccurred(), "%s %s:\n%s", filepath.Base(c.name), strings.Join(c.args, " "), stderr)
	return stdout
}

// cluster is a control plane with a kubeconfig file for command-line tools, and a Helm home
// that is private to it.
type cluster struct {
	cp         *controlplane.ControlPlane
	kubeconfig string
	env        []string
}

// startCluster starts a control plane (with kube-controller-manager, so namespaces and
// garbage collection work) and stops it when the container's specs are done.
func startCluster() *cluster {
	GinkgoHelper()
	cp, err := controlplane.Start(controlplane.Options{ControllerManager: true})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { Expect(cp.Stop()).To(Succeed()) })
	dir := GinkgoT().TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	b, err := cp.AdminKubeconfig()
	Expect(err).NotTo(HaveOccurred())
	Expect(os.WriteFile(kubeconfig, b, 0o600)).To(Succeed())
	return &cluster{cp: cp, kubeconfig: kubeconfig, env: []string{
		"KUBECONFIG=" + kubeconfig,
		"HELM_CACHE_HOME=" + filepath.Join(dir, "helm", "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(dir, "helm", "config"),
		"HELM_DATA_HOME=" + filepath.Join(dir, "helm", "data"),
	}}
}

func (c *cluster) helm(args ...string) command {
	return command{name: helm, args: args, env: c.env}
}

func (c *cluster) kubectl(args ...string) command {
	return command{name: kubectl, args: args, env: c.env}
}

// get returns an object through kubectl, or nil when it does not exist.
func (c *cluster) get(kind, namespace, name string) *unstructured.Unstructured {
	GinkgoHelper()
	args := []string{"get", kind, name, "-o", "json", "--ignore-not-found"}
	if namespace != "" {
		args = append(args, "-n", namespace)
	}
	out := c.kubectl(args...).mustRun()
	if strings.TrimSpace(out) == "" {
		return nil
	}
	objs := parseManifests(out)
	Expect(objs).To(HaveLen(1))
	return objs[0]
}

// offline is the Helm environment for commands that need no cluster.
var offline = func() []string {
	dir, err := os.MkdirTemp("", "helm-home-")
	if err != nil {
		panic(err)
	}
	return []string{"HELM_CACHE_HOME=" + dir + "/cache", "HELM_CONFIG_HOME=" + dir + "/config", "HELM_DATA_HOME=" + dir + "/data", "KUBECONFIG=/dev/null"}
}()

func helmOffline(args ...string) command {
	return command{name: helm, args: args, env: offline}
}

// parseManifests splits YAML or JSON documents into objects, skipping empty ones; a List is
// expanded into its items.
func parseManifests(s string) []*unstructured.Unstructured {
	GinkgoHelper()
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(s), 4096)
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			return out
		}
		Expect(err).NotTo(HaveOccurred())
		if len(u.Object) == 0 {
			continue
		}
		if u.IsList() {
			Expect(u.EachListItem(func(o runtime.Object) error {
				out = append(out, o.(*unstructured.Unstructured))
				return nil
			})).To(Succeed())
			continue
		}
		out = append(out, u)
	}
}

// find returns the object of the given kind and name, or nil.
func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// kinds counts objects by kind.
func kinds(objs []*unstructured.Unstructured) map[string]int {
	out := map[string]int{}
	for _, o := range objs {
		out[o.GetKind()]++
	}
	return out
}

func names(objs []*unstructured.Unstructured, kind string) []string {
	var out []string
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o.GetName())
		}
	}
	return out
}

// readFile reads a file of the repository.
func readFile(path string) string {
	GinkgoHelper()
	b, err := os.ReadFile(filepath.Join(root, path))
	Expect(err).NotTo(HaveOccurred())
	return string(b)
}

func init() {
	SetDefaultEventuallyTimeout(60 * time.Second)
	SetDefaultEventuallyPollingInterval(250 * time.Millisecond)
}
