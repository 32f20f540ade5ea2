package packaging_test

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/types"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/orgoperator/org-operator/internal/health"
)

const (
	chart       = "charts/org-operator"
	releaseNS   = "org-operator-system"
	releaseName = "org-operator"
)

// template renders the chart with the given --set values and extra arguments.
func template(args ...string) []*unstructured.Unstructured {
	GinkgoHelper()
	out := helmOffline(append([]string{"template", releaseName, chart, "-n", releaseNS}, args...)...).mustRun()
	return parseManifests(out)
}

func appVersion() string {
	GinkgoHelper()
	c := map[string]any{}
	Expect(yaml.Unmarshal([]byte(readFile(filepath.Join(chart, "Chart.yaml"))), &c)).To(Succeed())
	return c["appVersion"].(string)
}

func nested(u *unstructured.Unstructured, fields ...string) any {
	v, _, _ := unstructured.NestedFieldNoCopy(u.Object, fields...)
	return v
}

// container returns the manager container of a Deployment.
func container(d *unstructured.Unstructured) map[string]any {
	GinkgoHelper()
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	Expect(cs).To(HaveLen(1))
	return cs[0].(map[string]any)
}

// configCRDs returns the CRDs of config/crd/bases.
func configCRDs() []*unstructured.Unstructured {
	GinkgoHelper()
	files, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	Expect(err).NotTo(HaveOccurred())
	Expect(files).NotTo(BeEmpty())
	var crds []*unstructured.Unstructured
	for _, f := range files {
		b, err := os.ReadFile(f)
		Expect(err).NotTo(HaveOccurred())
		crds = append(crds, parseManifests(string(b))...)
	}
	return crds
}

