package packaging_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"reflect"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const (
	mutatingWebhooks   = "org-operator-mutating-webhook-configuration"
	validatingWebhooks = "org-operator-validating-webhook-configuration"
	webhookService     = "org-operator-webhook-service"
	// webhookNS is a release namespace other than the org-operator-system of config/, so that the
	// template tests see what the chart changes.
	webhookNS = "tenancy-system"
)

// templateIn renders the chart into namespace ns.
func templateIn(ns string, args ...string) []*unstructured.Unstructured {
	GinkgoHelper()
	out := helmOffline(append([]string{"template", releaseName, chart, "-n", ns}, args...)...).mustRun()
	return parseManifests(out)
}

// configWebhooks returns the objects of config/webhook (the generated configurations and the Service).
func configWebhooks() []*unstructured.Unstructured {
	GinkgoHelper()
	return append(parseManifests(readFile("config/webhook/manifests.yaml")), parseManifests(readFile("config/webhook/service.yaml"))...)
}

// webhooksOf returns the webhooks of a webhook configuration.
func webhooksOf(cfg *unstructured.Unstructured) []map[string]any {
	GinkgoHelper()
	Expect(cfg).NotTo(BeNil())
	list, _, _ := unstructured.NestedSlice(cfg.Object, "webhooks")
	Expect(list).NotTo(BeEmpty())
	var out []map[string]any
	for _, w := range list {
		out = append(out, w.(map[string]any))
	}
	return out
}

// excludedNamespaces returns the namespaces a webhook's object or namespace selector excludes by name.
func excludedNamespaces(w map[string]any) []any {
	var out []any
	for _, sel := range []string{"objectSelector", "namespaceSelector"} {
		exprs, _, _ := unstructured.NestedSlice(w, sel, "matchExpressions")
		for _, e := range exprs {
			e := e.(map[string]any)
			if e["key"] == "kubernetes.io/metadata.name" && e["operator"] == "NotIn" {
				out = append(out, e["values"].([]any)...)
			}
		}
	}
	return out
}

// volume returns the pod volume of a Deployment with the given name.
func volume(d *unstructured.Unstructured, name string) map[string]any {
	GinkgoHelper()
	vs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "volumes")
	for _, v := range vs {
		if v.(map[string]any)["name"] == name {
			return v.(map[string]any)
		}
	}
	Fail("no volume " + name)
	return nil
}

