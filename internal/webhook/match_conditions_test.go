package webhook_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

const (
	validateMemberPath = "/validate-tenancy-orgoperator-io-v1alpha1-organizationmember"
	mutateMemberPath   = "/mutate-tenancy-orgoperator-io-v1alpha1-organizationmember"
	validateOrgPath    = "/validate-tenancy-orgoperator-io-v1alpha1-organization"
	mutateOrgPath      = "/mutate-tenancy-orgoperator-io-v1alpha1-organization"
	validateNsPath     = "/validate--v1-namespace"
)

// webhookCalls is how many requests the manager's webhook server has answered on each path.
func webhookCalls() map[string]float64 {
	GinkgoHelper()
	families, err := crmetrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	calls := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "controller_runtime_webhook_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "webhook" {
					calls[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return calls
}

// patchOrganization changes an organization with a merge patch, which the operator's status
// writes cannot make conflict.
func patchOrganization(ctx context.Context, name string, change func(*tenancyv1alpha1.Organization)) {
	GinkgoHelper()
	o := get(ctx, client.ObjectKey{Name: name}, &tenancyv1alpha1.Organization{})
	before := o.DeepCopy()
	change(o)
	Expect(admin.Patch(ctx, o, client.MergeFrom(before))).To(Succeed())
}

// The webhooks' matchConditions let the API server skip the requests the webhooks would let
// through without judging them (metadata alone, a member with its role set), so that the
// operator's finalizer writes and labels cost no webhook call. These specs check both sides:
// those requests reach no webhook, and every request the webhooks must judge still does.
var _ = Describe("Match conditions", Ordered, func() {
	const org = "skipco"

	BeforeAll(func(ctx SpecContext) {
		Expect(admin.Create(ctx, &tenancyv1alpha1.OrganizationPlan{
			ObjectMeta: metav1.ObjectMeta{Name: "skipco-plan"},
			Spec:       tenancyv1alpha1.OrganizationPlanSpec{DisplayName: "Skip Co's", Free: true},
		})).To(Succeed())
		Expect(admin.Create(ctx, organization(org, tenancyv1alpha1.DeletionPolicyCascade))).To(Succeed())
		Eventually(func() error { return admin.Get(ctx, client.ObjectKey{Name: org}, &corev1.Namespace{}) }).Should(Succeed())
		Expect(admin.Create(ctx, member(org, "sam", "sam@skipco.example", true, tenancyv1alpha1.KubernetesRoleAdmin))).To(Succeed())
		Expect(admin.Create(ctx, member(org, "sue", "sue@skipco.example", false, tenancyv1alpha1.KubernetesRoleView))).To(Succeed())
		waitForQuiet(ctx)
	})

	It("skips the webhooks for a change of a member's or an organization's metadata alone", func(ctx SpecContext) {
		before := webhookCalls()
		patchOrganization(ctx, org, func(o *tenancyv1alpha1.Organization) { o.Labels = map[string]string{"team": "blue"} })
		Expect(updateMember(platformAdmin, org, "sue", func(m *tenancyv1alpha1.OrganizationMember) {
			m.Labels = map[string]string{"team": "blue"}
		})(ctx)).To(Succeed())
		after := webhookCalls()
		for _, path := range []string{validateMemberPath, mutateMemberPath, validateOrgPath, mutateOrgPath} {
			Expect(after[path]).To(Equal(before[path]), path)
		}
	})

	It("still judges every change of a member's spec: the last admin still cannot step down", func(ctx SpecContext) {
		before := webhookCalls()
		err := updateMember("sam@skipco.example", org, "sam", func(m *tenancyv1alpha1.OrganizationMember) {
			m.Spec.Admin = false
		})(ctx)
		Expect(err).To(MatchError(ContainSubstring("last admin")))
		Expect(get(ctx, client.ObjectKey{Namespace: org, Name: "sam"}, &tenancyv1alpha1.OrganizationMember{}).Spec.Admin).To(BeTrue())
		Expect(updateMember(platformAdmin, org, "sue", func(m *tenancyv1alpha1.OrganizationMember) {
			m.Spec.KubernetesRole = tenancyv1alpha1.KubernetesRoleEdit
		})(ctx)).To(Succeed())
		after := webhookCalls()
		Expect(after[validateMemberPath]).To(BeNumerically(">=", before[validateMemberPath]+2))
	})

	It("still judges a change of an organization's spec", func(ctx SpecContext) {
		before := webhookCalls()
		patchOrganization(ctx, org, func(o *tenancyv1alpha1.Organization) { o.Spec.DisplayName = "Skip Co" })
		Expect(webhookCalls()[validateOrgPath]).To(BeNumerically(">", before[validateOrgPath]))
	})

	It("still defaults the start date of a subscription that leaves it out", func(ctx SpecContext) {
		before := webhookCalls()
		patchOrganization(ctx, org, func(o *tenancyv1alpha1.Organization) {
			o.Spec.Subscription = &tenancyv1alpha1.Subscription{Plan: "skipco-plan"}
		})
		Expect(webhookCalls()[mutateOrgPath]).To(BeNumerically(">", before[mutateOrgPath]))
		Expect(get(ctx, client.ObjectKey{Name: org}, &tenancyv1alpha1.Organization{}).Spec.Subscription.StartDate).NotTo(BeNil())
		waitForQuiet(ctx) // the other specs wait for every organization to be Ready
	})

	It("skips the namespace webhook unless an update changes a tenancy label, and still judges those", func(ctx SpecContext) {
		const sue, ns = "sue@skipco.example", "skipco-extra"
		// RBAC lets sue, who is no admin of skipco, edit namespaces: only the webhook stands between
		// her and taking one out of the organization.
		editor := &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "skipco-namespace-editor"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "patch"}}},
		}
		Expect(admin.Create(ctx, editor)).To(Succeed())
		Expect(admin.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: editor.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: editor.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: sue}},
		})).To(Succeed())
		Expect(admin.Create(ctx, namespace(ns, orgLabel(org)))).To(Succeed())

		before := webhookCalls()
		Expect(patchLabels(sue, ns, func(l map[string]string) { l["team"] = "blue" })(ctx)).To(Succeed())
		Expect(webhookCalls()[validateNsPath]).To(Equal(before[validateNsPath]))

		before = webhookCalls()
		err := patchLabels(sue, ns, func(l map[string]string) { delete(l, tenancyv1alpha1.OrganizationLabel) })(ctx)
		Expect(err).To(MatchError(ContainSubstring("is not an admin of organization skipco")))
		// The server counts a call once its answer is written: maybe just after the API server has it.
		Eventually(func() float64 { return webhookCalls()[validateNsPath] }).Should(BeNumerically(">", before[validateNsPath]))
		Expect(get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{}).Labels).To(HaveKeyWithValue(tenancyv1alpha1.OrganizationLabel, org))

		before = webhookCalls()
		err = patchLabels(sue, ns, func(l map[string]string) { l[tenancyv1alpha1.ProjectLabel] = "web" })(ctx)
		Expect(err).To(MatchError(ContainSubstring("only platform admins may set, change or remove the label")))
		Eventually(func() float64 { return webhookCalls()[validateNsPath] }).Should(BeNumerically(">", before[validateNsPath]))
		Expect(get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{}).Labels).NotTo(HaveKey(tenancyv1alpha1.ProjectLabel))
		waitForQuiet(ctx)
	})

	It("still defaults a member whose kubernetesRole is empty", func(ctx SpecContext) {
		before := webhookCalls()
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": tenancyv1alpha1.GroupVersion.String(),
			"kind":       "OrganizationMember",
			"metadata":   map[string]any{"namespace": org, "name": "sid"},
			"spec":       map[string]any{"email": "sid@skipco.example", "kubernetesRole": ""},
		}}
		Expect(admin.Create(ctx, u)).To(Succeed())
		Expect(webhookCalls()[mutateMemberPath]).To(BeNumerically(">", before[mutateMemberPath]))
		Expect(get(ctx, client.ObjectKey{Namespace: org, Name: "sid"}, &tenancyv1alpha1.OrganizationMember{}).Spec.KubernetesRole).
			To(Equal(tenancyv1alpha1.KubernetesRoleView))
		waitForQuiet(ctx)
	})
})