var _ = Describe("Helm chart", func() {
	It("passes helm lint, with the default values and with every option on", func() {
		helmOffline("lint", "--strict", chart).mustRun()
		helmOffline("lint", "--strict", chart, "-f", "test/packaging/testdata/all-options.yaml").mustRun()
	})

	It("renders the operator with the documented defaults", func() {
		objs := template()
		_, rbac := kustomize("config/rbac") // the admission policies are config/rbac's, all of them
		Expect(kinds(objs)).To(Equal(map[string]int{
			"CustomResourceDefinition": len(configCRDs()), "ServiceAccount": 1, "ClusterRole": 7, "ClusterRoleBinding": 3,
			"Role": 2, "RoleBinding": 2, "Service": 2, "Deployment": 1, "PodDisruptionBudget": 1,
			"MutatingWebhookConfiguration": 1, "ValidatingWebhookConfiguration": 1, "Secret": 1,
			"ValidatingAdmissionPolicy": kinds(rbac)["ValidatingAdmissionPolicy"], "ValidatingAdmissionPolicyBinding": kinds(rbac)["ValidatingAdmissionPolicyBinding"],
		}))
		Expect(names(objs, "ValidatingAdmissionPolicy")).To(ConsistOf(names(rbac, "ValidatingAdmissionPolicy")))
		Expect(names(objs, "ClusterRole")).To(ConsistOf("org-operator-manager-role", "org-operator-metrics-auth-role",
			"org-operator-metrics-reader", "org-operator-organization-admin", "orgoperator-viewer", "orgoperator-editor",
			"org-operator-invitation-redeemer"))
		Expect(names(objs, "CustomResourceDefinition")).To(ContainElements(
			"organizations.tenancy.orgoperator.io", "organizationmembers.tenancy.orgoperator.io"))
		for _, o := range objs {
			if o.GetKind() == "Role" || o.GetKind() == "RoleBinding" || o.GetKind() == "Deployment" || o.GetKind() == "Service" {
				Expect(o.GetNamespace()).To(Equal(releaseNS), "%s %s", o.GetKind(), o.GetName())
			}
			Expect(o.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "Helm"), "%s %s", o.GetKind(), o.GetName())
		}

		By("CRDs are kept on uninstall")
		for _, crd := range names(objs, "CustomResourceDefinition") {
			Expect(find(objs, "CustomResourceDefinition", crd).GetAnnotations()).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"))
		}

		By("2 replicas with leader election, the appVersion image, webhooks with self-managed certificates")
		d := find(objs, "Deployment", "org-operator-controller-manager")
		Expect(d).NotTo(BeNil())
		Expect(nested(d, "spec", "replicas")).To(BeNumerically("==", 2))
		c := container(d)
		Expect(c["image"]).To(Equal("ghcr.io/orgoperator/org-operator:" + appVersion()))
		Expect(c["args"]).To(ContainElements("--leader-elect", "--metrics-bind-address=:8443", "--metrics-secure=true",
			"--health-probe-bind-address=:8081", "--enable-webhooks=true", "--webhook-certs=self-managed"))
		Expect(c).NotTo(HaveKey("command"), "the image's entrypoint runs: /manager (Dockerfile) or /ko-app/org-operator (ko)")
		Expect(c["env"]).To(ContainElement(HaveKeyWithValue("name", "POD_NAMESPACE")))
		Expect(c["env"]).To(ContainElement(And(HaveKeyWithValue("name", "POD_NAME"),
			HaveKeyWithValue("valueFrom", HaveKeyWithValue("fieldRef", HaveKeyWithValue("fieldPath", "metadata.name"))))))
		Expect(nested(d, "spec", "template", "spec", "serviceAccountName")).To(Equal("org-operator-controller-manager"))

		By("resource requests and the restricted Pod Security Standard")
		Expect(c["resources"]).To(HaveKeyWithValue("requests", And(HaveKey("cpu"), HaveKey("memory"))))
		Expect(nested(d, "spec", "template", "spec", "securityContext")).To(And(
			HaveKeyWithValue("runAsNonRoot", true), HaveKeyWithValue("seccompProfile", HaveKeyWithValue("type", "RuntimeDefault"))))
		Expect(c["securityContext"]).To(And(
			HaveKeyWithValue("runAsNonRoot", true), HaveKeyWithValue("readOnlyRootFilesystem", true),
			HaveKeyWithValue("allowPrivilegeEscalation", false),
			HaveKeyWithValue("capabilities", HaveKeyWithValue("drop", ConsistOf("ALL"))),
			HaveKeyWithValue("seccompProfile", HaveKeyWithValue("type", "RuntimeDefault"))))

		By("readiness on /readyz (which waits for the webhook server), liveness on /healthz")
		Expect(c["readinessProbe"]).To(HaveKeyWithValue("httpGet", HaveKeyWithValue("path", "/readyz")))
		Expect(c["livenessProbe"]).To(HaveKeyWithValue("httpGet", HaveKeyWithValue("path", "/healthz")))

		By("a PodDisruptionBudget, topology spread over nodes and zones, and a metrics Service that select the manager pods")
		selector := nested(d, "spec", "selector", "matchLabels").(map[string]any)
		Expect(nested(find(objs, "PodDisruptionBudget", "org-operator-controller-manager"), "spec", "selector", "matchLabels")).To(Equal(selector))
		Expect(nested(find(objs, "PodDisruptionBudget", "org-operator-controller-manager"), "spec", "minAvailable")).To(BeNumerically("==", 1))
		spread := func(key string) types.GomegaMatcher {
			return And(HaveKeyWithValue("topologyKey", key), HaveKeyWithValue("maxSkew", BeNumerically("==", 1)),
				HaveKeyWithValue("whenUnsatisfiable", "ScheduleAnyway"),
				HaveKeyWithValue("labelSelector", HaveKeyWithValue("matchLabels", Equal(selector))))
		}
		Expect(nested(d, "spec", "template", "spec", "topologySpreadConstraints")).To(ConsistOf(
			spread("kubernetes.io/hostname"), spread("topology.kubernetes.io/zone")))
		svc := find(objs, "Service", "org-operator-metrics")
		Expect(nested(svc, "spec", "selector")).To(Equal(selector))
		Expect(nested(svc, "spec", "ports")).To(ConsistOf(And(HaveKeyWithValue("port", BeNumerically("==", 8443)), HaveKeyWithValue("targetPort", "metrics"))))

		By("the roles bind the manager's ServiceAccount, but the redeemer role every authenticated user; members read through view, and member writes are aggregated nowhere")
		Expect(nested(find(objs, "ClusterRoleBinding", "org-operator-invitation-redeemer"), "subjects")).To(ConsistOf(And(
			HaveKeyWithValue("kind", "Group"), HaveKeyWithValue("name", "system:authenticated"))))
		for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
			for _, name := range names(objs, kind) {
				if name == "org-operator-invitation-redeemer" {
					continue
				}
				Expect(nested(find(objs, kind, name), "subjects")).To(ConsistOf(And(
					HaveKeyWithValue("name", "org-operator-controller-manager"), HaveKeyWithValue("namespace", releaseNS))))
			}
		}
		Expect(find(objs, "ClusterRole", "orgoperator-viewer").GetLabels()).To(HaveKeyWithValue("rbac.authorization.k8s.io/aggregate-to-view", "true"))
		Expect(find(objs, "ClusterRole", "orgoperator-editor").GetLabels()).NotTo(HaveKey(ContainSubstring("aggregate-to")))
	})

	It("takes the CRDs and every RBAC rule from config/, not from a copy kept by hand", func() {
		objs := template()
		for _, crd := range configCRDs() {
			got := find(objs, "CustomResourceDefinition", crd.GetName())
			Expect(got).NotTo(BeNil(), "the chart does not install %s: run make chart-sync", crd.GetName())
			Expect(reflect.DeepEqual(got.Object["spec"], crd.Object["spec"])).To(BeTrue(),
				"the chart's %s differs from config/crd/bases: run make chart-sync", crd.GetName())
		}
		rendered := map[string]string{ // config/rbac object (kind/name) -> rendered name
			"ClusterRole/org-operator-manager-role":               "org-operator-manager-role",
			"Role/org-operator-manager-role":                      "org-operator-manager-role",
			"Role/org-operator-leader-election-role":              "org-operator-leader-election-role",
			"ClusterRole/org-operator-metrics-auth-role":          "org-operator-metrics-auth-role",
			"ClusterRole/org-operator-metrics-reader":             "org-operator-metrics-reader",
			"ClusterRole/org-operator-organization-admin":         "org-operator-organization-admin",
			"ClusterRole/orgoperator-viewer":                      "orgoperator-viewer",
			"ClusterRole/orgoperator-editor":                      "orgoperator-editor",
			"ClusterRole/org-operator-invitation-redeemer":        "org-operator-invitation-redeemer",
			"ClusterRoleBinding/org-operator-invitation-redeemer": "org-operator-invitation-redeemer",
		}
		files, err := filepath.Glob(filepath.Join(root, "config", "rbac", "*role.yaml"))
		Expect(err).NotTo(HaveOccurred())
		seen := 0
		for _, f := range files {
			for _, want := range parseManifests(readFile(strings.TrimPrefix(f, root+"/"))) {
				key := want.GetKind() + "/" + want.GetName()
				Expect(rendered).To(HaveKey(key), "%s of %s is not in the chart", key, f)
				got := find(objs, want.GetKind(), rendered[key])
				Expect(got).NotTo(BeNil(), key)
				for _, field := range []string{"rules", "roleRef", "subjects"} {
					Expect(reflect.DeepEqual(got.Object[field], want.Object[field])).To(BeTrue(),
						"the chart's %s of %s differ from %s: run make chart-sync", field, key, f)
				}
				seen++
			}
		}
		Expect(seen).To(Equal(len(rendered)))
	})

	DescribeTable("renders the optional parts from values",
		func(args []string, check func(objs []*unstructured.Unstructured)) { check(template(args...)) },
		Entry("crds.install=false leaves the CRDs out", []string{"--set", "crds.install=false"}, func(objs []*unstructured.Unstructured) {
			Expect(kinds(objs)).NotTo(HaveKey("CustomResourceDefinition"))
		}),
		Entry("crds.keep=false lets helm uninstall delete them", []string{"--set", "crds.keep=false"}, func(objs []*unstructured.Unstructured) {
			for _, crd := range names(objs, "CustomResourceDefinition") {
				Expect(find(objs, "CustomResourceDefinition", crd).GetAnnotations()).NotTo(HaveKey("helm.sh/resource-policy"))
			}
		}),
		Entry("one replica: no PodDisruptionBudget", []string{"--set", "replicaCount=1"}, func(objs []*unstructured.Unstructured) {
			Expect(kinds(objs)).NotTo(HaveKey("PodDisruptionBudget"))
			d := find(objs, "Deployment", "org-operator-controller-manager")
			Expect(nested(d, "spec", "replicas")).To(BeNumerically("==", 1))
			Expect(container(d)["args"]).To(ContainElement("--leader-elect"))
		}),
		Entry("one replica without leader election", []string{"--set", "replicaCount=1", "--set", "leaderElection.enabled=false"}, func(objs []*unstructured.Unstructured) {
			Expect(container(find(objs, "Deployment", "org-operator-controller-manager"))["args"]).NotTo(ContainElement("--leader-elect"))
		}),
		Entry("topologySpreadConstraints replace the default ones", []string{"--set", "topologySpreadConstraints[0].topologyKey=rack",
			"--set", "topologySpreadConstraints[0].maxSkew=2", "--set", "topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule"}, func(objs []*unstructured.Unstructured) {
			d := find(objs, "Deployment", "org-operator-controller-manager")
			Expect(nested(d, "spec", "template", "spec", "topologySpreadConstraints")).To(ConsistOf(HaveKeyWithValue("topologyKey", "rack")))
		}),
		Entry("image.digest pins the image", []string{"--set", "image.digest=sha256:" + strings.Repeat("ab", 32)}, func(objs []*unstructured.Unstructured) {
			Expect(container(find(objs, "Deployment", "org-operator-controller-manager"))["image"]).To(Equal("ghcr.io/orgoperator/org-operator@sha256:" + strings.Repeat("ab", 32)))
		}),
		Entry("metrics.enabled=false: no metrics Service, no metrics roles, metrics off", []string{"--set", "metrics.enabled=false"}, func(objs []*unstructured.Unstructured) {
			Expect(names(objs, "Service")).To(ConsistOf("org-operator-webhook-service"))
			Expect(names(objs, "ClusterRole")).NotTo(ContainElement("org-operator-metrics-reader"))
			Expect(container(find(objs, "Deployment", "org-operator-controller-manager"))["args"]).To(ContainElement("--metrics-bind-address=0"))
		}),
		Entry("rbac.aggregatedRoles=false leaves the viewer and editor roles out", []string{"--set", "rbac.aggregatedRoles=false"}, func(objs []*unstructured.Unstructured) {
			Expect(names(objs, "ClusterRole")).NotTo(ContainElements("orgoperator-viewer", "orgoperator-editor"))
			Expect(names(objs, "ClusterRole")).To(ContainElement("org-operator-organization-admin"))
		}),
		Entry("webhook.enabled=false: no webhook Service, configurations or certificate volume", []string{"--set", "webhook.enabled=false"}, func(objs []*unstructured.Unstructured) {
			Expect(kinds(objs)).NotTo(HaveKey("MutatingWebhookConfiguration"))
			Expect(kinds(objs)).NotTo(HaveKey("ValidatingWebhookConfiguration"))
			Expect(names(objs, "Service")).To(ConsistOf("org-operator-metrics"))
			d := find(objs, "Deployment", "org-operator-controller-manager")
			Expect(container(d)["args"]).To(ContainElement("--enable-webhooks=false"))
			Expect(container(d)["args"]).NotTo(ContainElement(HavePrefix("--webhook-")))
			Expect(nested(d, "spec", "template", "spec", "volumes")).To(ConsistOf(HaveKeyWithValue("name", "tmp")))
		}),
		Entry("every option on", []string{"-f", "test/packaging/testdata/all-options.yaml"}, func(objs []*unstructured.Unstructured) {
			sm := find(objs, "ServiceMonitor", "org-operator")
			Expect(sm).NotTo(BeNil())
			Expect(sm.GetLabels()).To(HaveKeyWithValue("release", "prometheus"))
			Expect(nested(sm, "spec", "endpoints")).To(ConsistOf(And(HaveKeyWithValue("port", "https"), HaveKeyWithValue("scheme", "https"))))
			svc := find(objs, "Service", "org-operator-metrics")
			Expect(nested(sm, "spec", "selector", "matchLabels")).To(BeAssignableToTypeOf(map[string]any{}))
			for k, v := range nested(sm, "spec", "selector", "matchLabels").(map[string]any) {
				Expect(svc.GetLabels()).To(HaveKeyWithValue(k, v), "the ServiceMonitor must select the metrics Service")
			}
			Expect(nested(find(objs, "ClusterRoleBinding", "org-operator-metrics-reader-monitoring-prometheus-k8s"), "roleRef", "name")).To(Equal("org-operator-metrics-reader"))

			dashboard := find(objs, "ConfigMap", "org-operator-dashboard")
			Expect(dashboard.GetLabels()).To(HaveKeyWithValue("grafana_dashboard", "1"))
			Expect(dashboard.GetAnnotations()).To(HaveKeyWithValue("grafana_folder", "Platform"))
			Expect(nested(dashboard, "data", "org-operator.json")).To(Equal(strings.TrimRight(readFile(filepath.Join(chart, "files", "dashboards", "org-operator.json")), "\n")))

			argocd := find(objs, "ConfigMap", "org-operator-argocd-health")
			Expect(argocd.GetNamespace()).To(Equal("argocd"))
			data := nested(argocd, "data").(map[string]any)
			Expect(data).To(HaveLen(len(health.Scripts)))
			for kind, file := range health.Scripts {
				Expect(data).To(HaveKeyWithValue(health.ConfigKey(kind), readFile(filepath.Join(chart, "files", "health", file))))
			}

			plans := names(objs, "OrganizationPlan")
			Expect(plans).To(ConsistOf("business", "free"))
			business := find(objs, "OrganizationPlan", "business")
			Expect(business.GetAPIVersion()).To(Equal("tenancy.orgoperator.io/v1alpha1"))
			Expect(business.GetLabels()).To(HaveKeyWithValue("tier", "paid"))
			Expect(nested(business, "spec", "displayName")).To(Equal("Business"))
		}),
	)

	DescribeTable("rejects bad values with a message that names the field",
		func(message string, args ...string) {
			_, stderr, err := helmOffline(append([]string{"template", releaseName, chart}, args...)...).run()
			Expect(err).To(HaveOccurred(), "helm template accepted %v", args)
			Expect(stderr).To(ContainSubstring(message))
		},
		Entry("a string replica count", "at '/replicaCount': got string, want integer", "--set-string", "replicaCount=two"),
		Entry("an unknown pull policy", "at '/image/pullPolicy': value must be one of", "--set", "image.pullPolicy=Sometimes"),
		Entry("a misspelt key", "additional properties 'replicas' not allowed", "--set", "replicas=3"),
		Entry("a tag with a space", "at '/image/tag'", "--set", "image.tag=v1 beta"),
		Entry("a bad digest", "at '/image/digest'", "--set", "image.digest=latest"),
		Entry("a port out of range", "at '/metrics/port'", "--set", "metrics.port=70000"),
		Entry("an unknown certificate provider", "at '/webhook/certificates': value must be one of 'selfManaged', 'certManager'", "--set", "webhook.certificates=vault"),
		Entry("an unknown failure policy", "at '/webhook/failurePolicy': value must be one of 'Fail', 'Ignore'", "--set", "webhook.failurePolicy=Never"),
		Entry("a webhook timeout above the API's 30 s", "at '/webhook/timeoutSeconds'", "--set", "webhook.timeoutSeconds=31"),
		Entry("a webhook timeout of 0", "at '/webhook/timeoutSeconds'", "--set", "webhook.timeoutSeconds=0"),
		Entry("a privileged webhook port", "at '/webhook/port'", "--set", "webhook.port=443"),
		Entry("a misspelt webhook key", "additional properties 'failurepolicy' not allowed", "--set", "webhook.failurepolicy=Ignore"),
		Entry("cert-manager certificates without cert-manager", "webhook.certificates=certManager needs cert-manager",
			"--set", "webhook.certificates=certManager"),
		Entry("a bad scrape interval", "at '/metrics/serviceMonitor/interval'", "--set", "metrics.serviceMonitor.interval=often"),
		Entry("a plan without a valid name", "at '/organizationPlans/items/0/name'", "--set", "organizationPlans.items[0].name=Gold_Plan"),
		Entry("an unknown log level", "at '/manager/logLevel'", "--set", "manager.logLevel=verbose"),
		Entry("replicas without leader election", "replicaCount above 1 needs leaderElection.enabled",
			"--set", "replicaCount=3", "--set", "leaderElection.enabled=false"),
		Entry("no ServiceAccount to run as", "serviceAccount.name is required when serviceAccount.create is false",
			"--set", "serviceAccount.create=false"),
	)
})