var _ = Describe("Helm chart webhooks", func() {
	It("renders the generated configurations and Service in the release namespace, with self-managed certificates", func() {
		objs := templateIn(webhookNS)

		By("the configurations of config/webhook keep their names, rules and paths")
		for _, want := range configWebhooks() {
			got := find(objs, want.GetKind(), want.GetName())
			Expect(got).NotTo(BeNil(), "the chart does not render %s %s: run make chart-sync", want.GetKind(), want.GetName())
			if want.GetKind() == "Service" {
				Expect(got.GetNamespace()).To(Equal(webhookNS))
				Expect(reflect.DeepEqual(nested(got, "spec", "ports"), nested(want, "spec", "ports"))).To(BeTrue())
				continue
			}
			Expect(got.GetAnnotations()).NotTo(HaveKey("cert-manager.io/inject-ca-from"), "the operator injects the CA itself")
			gotHooks, wantHooks := webhooksOf(got), webhooksOf(want)
			Expect(gotHooks).To(HaveLen(len(wantHooks)))
			for i, w := range wantHooks {
				g := gotHooks[i]
				Expect(g["name"]).To(Equal(w["name"]))
				Expect(g["rules"]).To(Equal(w["rules"]), "%s", w["name"])
				Expect(g["sideEffects"]).To(Equal(w["sideEffects"]))
				path, _, _ := unstructured.NestedString(w, "clientConfig", "service", "path")
				Expect(g["clientConfig"]).To(HaveKeyWithValue("service", And(
					HaveKeyWithValue("name", webhookService), HaveKeyWithValue("namespace", webhookNS), HaveKeyWithValue("path", path))))
				Expect(g["failurePolicy"]).To(Equal("Fail"))
				Expect(g["timeoutSeconds"]).To(BeNumerically("==", 5))
				if excluded := excludedNamespaces(w); len(excluded) > 0 {
					Expect(excludedNamespaces(g)).To(ConsistOf(append(without(excluded, "org-operator-system"), webhookNS)...),
						"%s must exclude the release namespace instead of org-operator-system", w["name"])
				}
			}
		}
		Expect(excludedNamespaces(webhooksOf(find(objs, "ValidatingWebhookConfiguration", validatingWebhooks))[0])).To(
			ContainElements("kube-system", "default", webhookNS))

		By("the Service selects the manager pods, whose container serves port webhook")
		d := find(objs, "Deployment", "org-operator-controller-manager")
		Expect(nested(find(objs, "Service", webhookService), "spec", "selector")).To(Equal(nested(d, "spec", "selector", "matchLabels")))
		c := container(d)
		Expect(c["ports"]).To(ContainElement(And(HaveKeyWithValue("name", "webhook"), HaveKeyWithValue("containerPort", BeNumerically("==", 9443)))))

		By("the manager manages the certificate and reads it from the Secret org-operator-webhook-certs, mounted read-only")
		Expect(c["args"]).To(ContainElements("--enable-webhooks=true", "--webhook-certs=self-managed", "--webhook-port=9443",
			"--webhook-cert-dir=/tmp/k8s-webhook-server/serving-certs"))
		Expect(c["env"]).To(ContainElement(HaveKeyWithValue("name", "POD_NAMESPACE")), "the Secret's namespace")
		Expect(c["volumeMounts"]).To(ContainElement(And(HaveKeyWithValue("name", "webhook-certs"),
			HaveKeyWithValue("mountPath", "/tmp/k8s-webhook-server/serving-certs"), HaveKeyWithValue("readOnly", true))))
		Expect(volume(d, "webhook-certs")).To(HaveKeyWithValue("secret", HaveKeyWithValue("secretName", "org-operator-webhook-certs")))
		// cert-controller's rotator fills the Secret but never creates it: the chart does, empty.
		secret := find(objs, "Secret", "org-operator-webhook-certs")
		Expect(secret).NotTo(BeNil())
		Expect(secret.GetNamespace()).To(Equal(webhookNS))
		Expect(secret.Object).NotTo(HaveKey("data"))
		Expect(c["securityContext"]).To(HaveKeyWithValue("readOnlyRootFilesystem", true))

		By("the Role for that Secret is bound in the release namespace")
		role := find(objs, "Role", "org-operator-manager-role")
		Expect(role.GetNamespace()).To(Equal(webhookNS))
		Expect(role.Object["rules"]).To(ContainElement(HaveKeyWithValue("resources", ContainElement("secrets"))))
		binding := find(objs, "RoleBinding", "org-operator-manager-rolebinding")
		Expect(binding.GetNamespace()).To(Equal(webhookNS))
		Expect(nested(binding, "roleRef", "name")).To(Equal("org-operator-manager-role"))
		Expect(kinds(objs)).NotTo(HaveKey("Certificate"))
	})

	It("sets the failure policy and timeout of every webhook from values", func() {
		objs := templateIn(webhookNS, "--set", "webhook.failurePolicy=Ignore", "--set", "webhook.timeoutSeconds=2", "--set", "webhook.port=10250")
		for _, cfg := range []*unstructured.Unstructured{find(objs, "MutatingWebhookConfiguration", mutatingWebhooks), find(objs, "ValidatingWebhookConfiguration", validatingWebhooks)} {
			for _, w := range webhooksOf(cfg) {
				Expect(w).To(And(HaveKeyWithValue("failurePolicy", "Ignore"), HaveKeyWithValue("timeoutSeconds", BeNumerically("==", 2))))
			}
		}
		c := container(find(objs, "Deployment", "org-operator-controller-manager"))
		Expect(c["args"]).To(ContainElement("--webhook-port=10250"))
		Expect(c["ports"]).To(ContainElement(And(HaveKeyWithValue("name", "webhook"), HaveKeyWithValue("containerPort", BeNumerically("==", 10250)))))
	})

	It("with cert-manager: an Issuer and a Certificate for the Service, CA injection, the Secret mounted, --webhook-certs=external", func() {
		objs := templateIn(webhookNS, "--set", "webhook.certificates=certManager", "--api-versions", "cert-manager.io/v1")
		issuer := find(objs, "Issuer", "org-operator-selfsigned-issuer")
		Expect(issuer).NotTo(BeNil())
		Expect(issuer.GetAPIVersion()).To(Equal("cert-manager.io/v1"))
		Expect(issuer.GetNamespace()).To(Equal(webhookNS))
		Expect(nested(issuer, "spec", "selfSigned")).NotTo(BeNil())
		cert := find(objs, "Certificate", "org-operator-serving-cert")
		Expect(cert).NotTo(BeNil())
		Expect(cert.GetNamespace()).To(Equal(webhookNS))
		Expect(nested(cert, "spec", "dnsNames")).To(ConsistOf(webhookService+"."+webhookNS+".svc", webhookService+"."+webhookNS+".svc.cluster.local"))
		Expect(nested(cert, "spec", "issuerRef")).To(And(HaveKeyWithValue("kind", "Issuer"), HaveKeyWithValue("name", "org-operator-selfsigned-issuer")))
		Expect(nested(cert, "spec", "secretName")).To(Equal("org-operator-webhook-server-cert"))

		for _, cfg := range []*unstructured.Unstructured{find(objs, "MutatingWebhookConfiguration", mutatingWebhooks), find(objs, "ValidatingWebhookConfiguration", validatingWebhooks)} {
			Expect(cfg).NotTo(BeNil())
			Expect(cfg.GetAnnotations()).To(HaveKeyWithValue("cert-manager.io/inject-ca-from", webhookNS+"/org-operator-serving-cert"))
			for _, w := range webhooksOf(cfg) {
				Expect(w["clientConfig"]).To(HaveKeyWithValue("service", HaveKeyWithValue("namespace", webhookNS)))
			}
		}
		d := find(objs, "Deployment", "org-operator-controller-manager")
		Expect(container(d)["args"]).To(ContainElements("--webhook-certs=external", "--webhook-cert-dir=/tmp/k8s-webhook-server/serving-certs"))
		Expect(container(d)["volumeMounts"]).To(ContainElement(And(HaveKeyWithValue("name", "webhook-certs"),
			HaveKeyWithValue("mountPath", "/tmp/k8s-webhook-server/serving-certs"))))
		Expect(volume(d, "webhook-certs")).To(HaveKeyWithValue("secret", HaveKeyWithValue("secretName", "org-operator-webhook-server-cert")))
		Expect(kinds(objs)).NotTo(HaveKey("Secret"), "cert-manager creates its Secret")
	})
})

