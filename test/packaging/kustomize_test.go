package packaging_test

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// kustomize renders an overlay with kubectl's kustomize.
func kustomize(dir string) (string, []*unstructured.Unstructured) {
	GinkgoHelper()
	out := command{name: kubectl, args: []string{"kustomize", dir}}.mustRun()
	return out, parseManifests(out)
}

var _ = Describe("kustomize overlays on a control plane", Ordered, func() {
	var c *cluster
	BeforeAll(func() { c = startCluster() })

	It("applies config/default server-side, twice, without conflicts", func() {
		manifest, objs := kustomize("config/default")
		Expect(kinds(objs)).To(HaveKey("Deployment"))
		for i := range 2 { // the second apply proves the manifests are stable under server-side apply
			By([]string{"first apply", "second apply"}[i])
			c.kubectl("apply", "--server-side", "--field-manager=kustomize-test", "-f", "-").withStdin(manifest).mustRun()
		}
		for _, o := range objs {
			kind := strings.ToLower(o.GetKind())
			if group := o.GroupVersionKind().Group; group != "" {
				kind += "." + group
			}
			Expect(c.get(kind, o.GetNamespace(), o.GetName())).NotTo(BeNil(), "%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
		}
		d := c.get("deployment", "org-operator-system", "org-operator-controller-manager")
		Expect(container(d)["args"]).To(ContainElement("--leader-elect"))
		Expect(c.get("clusterrole", "", "org-operator-organization-admin")).NotTo(BeNil())
		c.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/organizations.tenancy.orgoperator.io").mustRun()
	})

	It("renders config/prometheus: a ServiceMonitor that selects the metrics Service of config/default", func() {
		_, monitors := kustomize("config/prometheus")
		Expect(kinds(monitors)).To(Equal(map[string]int{"ServiceMonitor": 1}))
		sm := monitors[0]
		Expect(sm.GetAPIVersion()).To(Equal("monitoring.coreos.com/v1"))
		_, objs := kustomize("config/default")
		svc := find(objs, "Service", "org-operator-controller-manager-metrics-service")
		Expect(svc).NotTo(BeNil())
		Expect(sm.GetNamespace()).To(Equal(svc.GetNamespace()))
		for k, v := range nested(sm, "spec", "selector", "matchLabels").(map[string]any) {
			Expect(svc.GetLabels()).To(HaveKeyWithValue(k, v))
		}
		ports := nested(svc, "spec", "ports").([]any)
		Expect(nested(sm, "spec", "endpoints")).To(ConsistOf(HaveKeyWithValue("port", ports[0].(map[string]any)["name"])))
	})

	It("applies config/default-with-prometheus once the ServiceMonitor CRD is installed", func() {
		manifest, objs := kustomize("config/default-with-prometheus")
		Expect(kinds(objs)).To(HaveKeyWithValue("ServiceMonitor", 1))
		Expect(kinds(objs)).To(HaveKeyWithValue("Deployment", 1))

		_, stderr, err := c.kubectl("apply", "--server-side", "-f", "-").withStdin(manifest).run()
		Expect(err).To(HaveOccurred(), "applied a ServiceMonitor without its CRD")
		Expect(stderr).To(ContainSubstring("ServiceMonitor"))

		c.kubectl("apply", "--server-side", "-f", "test/packaging/testdata/servicemonitor-crd.yaml").mustRun()
		c.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/servicemonitors.monitoring.coreos.com").mustRun()
		Eventually(func() error {
			_, _, err := c.kubectl("apply", "--server-side", "--field-manager=kustomize-test", "-f", "-").withStdin(manifest).run()
			return err
		}).Should(Succeed())
		sm := c.get("servicemonitor", "org-operator-system", "org-operator-controller-manager-metrics-monitor")
		Expect(sm).NotTo(BeNil())
		Expect(sm.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/part-of", "org-operator"))
	})
})

// withStdin returns c reading standard input from s.
func (c command) withStdin(s string) command {
	c.stdin = strings.NewReader(s)
	return c
}