var _ = Describe("Helm install, upgrade and uninstall on a control plane", Ordered, func() {
	var c *cluster
	BeforeAll(func() { c = startCluster() })

	It("installs the operator", func() {
		// The webhooks are on (selfManaged), but nothing serves them here: the manager runs on this
		// machine, out of reach of the API server, and the webhook Service has no endpoints. With the
		// default failurePolicy Fail, creating or updating an organization or a member (this spec's
		// sample, the finalizers and status the manager writes in the next one) and the namespaces of
		// organizations would be rejected. This install sets Ignore, and a short timeout so that each
		// failed call costs little; admission through the Service is not tested here.
		c.helm("install", releaseName, chart, "-n", releaseNS, "--create-namespace",
			"--set", "webhook.failurePolicy=Ignore", "--set", "webhook.timeoutSeconds=1").mustRun()
		Expect(c.helm("list", "-n", releaseNS, "-o", "json").mustRun()).To(ContainSubstring(`"status":"deployed"`))

		d := c.get("deployment", releaseNS, "org-operator-controller-manager")
		Expect(d).NotTo(BeNil())
		Expect(nested(d, "spec", "replicas")).To(BeNumerically("==", 2))
		Expect(container(d)["image"]).To(Equal("ghcr.io/orgoperator/org-operator:" + appVersion()))
		Expect(c.get("serviceaccount", releaseNS, "org-operator-controller-manager")).NotTo(BeNil())
		for _, name := range []string{"org-operator-manager-role", "org-operator-organization-admin", "orgoperator-viewer",
			"orgoperator-editor", "org-operator-metrics-reader", "org-operator-metrics-auth-role"} {
			Expect(c.get("clusterrole", "", name)).NotTo(BeNil(), name)
		}
		Expect(c.get("clusterrolebinding", "", "org-operator-manager-rolebinding")).NotTo(BeNil())
		Expect(c.get("role", releaseNS, "org-operator-leader-election-role")).NotTo(BeNil())
		Expect(c.get("rolebinding", releaseNS, "org-operator-manager-rolebinding")).NotTo(BeNil())
		Expect(c.get("service", releaseNS, "org-operator-metrics")).NotTo(BeNil())
		Expect(c.get("poddisruptionbudget", releaseNS, "org-operator-controller-manager")).NotTo(BeNil())

		By("the webhook Service and both webhook configurations, calling the Service in the release namespace")
		svc := c.get("service", releaseNS, webhookService)
		Expect(svc).NotTo(BeNil())
		Expect(nested(svc, "spec", "ports")).To(ConsistOf(And(HaveKeyWithValue("port", BeNumerically("==", 443)), HaveKeyWithValue("targetPort", "webhook"))))
		for kind, name := range map[string]string{"mutatingwebhookconfiguration": mutatingWebhooks, "validatingwebhookconfiguration": validatingWebhooks} {
			for _, w := range webhooksOf(c.get(kind, "", name)) {
				Expect(w["clientConfig"]).To(HaveKeyWithValue("service", And(HaveKeyWithValue("name", webhookService), HaveKeyWithValue("namespace", releaseNS))))
				Expect(w).To(HaveKeyWithValue("failurePolicy", "Ignore"))
			}
		}

		By("the CRDs are established and serve organizations")
		c.kubectl("wait", "--for=condition=Established", "--timeout=60s",
			"crd/organizations.tenancy.orgoperator.io", "crd/organizationmembers.tenancy.orgoperator.io").mustRun()
		c.kubectl("apply", "--server-side", "-f", "config/samples/tenancy_v1alpha1_organization.yaml").mustRun()
		Expect(c.get("organization", "", "acme")).NotTo(BeNil())
	})

	It("runs the manager with the chart's arguments as the chart's ServiceAccount: it manages its webhook certificate and reconciles", func() {
		d := c.get("deployment", releaseNS, "org-operator-controller-manager")
		sa := nested(d, "spec", "template", "spec", "serviceAccountName").(string)
		probe, metrics, webhookPort := freePort(), freePort(), freePort()
		certDir := GinkgoT().TempDir()
		var args []string
		for _, a := range container(d)["args"].([]any) {
			arg := a.(string)
			switch {
			case strings.HasPrefix(arg, "--health-probe-bind-address="):
				arg = "--health-probe-bind-address=127.0.0.1:" + probe
			case strings.HasPrefix(arg, "--metrics-bind-address="):
				arg = "--metrics-bind-address=127.0.0.1:" + metrics
			case strings.HasPrefix(arg, "--webhook-port="):
				arg = "--webhook-port=" + webhookPort
			case strings.HasPrefix(arg, "--webhook-cert-dir="):
				arg = "--webhook-cert-dir=" + certDir
			}
			args = append(args, arg)
		}
		Expect(args).To(ContainElement("--leader-elect"))
		Expect(args).To(ContainElements("--enable-webhooks=true", "--webhook-certs=self-managed", "--webhook-cert-dir="+certDir))
		// In the pod, $POD_NAMESPACE names the namespace; here it is explicit.
		args = append(args, "--namespace="+releaseNS, "--webhook-host=127.0.0.1")
		// Out of a pod, controller-runtime cannot find the namespace of the Lease unless main.go
		// passes LeaderElectionNamespace (from --namespace / POD_NAMESPACE); until it does, the
		// manager runs without leader election here and the Role is checked with can-i.
		leaderElection := strings.Contains(readFile("main.go"), "LeaderElectionNamespace")
		if !leaderElection {
			args = slices.DeleteFunc(args, func(a string) bool { return a == "--leader-elect" })
		}
		for _, verb := range []string{"get", "create", "update"} {
			Expect(strings.TrimSpace(c.kubectl("auth", "can-i", verb, "leases.coordination.k8s.io", "-n", releaseNS,
				"--as", "system:serviceaccount:"+releaseNS+":"+sa).mustRun())).To(Equal("yes"), "%s leases", verb)
		}

		By("a kubeconfig with a token of the chart's ServiceAccount, as the pod would mount")
		token := strings.TrimSpace(c.kubectl("create", "token", sa, "-n", releaseNS, "--duration=1h").mustRun())
		cfg := c.cp.Config
		kubeconfig := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
		Expect(os.WriteFile(kubeconfig, []byte(serviceAccountKubeconfig(cfg.Host, cfg.CAData, token)), 0o600)).To(Succeed())

		manager := filepath.Join(GinkgoT().TempDir(), "manager")
		command{name: "go", args: []string{"build", "-o", manager, "."}}.mustRun()
		proc := exec.Command(manager, args...)
		proc.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "POD_NAMESPACE="+releaseNS)
		proc.Stdout, proc.Stderr = GinkgoWriter, GinkgoWriter
		Expect(proc.Start()).To(Succeed())
		DeferCleanup(func() {
			_ = proc.Process.Signal(os.Interrupt)
			_ = proc.Wait()
		})

		roots := expectSelfManagedCertificates(c, releaseNS, certDir)

		Eventually(func(g Gomega) {
			resp, err := http.Get("http://127.0.0.1:" + probe + "/readyz")
			g.Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
		}).Should(Succeed(), "not ready: /readyz waits for the webhook server, which waits for the certificate")
		expectServes("127.0.0.1:"+webhookPort, releaseNS, roots)
		if leaderElection {
			Eventually(func(g Gomega) {
				lease := c.get("lease", releaseNS, "org-operator.tenancy.orgoperator.io")
				g.Expect(lease).NotTo(BeNil())
				g.Expect(nested(lease, "spec", "holderIdentity")).NotTo(BeEmpty())
			}).Should(Succeed(), "no leader elected: the leader election Role is not enough")
		}
		Eventually(func(g Gomega) {
			org := c.get("organization", "", "acme")
			g.Expect(nested(org, "status", "observedGeneration")).To(Equal(nested(org, "metadata", "generation")))
			g.Expect(nested(org, "status", "homeNamespace")).To(Equal("acme"))
		}).Should(Succeed(), "the manager did not reconcile organization acme with the chart's RBAC")
	})

	It("upgrades: changed values reach the objects", func() {
		c.helm("upgrade", releaseName, chart, "-n", releaseNS, "--set", "replicaCount=3", "--set", "image.tag=v0.2.0",
			"--set", "manager.concurrency=8", "--set", "rbac.aggregatedRoles=false", "--set", "webhook.timeoutSeconds=3").mustRun()
		Expect(c.helm("history", releaseName, "-n", releaseNS, "-o", "json").mustRun()).To(ContainSubstring(`"revision":2`))

		d := c.get("deployment", releaseNS, "org-operator-controller-manager")
		Expect(nested(d, "spec", "replicas")).To(BeNumerically("==", 3))
		Expect(container(d)["image"]).To(Equal("ghcr.io/orgoperator/org-operator:v0.2.0"))
		Expect(container(d)["args"]).To(ContainElement("--concurrency=8"))
		Expect(c.get("clusterrole", "", "orgoperator-viewer")).To(BeNil(), "a role the new values leave out is deleted")
		Expect(c.get("clusterrole", "", "org-operator-organization-admin")).NotTo(BeNil())
		Expect(c.get("organization", "", "acme")).NotTo(BeNil())

		By("the webhook configurations take the new values and keep the caBundle the operator injected")
		for kind, name := range map[string]string{"mutatingwebhookconfiguration": mutatingWebhooks, "validatingwebhookconfiguration": validatingWebhooks} {
			for _, w := range webhooksOf(c.get(kind, "", name)) {
				Expect(w).To(And(HaveKeyWithValue("timeoutSeconds", BeNumerically("==", 3)), HaveKeyWithValue("failurePolicy", "Fail")))
				Expect(w["clientConfig"]).To(HaveKeyWithValue("caBundle", Not(BeEmpty())), "helm upgrade removed the caBundle of %s", w["name"])
			}
		}
		Expect(nested(c.get("secret", releaseNS, "org-operator-webhook-certs"), "data")).To(HaveKey("tls.crt"),
			"helm upgrade emptied the certificate Secret that the chart creates and the operator fills")
	})

	It("renders Argo CD health checks that the command of docs/gitops.md merges into argocd-cm", func() {
		c.helm("upgrade", releaseName, chart, "-n", releaseNS, "--reuse-values", "--set", "argocd.healthChecks.enabled=true").mustRun()
		c.kubectl("create", "configmap", "argocd-cm", "-n", releaseNS, "--from-literal=url=https://argocd.example.com").mustRun()
		data := c.kubectl("get", "configmap", "org-operator-argocd-health", "-n", releaseNS, "-o", "jsonpath={.data}").mustRun()
		c.kubectl("patch", "configmap", "argocd-cm", "-n", releaseNS, "--type", "merge", "--patch", `{"data": `+data+`}`).mustRun()
		merged := c.get("configmap", releaseNS, "argocd-cm")
		Expect(nested(merged, "data", "url")).To(Equal("https://argocd.example.com"))
		for kind, file := range health.Scripts {
			Expect(nested(merged, "data", health.ConfigKey(kind))).To(Equal(readFile(filepath.Join(chart, "files", "health", file))))
		}
		Expect(readFile("docs/gitops.md")).To(ContainSubstring(`"{\"data\": $(kubectl -n argocd get configmap org-operator-argocd-health -o jsonpath='{.data}')}"`))
	})

	It("uninstalls the operator and keeps the CRDs and the organizations", func() {
		c.helm("uninstall", releaseName, "-n", releaseNS, "--wait").mustRun()
		Expect(c.get("deployment", releaseNS, "org-operator-controller-manager")).To(BeNil())
		Expect(c.get("serviceaccount", releaseNS, "org-operator-controller-manager")).To(BeNil())
		Expect(c.get("clusterrole", "", "org-operator-manager-role")).To(BeNil())
		Expect(c.get("clusterrole", "", "org-operator-organization-admin")).To(BeNil())
		Expect(c.get("clusterrolebinding", "", "org-operator-manager-rolebinding")).To(BeNil())
		Expect(c.get("crd", "", "organizations.tenancy.orgoperator.io")).NotTo(BeNil())
		Expect(c.get("crd", "", "organizationmembers.tenancy.orgoperator.io")).NotTo(BeNil())
		Expect(c.get("organization", "", "acme")).NotTo(BeNil())
		Expect(c.helm("list", "-A", "-o", "json").mustRun()).To(MatchJSON("[]"))
	})

	It("installs again over the kept CRDs", func() {
		c.helm("install", releaseName, chart, "-n", releaseNS).mustRun()
		Expect(c.get("deployment", releaseNS, "org-operator-controller-manager")).NotTo(BeNil())
	})

	It("creates OrganizationPlans from values once their CRD is installed", func() {
		if find(template(), "CustomResourceDefinition", "organizationplans.tenancy.orgoperator.io") == nil {
			Skip("the chart has no OrganizationPlan CRD yet")
		}
		c.helm("upgrade", releaseName, chart, "-n", releaseNS, "--set", "organizationPlans.create=true",
			"--set", "organizationPlans.items[0].name=gold", "--set", "organizationPlans.items[0].spec.displayName=Gold").mustRun()
		plan := c.get("organizationplan", "", "gold")
		Expect(plan).NotTo(BeNil())
		Expect(nested(plan, "spec", "displayName")).To(Equal("Gold"))
	})
})

// freePort returns a loopback port that was free a moment ago.
func freePort() string {
	GinkgoHelper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// serviceAccountKubeconfig is a kubeconfig that authenticates with a bearer token.
func serviceAccountKubeconfig(server string, ca []byte, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: manager
  user:
    token: %s
contexts:
- name: manager
  context: {cluster: test, user: manager}
current-context: manager
`, server, base64.StdEncoding.EncodeToString(ca), token)
}