func without(list []any, drop any) []any {
	var out []any
	for _, v := range list {
		if v != drop {
			out = append(out, v)
		}
	}
	return out
}

// expectSelfManagedCertificates checks what the operator did with --webhook-certs=self-managed in
// namespace ns: the Secret org-operator-webhook-certs holds a serving certificate for the webhook
// Service, both configurations carry a CA that verifies it, in every webhook. Like the kubelet
// with the chart's webhook-certs volume, it projects the Secret into certDir, where the manager
// reads tls.crt and tls.key, and returns the CA pool of the caBundles.
func expectSelfManagedCertificates(c *cluster, ns, certDir string) *x509.CertPool {
	GinkgoHelper()
	By("the operator fills the Secret org-operator-webhook-certs with the chart's namespaced Role")
	var secret *unstructured.Unstructured
	Eventually(func(g Gomega) {
		secret = c.get("secret", ns, "org-operator-webhook-certs")
		g.Expect(secret).NotTo(BeNil())
		g.Expect(nested(secret, "data", "tls.crt")).NotTo(BeEmpty())
		g.Expect(nested(secret, "data", "tls.key")).NotTo(BeEmpty())
	}).Should(Succeed(), "no certificate in the Secret: the operator could not write it in %s", ns)

	By("the Secret is projected into the cert dir, as the kubelet does with the pod's secret volume")
	for _, key := range []string{"tls.crt", "tls.key", "ca.crt"} {
		b, err := base64.StdEncoding.DecodeString(nested(secret, "data", key).(string))
		Expect(err).NotTo(HaveOccurred())
		Expect(os.WriteFile(filepath.Join(certDir, key), b, 0o600)).To(Succeed())
	}
	b, err := os.ReadFile(filepath.Join(certDir, "tls.crt"))
	Expect(err).NotTo(HaveOccurred())
	block, _ := pem.Decode(b)
	Expect(block).NotTo(BeNil())
	serving, err := x509.ParseCertificate(block.Bytes)
	Expect(err).NotTo(HaveOccurred())

	By("both webhook configurations get a caBundle that verifies the serving certificate for the Service's DNS name")
	dns := webhookService + "." + ns + ".svc"
	pool := x509.NewCertPool()
	Eventually(func(g Gomega) {
		for kind, name := range map[string]string{"mutatingwebhookconfiguration": mutatingWebhooks, "validatingwebhookconfiguration": validatingWebhooks} {
			cfg := c.get(kind, "", name)
			g.Expect(cfg).NotTo(BeNil())
			hooks, _, _ := unstructured.NestedSlice(cfg.Object, "webhooks")
			g.Expect(hooks).NotTo(BeEmpty())
			for _, h := range hooks {
				bundle, _, _ := unstructured.NestedString(h.(map[string]any), "clientConfig", "caBundle")
				g.Expect(bundle).NotTo(BeEmpty(), "%s: no caBundle in %s", name, h.(map[string]any)["name"])
				pemBundle, err := base64.StdEncoding.DecodeString(bundle)
				g.Expect(err).NotTo(HaveOccurred())
				roots := x509.NewCertPool()
				g.Expect(roots.AppendCertsFromPEM(pemBundle)).To(BeTrue(), "%s: the caBundle holds no PEM certificate", name)
				_, err = serving.Verify(x509.VerifyOptions{DNSName: dns, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
				g.Expect(err).NotTo(HaveOccurred(), "%s: the caBundle does not verify the serving certificate for %s", name, dns)
				pool.AppendCertsFromPEM(pemBundle)
			}
		}
	}).Should(Succeed())
	return pool
}

// expectServes checks that the webhook server on addr serves a certificate that the CA of the
// webhook configurations verifies for the Service's DNS name in namespace ns.
func expectServes(addr, ns string, roots *x509.CertPool) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		conn, err := tls.DialWithDialer(&net.Dialer{}, "tcp", addr, &tls.Config{
			RootCAs: roots, ServerName: webhookService + "." + ns + ".svc", MinVersion: tls.VersionTLS12,
		})
		g.Expect(err).NotTo(HaveOccurred())
		_ = conn.Close()
	}).Should(Succeed(), "the webhook server does not serve the certificate of the Secret")
}
