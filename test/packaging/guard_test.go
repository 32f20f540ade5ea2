package packaging_test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/orgoperator/org-operator/internal/controlplane"
)

// operatorUser is the user of config/default's ServiceAccount, which config/rbac's guards match.
const operatorUser = "system:serviceaccount:org-operator-system:org-operator-controller-manager"

// Messages of config/rbac/operator_guard_policy.yaml, one per rule the specs below break.
const (
	guardClusterRole   = "org-operator may write only ClusterRoles named org-operator:organization:<organization>"
	guardRoleLabels    = "org-operator may label its ClusterRoles only with"
	guardBinding       = "org-operator may write only ClusterRoleBindings named org-operator:organization:<organization>"
	guardRoleBinding   = "org-operator may write RoleBindings only in namespaces labelled tenancy.orgoperator.io/organization"
	guardRBACDelete    = "org-operator may delete only its own RBAC objects"
	guardNamespace     = "org-operator may create only home namespaces"
	guardNamespaceEdit = "org-operator may update only organization namespaces"
	guardNamespaceMove = "org-operator may not move a namespace into, out of or between organizations"
	guardNamespaceGone = "org-operator may delete only organization namespaces"
	guardQuota         = "org-operator may write only its own ResourceQuotas"
	guardWebhook       = "org-operator may change only the CA bundle"
	guardSecret        = "org-operator may create and delete only invitation Secrets"
	guardSecretContent = "org-operator may create only Opaque invitation Secrets holding one key, token"
	guardMember        = "the operator creates only, in a home namespace, the members of redeemed invitations"
	guardReport        = "the operator writes usage reports only in a home namespace, for its organization"
)

// guardNames are the policies this file tries, of config/rbac/operator_guard_policy.yaml, each
// bound by the binding of the same name, without the prefix org-operator-. The file may hold more.
var guardNames = []string{"guard-rbac", "guard-namespaces", "guard-quotas", "guard-webhooks", "guard-secrets"}

// guards are the policies and bindings of a rendering named <prefix>guard-*, the guards of
// operator_guard_policy.yaml, by kind/name.
func guards(objs []*unstructured.Unstructured, prefix string) map[string]*unstructured.Unstructured {
	out := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		if (o.GetKind() == "ValidatingAdmissionPolicy" || o.GetKind() == "ValidatingAdmissionPolicyBinding") &&
			strings.HasPrefix(o.GetName(), prefix+"guard-") {
			out[o.GetKind()+"/"+o.GetName()] = o
		}
	}
	return out
}

// startGuardCluster is startCluster with kube-controller-manager's controller of the policies'
// status (type checking) too.
func startGuardCluster() *cluster {
	GinkgoHelper()
	cp, err := controlplane.Start(controlplane.Options{ControllerManager: true,
		Controllers: append(slices.Clone(controlplane.DefaultControllers), "validatingadmissionpolicy-status-controller")})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { Expect(cp.Stop()).To(Succeed()) })
	kubeconfig := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	b, err := cp.AdminKubeconfig()
	Expect(err).NotTo(HaveOccurred())
	Expect(os.WriteFile(kubeconfig, b, 0o600)).To(Succeed())
	return &cluster{cp: cp, kubeconfig: kubeconfig, env: []string{"KUBECONFIG=" + kubeconfig}}
}

var _ = Describe("Guards on the operator's own writes", func() {
	It("the chart renders the policies of config/rbac, matching its own ServiceAccount", func() {
		_, objs := kustomize("config/rbac")
		want := guards(objs, "org-operator-")
		for _, name := range guardNames {
			Expect(want).To(HaveKey("ValidatingAdmissionPolicy/org-operator-" + name))
			Expect(want).To(HaveKey("ValidatingAdmissionPolicyBinding/org-operator-" + name))
		}
		for _, key := range slices.Sorted(maps.Keys(want)) {
			if strings.HasPrefix(key, "ValidatingAdmissionPolicyBinding/") {
				Expect(nested(want[key], "spec", "policyName")).To(Equal(want[key].GetName()))
				Expect(nested(want[key], "spec", "validationActions")).To(ConsistOf("Deny"))
			}
		}

		By("with the default release: the same objects")
		got := guards(template(), "org-operator-")
		Expect(got).To(HaveLen(len(want)))
		for key, w := range want {
			Expect(got).To(HaveKey(key))
			Expect(reflect.DeepEqual(got[key].Object["spec"], w.Object["spec"])).To(BeTrue(),
				"the chart's %s differs from config/rbac: run make chart-sync", key)
		}

		By("with another release, namespace and ServiceAccount: the same rules for that ServiceAccount")
		other := guards(parseManifests(helmOffline("template", "tenants", chart, "-n", "tenants-system",
			"--set", "serviceAccount.name=tenancy").mustRun()), "tenants-org-operator-")
		Expect(other).To(HaveLen(len(want)))
		for key, w := range want {
			kind, name, _ := strings.Cut(key, "/")
			g := other[kind+"/tenants-org-operator-"+strings.TrimPrefix(name, "org-operator-")]
			Expect(g).NotTo(BeNil(), key)
			wantSpec := w.DeepCopy().Object["spec"].(map[string]any)
			if kind == "ValidatingAdmissionPolicy" {
				conds := wantSpec["matchConditions"].([]any)
				Expect(conds).NotTo(BeEmpty())
				for _, c := range conds {
					c := c.(map[string]any)
					c["expression"] = strings.ReplaceAll(c["expression"].(string), operatorUser,
						"system:serviceaccount:tenants-system:tenancy")
				}
			} else {
				wantSpec["policyName"] = "tenants-org-operator-" + strings.TrimPrefix(wantSpec["policyName"].(string), "org-operator-")
			}
			Expect(g.Object["spec"]).To(Equal(wantSpec), key)
		}
	})

	Describe("on a control plane", Ordered, func() {
		var (
			c *cluster
			// uids of the organizations acme and globex, for owner references.
			uids = map[string]string{}
		)
		as := func(args ...string) command { return c.kubectl(append([]string{"--as", operatorUser}, args...)...) }
		// denied runs a command as the operator and expects the API server to refuse it with message.
		// forbidden is in every refusal, RBAC's own escalation check's and the guards'.
		const forbidden = "is forbidden"
		denied := func(message string, cmd command) {
			GinkgoHelper()
			_, stderr, err := cmd.run()
			Expect(err).To(HaveOccurred(), "the operator was allowed: %s", strings.Join(cmd.args, " "))
			Expect(stderr).To(ContainSubstring(message))
		}
		allowed := func(cmd command) { GinkgoHelper(); cmd.mustRun() }
		create := func(manifest string) command { return as("create", "-f", "-").withStdin(manifest) }
		owner := func(org string) string {
			return fmt.Sprintf(`[{apiVersion: tenancy.orgoperator.io/v1alpha1, kind: Organization, name: %s, uid: %s, controller: true, blockOwnerDeletion: true}]`, org, uids[org])
		}

		BeforeAll(func() {
			c = startGuardCluster()
			c.kubectl("create", "namespace", "org-operator-system").mustRun()
			for _, dir := range []string{"config/crd", "config/rbac"} {
				manifest, _ := kustomize(dir)
				c.kubectl("apply", "--server-side", "--field-manager=guard-test", "-f", "-").withStdin(manifest).mustRun()
			}
			c.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/organizations.tenancy.orgoperator.io").mustRun()
			for _, org := range []string{"acme", "globex"} {
				c.kubectl("create", "-f", "-").withStdin(fmt.Sprintf(`{"apiVersion": "tenancy.orgoperator.io/v1alpha1", "kind": "Organization",
					"metadata": {"name": %q}, "spec": {"displayName": %q, "contactEmail": "it@%s.example"}}`, org, org, org)).mustRun()
				uids[org] = string(c.get("organization", "", org).GetUID())
			}
			// What a platform admin made: a namespace joined to acme by label, one of no organization,
			// one named like acme that acme does not own,
			// a role of rules the operator holds, and a webhook configuration under the name the operator may update (it matches nothing).
			c.kubectl("create", "-f", "-").withStdin(`
apiVersion: v1
kind: Namespace
metadata: {name: acme-staging, labels: {tenancy.orgoperator.io/organization: acme}}
---
apiVersion: v1
kind: Namespace
metadata: {name: plain}
---
apiVersion: v1
kind: Namespace
metadata: {name: acme}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: platform-namespace-reader}
rules: [{apiGroups: [""], resources: [namespaces], verbs: [get]}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: org-operator-validating-webhook-configuration}
webhooks:
- name: vnamespace.tenancy.orgoperator.io
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Ignore
  clientConfig: {service: {name: org-operator-webhook-service, namespace: org-operator-system, path: /validate}}
  rules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}]
  objectSelector: {matchLabels: {never: matches}}
`).mustRun()

			By("waiting for the API server to load the policies")
			Eventually(func() string {
				_, stderr, _ := as("create", "resourcequota", "probe", "-n", "default", "--hard=pods=1", "--dry-run=server").run()
				return stderr
			}).Should(ContainSubstring(guardQuota))
		})

		It("type-checks every expression of the policies of config/rbac", func() {
			_, objs := kustomize("config/rbac")
			for _, o := range objs {
				if o.GetKind() != "ValidatingAdmissionPolicy" {
					continue
				}
				name := o.GetName()
				Eventually(func(g Gomega) {
					p := c.get("validatingadmissionpolicy", "", name)
					g.Expect(nested(p, "status", "observedGeneration")).To(Equal(nested(p, "metadata", "generation")))
					g.Expect(nested(p, "status", "typeChecking")).NotTo(BeNil())
					g.Expect(nested(p, "status", "typeChecking", "expressionWarnings")).To(BeNil())
				}).Should(Succeed(), name)
			}
		})

		It("does not let the operator bind itself, or anyone, to another role", func() {
			denied(guardBinding, as("create", "clusterrolebinding", "x", "--clusterrole=admin",
				"--serviceaccount=org-operator-system:org-operator-controller-manager"))
			// RBAC's own escalation check refuses cluster-admin before admission: the operator holds
			// neither its rules nor bind on it.
			denied(forbidden, as("create", "clusterrolebinding", "x", "--clusterrole=cluster-admin",
				"--serviceaccount=org-operator-system:org-operator-controller-manager"))
			denied(guardBinding, create(`
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "org-operator:organization:acme"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: admin}
subjects: [{kind: User, apiGroup: rbac.authorization.k8s.io, name: alice@acme.example}]`))

			By("nor grant itself Secrets through a RoleBinding")
			canI, _, _ := as("auth", "can-i", "get", "secrets", "-n", "kube-system").run()
			Expect(canI).To(Equal("no\n"))
			denied(forbidden, as("get", "secrets", "-n", "kube-system"))
			denied(forbidden, as("get", "secrets", "-A"))
			denied(guardRoleBinding, as("create", "rolebinding", "x", "-n", "kube-system", "--clusterrole=admin", "--user=alice@acme.example"))
			denied(guardRoleBinding, as("create", "rolebinding", "x", "-n", "acme-staging", "--clusterrole=admin",
				"--serviceaccount=org-operator-system:org-operator-controller-manager"))
			denied(guardRoleBinding, as("create", "rolebinding", "x", "-n", "acme-staging", "--clusterrole=admin", "--user="+operatorUser))
			denied(guardRoleBinding, as("create", "rolebinding", "x", "-n", "acme-staging", "--clusterrole=admin", "--group=system:serviceaccounts"))
			denied(guardRoleBinding, as("create", "rolebinding", "x", "-n", "acme-staging", "--clusterrole=org-operator-organization-admin",
				"--user=alice@acme.example"), // not a home namespace
			)
			denied(guardRBACDelete, as("delete", "rolebinding", "-n", "kube-system", "system:controller:bootstrap-signer"))
			denied(guardRBACDelete, as("delete", "clusterrolebinding", "system:basic-user"))
		})

		It("does not let the operator write other roles or widen its reader roles", func() {
			addRule := `[{"op": "add", "path": "/rules/-", "value": {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "delete"]}}]`
			// RBAC's escalation check lets the operator write a role only of rules it holds, which
			// org-operator-organization-admin's are not (it holds no create on members): that check
			// refuses first. The guard refuses a role the operator could otherwise write.
			denied(forbidden, as("patch", "clusterrole", "org-operator-organization-admin", "--type=json", "-p", addRule))
			denied(guardClusterRole, as("patch", "clusterrole", "platform-namespace-reader", "--type=json", "-p", addRule))
			// Wildcards, which the operator does not hold either.
			denied(forbidden, as("create", "clusterrole", "wild", "--verb=*", "--resource=*.*"))
			denied(forbidden, as("create", "clusterrole", "org-operator:organization:acme", "--verb=*", "--resource=*.*"))
			denied(guardClusterRole, as("create", "clusterrole", "wide", "--verb=get,list,watch,delete", "--resource=namespaces"))
			denied(guardClusterRole, as("create", "clusterrole", "org-operator:organization:acme", "--verb=get", "--resource=pods"))
			denied(guardClusterRole, as("create", "clusterrole", "org-operator:organization:acme", "--verb=get,watch",
				"--resource=organizations.tenancy.orgoperator.io", "--resource-name=globex"))
			denied(guardClusterRole, as("create", "clusterrole", "readers", "--verb=get,watch",
				"--resource=organizations.tenancy.orgoperator.io", "--resource-name=readers"))
			denied(guardRoleLabels, create(`
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "org-operator:organization:acme", labels: {rbac.authorization.k8s.io/aggregate-to-admin: "true"}}
rules: [{apiGroups: [tenancy.orgoperator.io], resources: [organizations], resourceNames: [acme], verbs: [get, watch]}]`))
			denied(forbidden, create(`
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "org-operator:organization:acme"}
aggregationRule: {clusterRoleSelectors: [{matchLabels: {rbac.authorization.k8s.io/aggregate-to-admin: "true"}}]}`))
			denied(forbidden, as("delete", "clusterrole", "view")) // no delete on ClusterRoles at all
		})

		It("does not let the operator move, create or delete namespaces outside organizations", func() {
			denied(forbidden, as("label", "namespace", "kube-system", "tenancy.orgoperator.io/organization=acme"))
			denied(guardNamespaceEdit, as("label", "namespace", "plain", "tenancy.orgoperator.io/organization=acme"))
			denied(guardNamespaceMove, as("label", "namespace", "acme-staging", "--overwrite", "tenancy.orgoperator.io/organization=globex"))
			denied(guardNamespaceMove, as("label", "namespace", "acme-staging", "tenancy.orgoperator.io/organization-"))
			denied(guardNamespaceMove, as("label", "namespace", "acme-staging", "tenancy.orgoperator.io/home=true"))
			denied(guardNamespaceEdit, as("label", "namespace", "acme-staging", "pod-security.kubernetes.io/enforce=privileged"))
			denied(guardNamespaceEdit, as("annotate", "namespace", "acme-staging", "scheduler.alpha.kubernetes.io/node-selector=pool=a"))
			denied(guardNamespaceGone, as("delete", "namespace", "plain", "--wait=false"))
			// A namespace named like an organization that does not own it (NameCollision) stays foreign.
			denied(guardNamespaceEdit, as("label", "namespace", "acme", "tenancy.orgoperator.io/organization=acme", "tenancy.orgoperator.io/home=true"))
			denied(guardNamespaceGone, as("delete", "namespace", "acme", "--wait=false"))
			denied(forbidden, as("delete", "namespace", "kube-public", "--wait=false"))

			denied(guardNamespace, as("create", "namespace", "evil"))
			denied(guardNamespace, create(fmt.Sprintf(`
apiVersion: v1
kind: Namespace
metadata: {name: globex, labels: {tenancy.orgoperator.io/organization: globex, tenancy.orgoperator.io/home: "true", pod-security.kubernetes.io/enforce: privileged}, ownerReferences: %s}`, owner("globex"))))
			denied(guardNamespace, create(`
apiVersion: v1
kind: Namespace
metadata: {name: globex, labels: {tenancy.orgoperator.io/organization: globex, tenancy.orgoperator.io/home: "true"}}`))
			denied(guardNamespace, create(fmt.Sprintf(`
apiVersion: v1
kind: Namespace
metadata: {name: globex, labels: {tenancy.orgoperator.io/organization: acme, tenancy.orgoperator.io/home: "true"}, ownerReferences: %s}`, owner("acme"))))
			// A project's namespace: owned by the organization its label names, never a home, nothing else.
			for _, meta := range []string{
				fmt.Sprintf(`{name: acme-web, labels: {tenancy.orgoperator.io/organization: acme, tenancy.orgoperator.io/project: web}, ownerReferences: %s}`, owner("globex")),
				fmt.Sprintf(`{name: acme-web, labels: {tenancy.orgoperator.io/organization: acme}, ownerReferences: %s}`, owner("acme")),
				fmt.Sprintf(`{name: acme-web, labels: {tenancy.orgoperator.io/organization: acme, tenancy.orgoperator.io/project: ""}, ownerReferences: %s}`, owner("acme")),
				fmt.Sprintf(`{name: acme, labels: {tenancy.orgoperator.io/organization: acme, tenancy.orgoperator.io/home: "true", tenancy.orgoperator.io/project: web}, ownerReferences: %s}`, owner("acme")),
				fmt.Sprintf(`{name: acme-web, labels: {tenancy.orgoperator.io/organization: acme, tenancy.orgoperator.io/project: web, pod-security.kubernetes.io/enforce: privileged}, ownerReferences: %s}`, owner("acme")),
				`{name: acme-web, labels: {tenancy.orgoperator.io/organization: acme, tenancy.orgoperator.io/project: web}}`,
			} {
				denied(guardNamespace, create("apiVersion: v1\nkind: Namespace\nmetadata: "+meta))
			}
		})

		It("does not let the operator write quotas outside organizations, or other quotas", func() {
			denied(guardQuota, as("create", "resourcequota", "org-operator-namespace", "-n", "default", "--hard=pods=0"))
			denied(guardQuota, as("create", "resourcequota", "other", "-n", "acme-staging", "--hard=pods=0"))
			denied(guardQuota, create(`
apiVersion: v1
kind: LimitRange
metadata: {name: org-operator-defaults, namespace: kube-system}
spec: {limits: [{type: Container, default: {cpu: "1"}}]}`))
		})

		It("does not let the operator widen its webhooks: it may only write their CA bundle", func() {
			// The certificate rotator updates the whole object (RBAC allows update, not patch): so does this.
			update := func(change func(webhook map[string]any) []any) command {
				cfg := c.get("validatingwebhookconfiguration", "", "org-operator-validating-webhook-configuration")
				webhooks := nested(cfg, "webhooks").([]any)
				cfg.Object["webhooks"] = change(webhooks[0].(map[string]any))
				b, err := cfg.MarshalJSON()
				Expect(err).NotTo(HaveOccurred())
				return as("replace", "-f", "-").withStdin(string(b))
			}
			denied(guardWebhook, update(func(w map[string]any) []any {
				w["rules"].([]any)[0].(map[string]any)["resources"] = []any{"secrets"}
				return []any{w}
			}))
			denied(guardWebhook, update(func(w map[string]any) []any {
				w["objectSelector"] = map[string]any{}
				return []any{w}
			}))
			denied(guardWebhook, update(func(w map[string]any) []any {
				w["clientConfig"] = map[string]any{"url": "https://attacker.example/"}
				return []any{w}
			}))
			denied(guardWebhook, update(func(w map[string]any) []any {
				secrets := map[string]any{"name": "secrets.example.com", "admissionReviewVersions": []any{"v1"}, "sideEffects": "None",
					"clientConfig": map[string]any{"url": "https://attacker.example/"},
					"rules":        []any{map[string]any{"apiGroups": []any{""}, "apiVersions": []any{"v1"}, "operations": []any{"CREATE", "UPDATE"}, "resources": []any{"secrets"}}}}
				return []any{w, secrets}
			}))
			denied(forbidden, as("delete", "validatingwebhookconfiguration", "org-operator-validating-webhook-configuration")) // RBAC: no delete
			allowed(update(func(w map[string]any) []any {
				w["clientConfig"].(map[string]any)["caBundle"] = "Zm9v"
				return []any{w}
			}))
			Expect(nested(c.get("validatingwebhookconfiguration", "", "org-operator-validating-webhook-configuration"), "webhooks")).To(
				ConsistOf(HaveKeyWithValue("clientConfig", HaveKeyWithValue("caBundle", "Zm9v"))))
		})

		It("lets the operator create and delete only invitation token Secrets in home namespaces, and read none", func() {
			c.kubectl("create", "-f", "-").withStdin(`
apiVersion: v1
kind: Namespace
metadata: {name: initech, labels: {tenancy.orgoperator.io/organization: initech, tenancy.orgoperator.io/home: "true"}}
---
apiVersion: tenancy.orgoperator.io/v1alpha1
kind: OrganizationInvitation
metadata: {name: bob, namespace: initech}
spec: {email: bob@initech.example}
---
apiVersion: v1
kind: Secret
metadata: {name: tenant-own, namespace: initech}
stringData: {password: hunter2}
`).mustRun()
			uid := string(c.get("organizationinvitation", "initech", "bob").GetUID())
			invOwner := fmt.Sprintf(`[{apiVersion: tenancy.orgoperator.io/v1alpha1, kind: OrganizationInvitation, name: bob, uid: %s, controller: true, blockOwnerDeletion: true}]`, uid)
			secret := func(ns, labels, owners, rest string) string {
				return fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {generateName: bob-invitation-, namespace: %s, labels: %s, ownerReferences: %s}\n%s", ns, labels, owners, rest)
			}
			const label = `{tenancy.orgoperator.io/invitation: bob, app.kubernetes.io/managed-by: org-operator}`
			const token = "data: {token: dG9rZW4=}"

			By("reading no Secret, the home namespace's included")
			canI, _, _ := as("auth", "can-i", "get", "secrets", "-n", "initech").run()
			Expect(canI).To(Equal("no\n"))
			denied(forbidden, as("get", "secret", "tenant-own", "-n", "initech"))
			denied(forbidden, as("get", "secrets", "-n", "initech"))
			denied(forbidden, as("patch", "secret", "tenant-own", "-n", "initech", "--type=merge", "-p", `{"stringData": {"password": "x"}}`))

			By("writing no Secret but an invitation's token in a home namespace")
			denied(guardSecret, create(secret("plain", label, invOwner, token)))
			denied(guardSecret, create(secret("acme-staging", label, invOwner, token))) // an organization namespace, not a home
			denied(guardSecret, create(secret("kube-system", label, invOwner, token)))
			denied(guardSecret, create(secret("initech", `{app.kubernetes.io/managed-by: org-operator}`, invOwner, token)))
			denied(guardSecret, create(secret("initech", label, "[]", token)))
			denied(guardSecret, create(secret("initech", label, owner("acme"), token)))
			denied(guardSecretContent, create(secret("initech", label, invOwner, "data: {token: dG9rZW4=, other: eA==}")))
			denied(guardSecretContent, create(secret("initech", `{tenancy.orgoperator.io/invitation: bob, app: x}`, invOwner, token)))
			denied(guardSecretContent, create(secret("initech", label, invOwner, "type: example.com/other\n"+token)))
			denied(guardSecret, as("delete", "secret", "tenant-own", "-n", "initech"))
			Expect(c.get("secret", "initech", "tenant-own")).NotTo(BeNil())

			By("and writing that one, and deleting it, as the invitation controller does")
			out := as("create", "-o", "name", "-f", "-").withStdin(secret("initech", label, invOwner, "type: Opaque\n"+token)).mustRun()
			name := strings.TrimPrefix(strings.TrimSpace(out), "secret/")
			Expect(name).To(HavePrefix("bob-invitation-"))
			allowed(as("delete", "secret", name, "-n", "initech"))

			By("creating no member but the one of a redeemed invitation")
			member := func(labels, spec string) string {
				return fmt.Sprintf("apiVersion: tenancy.orgoperator.io/v1alpha1\nkind: OrganizationMember\nmetadata: {name: bob, namespace: initech, labels: %s}\nspec: %s", labels, spec)
			}
			denied(guardMember, create(member("{}", "{email: bob@initech.example, username: bob}")))
			denied(guardMember, create(member("{tenancy.orgoperator.io/invitation: other}", "{email: bob@initech.example, username: bob}")))
			denied(guardMember, create(member("{tenancy.orgoperator.io/invitation: bob}", "{email: bob@initech.example}")))
			allowed(create(member("{tenancy.orgoperator.io/invitation: bob}", "{email: bob@initech.example, username: bob, kubernetesRole: Edit}")))

			By("and the admin member of an organization's owner")
			ownerMember := func(name, spec string) string {
				return fmt.Sprintf("apiVersion: tenancy.orgoperator.io/v1alpha1\nkind: OrganizationMember\nmetadata: {name: %s, namespace: initech, "+
					"labels: {tenancy.orgoperator.io/organization: initech, app.kubernetes.io/managed-by: org-operator}}\nspec: %s", name, spec)
			}
			denied(guardMember, create(ownerMember("owner", "{email: owner@initech.example, kubernetesRole: Admin}")))
			denied(guardMember, create(ownerMember("owner", "{email: owner@initech.example, admin: true, kubernetesRole: Edit}")))
			denied(guardMember, create(ownerMember("boss", "{email: owner@initech.example, admin: true, kubernetesRole: Admin}")))
			denied(guardMember, create(ownerMember("owner", "{serviceAccount: {namespace: initech, name: ci}, admin: true, kubernetesRole: Admin}")))
			allowed(create(ownerMember("owner-0a1b2c3d", "{group: oidc:initech-admins, admin: true, kubernetesRole: Admin}")))
			denied("never their spec", as("patch", "organizationmember", "bob", "-n", "initech", "--type=merge", "-p", `{"spec": {"kubernetesRole": "Admin"}}`))
		})

		It("lets the operator write usage reports only in home namespaces, for their organization", func() {
			c.kubectl("create", "namespace", "umbrella").mustRun()
			c.kubectl("label", "namespace", "umbrella", "tenancy.orgoperator.io/organization=umbrella", "tenancy.orgoperator.io/home=true").mustRun()
			report := func(ns, name, org string) string {
				return fmt.Sprintf("apiVersion: tenancy.orgoperator.io/v1alpha1\nkind: OrganizationUsageReport\nmetadata: {name: %s, namespace: %s}\n"+
					"spec: {organization: %s, periodStart: '2026-11-20T00:00:00Z', periodEnd: '2026-12-20T00:00:00Z'}", name, ns, org)
			}
			denied(guardReport, create(report("kube-system", "umbrella-2026-11-20", "umbrella")))
			denied(guardReport, create(report("acme-staging", "acme-2026-11-20", "acme"))) // an organization namespace, not a home
			denied(guardReport, create(report("plain", "plain-2026-11-20", "plain")))
			denied(guardReport, create(report("umbrella", "umbrella-2026-11-20", "acme")))
			denied(guardReport, create(report("umbrella", "acme-2026-11-20", "umbrella")))
			denied(guardReport, create(report("umbrella", "umbrella-anything", "umbrella")))
			c.kubectl("create", "-f", "-").withStdin(report("plain", "kept", "plain")).mustRun()
			denied(guardReport, as("delete", "organizationusagereport", "kept", "-n", "plain"))
			Expect(c.get("organizationusagereport", "plain", "kept")).NotTo(BeNil())

			// Its status writes (a patch, which kubectl cannot make without a get the operator
			// lacks) are exercised by the controllers' suite, under these policies.
			By("and as the organization controller does: create, delete")
			allowed(create(report("umbrella", "umbrella-2026-11-20", "umbrella")))
			denied(forbidden, as("patch", "organizationusagereport", "umbrella-2026-11-20", "-n", "umbrella", "--type=merge",
				"-p", `{"spec": {"organization": "acme"}}`))
			allowed(as("delete", "organizationusagereport", "umbrella-2026-11-20", "-n", "umbrella"))
		})

		It("left everything as it was after the denials", func() {
			Expect(c.get("clusterrolebinding", "", "x")).To(BeNil())
			Expect(c.get("clusterrolebinding", "", "org-operator:organization:acme")).To(BeNil())
			Expect(c.get("clusterrole", "", "org-operator:organization:acme")).To(BeNil())
			Expect(c.get("clusterrole", "", "wild")).To(BeNil())
			Expect(c.get("clusterrole", "", "readers")).To(BeNil())
			Expect(c.get("clusterrole", "", "wide")).To(BeNil())
			Expect(c.get("clusterrole", "", "platform-namespace-reader").Object["rules"]).To(HaveLen(1))
			_, objs := kustomize("config/rbac")
			Expect(c.get("clusterrole", "", "org-operator-organization-admin").Object["rules"]).To(
				Equal(find(objs, "ClusterRole", "org-operator-organization-admin").Object["rules"]))
			Expect(c.get("rolebinding", "kube-system", "x")).To(BeNil())
			Expect(c.get("rolebinding", "acme-staging", "x")).To(BeNil())
			Expect(c.get("rolebinding", "kube-system", "system:controller:bootstrap-signer")).NotTo(BeNil())
			Expect(c.get("clusterrolebinding", "", "system:basic-user")).NotTo(BeNil())
			Expect(c.get("clusterrole", "", "view")).NotTo(BeNil())
			Expect(c.get("namespace", "", "kube-system").GetLabels()).NotTo(HaveKey("tenancy.orgoperator.io/organization"))
			staging := c.get("namespace", "", "acme-staging")
			Expect(staging.GetLabels()).To(HaveKeyWithValue("tenancy.orgoperator.io/organization", "acme"))
			Expect(staging.GetLabels()).NotTo(HaveKey("tenancy.orgoperator.io/home"))
			Expect(staging.GetLabels()).NotTo(HaveKey("pod-security.kubernetes.io/enforce"))
			Expect(staging.GetAnnotations()).NotTo(HaveKey("scheduler.alpha.kubernetes.io/node-selector"))
			Expect(c.get("namespace", "", "acme").GetLabels()).NotTo(HaveKey("tenancy.orgoperator.io/organization"))
			for _, ns := range []string{"plain", "acme", "kube-public"} {
				Expect(nested(c.get("namespace", "", ns), "metadata", "deletionTimestamp")).To(BeNil(), ns)
			}
			Expect(c.get("namespace", "", "evil")).To(BeNil())
			Expect(c.get("namespace", "", "globex")).To(BeNil())
			Expect(c.get("resourcequota", "default", "org-operator-namespace")).To(BeNil())
			Expect(c.get("resourcequota", "acme-staging", "other")).To(BeNil())
			Expect(c.get("limitrange", "kube-system", "org-operator-defaults")).To(BeNil())
			hooks := nested(c.get("validatingwebhookconfiguration", "", "org-operator-validating-webhook-configuration"), "webhooks").([]any)
			Expect(hooks).To(HaveLen(1))
			Expect(hooks[0]).To(And(
				HaveKeyWithValue("rules", ConsistOf(HaveKeyWithValue("resources", ConsistOf("configmaps")))),
				HaveKeyWithValue("objectSelector", HaveKey("matchLabels")),
				HaveKeyWithValue("clientConfig", HaveKeyWithValue("service", HaveKeyWithValue("name", "org-operator-webhook-service")))))
		})

		It("lets the operator make every write its controllers make", func() {
			By("the home namespace of an organization, and restoring its labels")
			allowed(create(fmt.Sprintf(`
apiVersion: v1
kind: Namespace
metadata:
  name: globex
  labels: {tenancy.orgoperator.io/organization: globex, tenancy.orgoperator.io/home: "true", app.kubernetes.io/managed-by: org-operator}
  ownerReferences: %s`, owner("globex"))))
			c.kubectl("label", "namespace", "globex", "tenancy.orgoperator.io/organization-", "tenancy.orgoperator.io/home-").mustRun()
			denied(guardNamespaceMove, as("label", "namespace", "globex", "tenancy.orgoperator.io/organization=acme"))
			allowed(as("patch", "namespace", "globex", "--type=merge", "-p",
				`{"metadata": {"labels": {"tenancy.orgoperator.io/organization": "globex", "tenancy.orgoperator.io/home": "true"}}}`))
			Expect(c.get("namespace", "", "globex").GetLabels()).To(HaveKeyWithValue("tenancy.orgoperator.io/home", "true"))
			denied(guardNamespaceMove, as("label", "namespace", "globex", "--overwrite", "tenancy.orgoperator.io/organization=acme"))

			By("a project's namespace, and its deletion")
			allowed(create(fmt.Sprintf(`
apiVersion: v1
kind: Namespace
metadata:
  name: globex-web
  labels: {tenancy.orgoperator.io/organization: globex, tenancy.orgoperator.io/project: web, app.kubernetes.io/managed-by: org-operator}
  ownerReferences: %s`, owner("globex"))))
			denied(guardNamespaceEdit, as("label", "namespace", "globex-web", "--overwrite", "tenancy.orgoperator.io/project=db"))
			allowed(as("delete", "namespace", "globex-web", "--wait=false"))

			By("the reader ClusterRole and its ClusterRoleBinding, patched and deleted as the organization controller does")
			labels := `{tenancy.orgoperator.io/organization: globex, app.kubernetes.io/managed-by: org-operator}`
			allowed(create(fmt.Sprintf(`
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "org-operator:organization:globex", labels: %s, ownerReferences: %s}
rules: [{apiGroups: [tenancy.orgoperator.io], resources: [organizations], resourceNames: [globex], verbs: [get, watch]}]`, labels, owner("globex"))))
			allowed(as("patch", "clusterrole", "org-operator:organization:globex", "--type=merge", "-p",
				`{"metadata": {"labels": {"tenancy.orgoperator.io/organization": "globex"}}, "rules": [{"apiGroups": ["tenancy.orgoperator.io"], "resources": ["organizations"], "resourceNames": ["globex"], "verbs": ["get", "watch"]}]}`))
			denied(guardClusterRole, as("patch", "clusterrole", "org-operator:organization:globex", "--type=json",
				"-p", `[{"op": "add", "path": "/rules/0/verbs/-", "value": "list"}]`))
			allowed(create(fmt.Sprintf(`
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "org-operator:organization:globex", labels: %s, ownerReferences: %s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "org-operator:organization:globex"}
subjects: [{kind: User, apiGroup: rbac.authorization.k8s.io, name: carol@globex.example}]`, labels, owner("globex"))))
			allowed(as("patch", "clusterrolebinding", "org-operator:organization:globex", "--type=merge", "-p",
				`{"subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "carol@globex.example"}, {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "dave"}]}`))
			for _, subject := range []string{
				`{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:authenticated"}`,
				`{"kind": "ServiceAccount", "name": "org-operator-controller-manager", "namespace": "org-operator-system"}`,
				`{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "` + operatorUser + `"}`,
				`{"kind": "ServiceAccount", "name": "deployer", "namespace": "org-operator-system"}`,
				`{"kind": "ServiceAccount", "name": "default", "namespace": "kube-system"}`,
				`{"kind": "ServiceAccount", "name": "default", "namespace": "kube-flannel"}`,
				`{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:masters"}`,
			} {
				denied(guardBinding, as("patch", "clusterrolebinding", "org-operator:organization:globex", "--type=json",
					"-p", `[{"op": "add", "path": "/subjects/-", "value": `+subject+`}]`))
			}
			By("group and service-account members, as an organization's reader binding lists them")
			allowed(as("patch", "clusterrolebinding", "org-operator:organization:globex", "--type=json", "-p",
				`[{"op": "add", "path": "/subjects/-", "value": {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "globex:developers"}},`+
					`{"op": "add", "path": "/subjects/-", "value": {"kind": "ServiceAccount", "name": "deployer", "namespace": "globex-ci"}}]`))
			allowed(as("delete", "clusterrolebinding", "org-operator:organization:globex"))

			By("members' shared RoleBindings in the organization's namespaces, patched, replaced and deleted as the organization controller does")
			binding := func(ns, name, role, user string) string {
				return fmt.Sprintf(`
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: %s
  namespace: %s
  labels: {tenancy.orgoperator.io/organization: globex, app.kubernetes.io/managed-by: org-operator}
  ownerReferences: %s
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: %s}
subjects: [{kind: User, apiGroup: rbac.authorization.k8s.io, name: %s}]`, name, ns, owner("globex"), role, user)
			}
			c.kubectl("label", "namespace", "plain", "tenancy.orgoperator.io/organization=globex").mustRun()
			Eventually(func() error {
				_, _, err := create(binding("plain", "org-operator:view", "view", "carol@globex.example")).run()
				return err
			}).Should(Succeed(), "the API server's namespace cache shows plain in globex soon")
			allowed(create(binding("globex", "org-operator:edit", "edit", "carol@globex.example")))
			allowed(create(binding("globex", "org-operator:organization-admin", "org-operator-organization-admin", "carol@globex.example")))
			allowed(as("patch", "rolebinding", "-n", "plain", "org-operator:view", "--type=merge", "-p",
				`{"subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "carol"}]}`))
			allowed(as("delete", "rolebinding", "-n", "globex", "org-operator:edit"))
			allowed(create(binding("globex", "org-operator:edit", "admin", "carol@globex.example")))
			// A tenant's own binding in an organization namespace is not the operator's to delete.
			c.kubectl("create", "rolebinding", "-n", "globex", "tenant-own", "--clusterrole=view", "--user=carol@globex.example").mustRun()
			c.kubectl("label", "rolebinding", "-n", "globex", "tenant-own", "tenancy.orgoperator.io/organization=globex").mustRun()
			denied(guardRBACDelete, as("delete", "rolebinding", "-n", "globex", "tenant-own"))
			// A namespace that left the organization: its bindings go.
			c.kubectl("label", "namespace", "plain", "tenancy.orgoperator.io/organization-").mustRun()
			allowed(as("delete", "rolebinding", "-n", "plain", "org-operator:view"))

			By("the quotas and container defaults of organization namespaces")
			allowed(as("create", "resourcequota", "org-operator-namespace", "-n", "globex", "--hard=pods=10"))
			allowed(as("create", "resourcequota", "org-operator-expired", "-n", "acme-staging", "--hard=pods=0"))
			allowed(as("patch", "resourcequota", "org-operator-namespace", "-n", "globex", "--type=merge", "-p", `{"spec": {"hard": {"pods": "20"}}}`))
			allowed(create(`
apiVersion: v1
kind: LimitRange
metadata: {name: org-operator-defaults, namespace: globex, labels: {tenancy.orgoperator.io/organization: globex}}
spec: {limits: [{type: Container, default: {cpu: "1"}, defaultRequest: {cpu: 100m}}]}`))
			allowed(as("delete", "resourcequota", "org-operator-expired", "-n", "acme-staging"))
			allowed(as("delete", "limitrange", "org-operator-defaults", "-n", "globex"))

			By("an organization's finalizer")
			allowed(as("patch", "organization", "globex", "--type=merge", "-p", `{"metadata": {"finalizers": ["tenancy.orgoperator.io/organization"]}}`))

			By("deleting the organization's namespaces: a labelled one (deletionPolicy Cascade) and the home namespace")
			allowed(as("delete", "namespace", "acme-staging", "--wait=false"))
			allowed(as("delete", "namespace", "globex", "--wait=false"))
		})
	})

	It("hold for the chart's ServiceAccount in another release namespace", func() {
		c := startCluster()
		user := "system:serviceaccount:tenants-system:tenancy"
		c.kubectl("create", "namespace", "tenants-system").mustRun()
		manifest := helmOffline("template", "tenants", chart, "-n", "tenants-system", "--set", "serviceAccount.name=tenancy",
			"--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac/manager.yaml",
			"--show-only", "templates/rbac/operator-guard.yaml").mustRun()
		c.kubectl("apply", "--server-side", "-f", "-").withStdin(manifest).mustRun()
		Eventually(func() string {
			_, stderr, _ := c.kubectl("--as", user, "create", "clusterrolebinding", "x", "--clusterrole=admin",
				"--serviceaccount=tenants-system:tenancy", "--dry-run=server").run()
			return stderr
		}).Should(ContainSubstring(guardBinding))
		_, stderr, err := c.kubectl("--as", user, "create", "clusterrolebinding", "x", "--clusterrole=admin",
			"--serviceaccount=tenants-system:tenancy").run()
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring(guardBinding))
		_, stderr, err = c.kubectl("--as", user, "create", "resourcequota", "q", "-n", "default", "--hard=pods=1").run()
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring(guardQuota))
		Expect(c.get("clusterrolebinding", "", "x")).To(BeNil())
		By("and let it write what its controllers write")
		c.kubectl("--as", user, "create", "-f", "-").withStdin(`
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "org-operator:organization:acme"}
rules: [{apiGroups: [tenancy.orgoperator.io], resources: [organizations], resourceNames: [acme], verbs: [get, watch]}]`).mustRun()
	})
})
