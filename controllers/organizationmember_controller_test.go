package controllers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

var _ = Describe("OrganizationMember controller", func() {
	var org string

	BeforeEach(func(ctx SpecContext) {
		org = uniqueName("members")
		Expect(k8s.Create(ctx, newOrganization(org, tenancyv1alpha1.DeletionPolicyCascade))).To(Succeed())
		expectOrgReady(ctx, org)
		Expect(k8s.Create(ctx, labelledNamespace(org+"-dev", org))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(getOrg(g, org).Status.Namespaces).To(HaveLen(2))
		}).Should(Succeed())
	})

	It("binds the member's role in every namespace and the organization-admin role at home", func(ctx SpecContext) {
		Expect(k8s.Create(ctx, newMember(org, "alice", "alice@example.com", true, tenancyv1alpha1.KubernetesRoleAdmin))).To(Succeed())
		m := expectMemberReady(ctx, org, "alice")
		Expect(m.Status.Organization).To(Equal(org))
		Expect(m.Status.BoundNamespaces).To(Equal([]string{org, org + "-dev"}))
		Expect(m.Status.JoinedAt).NotTo(BeNil())
		Expect(m.Finalizers).To(ContainElement(tenancyv1alpha1.MemberFinalizer))

		Eventually(func(g Gomega) map[string]string {
			return roleRefs(memberBindings(g, org, "alice"))
		}).Should(Equal(map[string]string{
			org + "/org-member-alice":     "admin",
			org + "-dev/org-member-alice": "admin",
			org + "/org-admin-alice":      "org-operator-organization-admin",
		}))
		Eventually(func(g Gomega) {
			for _, rb := range memberBindings(g, org, "alice") {
				g.Expect(rb.Subjects).To(Equal([]rbacv1.Subject{{Kind: "User", APIGroup: rbacv1.GroupName, Name: "alice@example.com"}}))
				g.Expect(rb.OwnerReferences).To(ContainElement(HaveField("Name", org)))
			}
		}).Should(Succeed())
	})

	It("binds the username when one is set", func(ctx SpecContext) {
		m := newMember(org, "carol", "carol@example.com", false, tenancyv1alpha1.KubernetesRoleEdit)
		m.Spec.Username = "carol"
		Expect(k8s.Create(ctx, m)).To(Succeed())
		expectMemberReady(ctx, org, "carol")
		Eventually(func(g Gomega) {
			bindings := memberBindings(g, org, "carol")
			g.Expect(bindings).To(HaveLen(2))
			for _, rb := range bindings {
				g.Expect(rb.Subjects[0].Name).To(Equal("carol"))
				g.Expect(rb.RoleRef.Name).To(Equal("edit"))
			}
		}).Should(Succeed())
	})

	It("follows role changes, demotion and kubernetesRole None", func(ctx SpecContext) {
		Expect(k8s.Create(ctx, newMember(org, "bob", "bob@example.com", true, tenancyv1alpha1.KubernetesRoleView))).To(Succeed())
		expectMemberReady(ctx, org, "bob")

		m := &tenancyv1alpha1.OrganizationMember{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: org, Name: "bob"}, m)).To(Succeed())
		m.Spec.KubernetesRole = tenancyv1alpha1.KubernetesRoleEdit
		m.Spec.Admin = false
		Expect(k8s.Update(ctx, m)).To(Succeed())
		Eventually(func(g Gomega) map[string]string {
			return roleRefs(memberBindings(g, org, "bob"))
		}).Should(Equal(map[string]string{org + "/org-member-bob": "edit", org + "-dev/org-member-bob": "edit"}))

		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: org, Name: "bob"}, m)).To(Succeed())
		m.Spec.KubernetesRole = tenancyv1alpha1.KubernetesRoleNone
		Expect(k8s.Update(ctx, m)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(memberBindings(g, org, "bob")).To(BeEmpty())
		}).Should(Succeed())
		m = expectMemberReady(ctx, org, "bob")
		Expect(m.Status.BoundNamespaces).To(BeEmpty())
	})

	It("binds new namespaces, unbinds departed ones and repairs tampered bindings", func(ctx SpecContext) {
		Expect(k8s.Create(ctx, newMember(org, "dave", "dave@example.com", false, tenancyv1alpha1.KubernetesRoleView))).To(Succeed())
		expectMemberReady(ctx, org, "dave")

		Expect(k8s.Create(ctx, labelledNamespace(org+"-prod", org))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(memberBindings(g, org, "dave")).To(HaveKey(org + "-prod/org-member-dave"))
			g.Expect(getMember(g, org, "dave").Status.BoundNamespaces).To(ContainElement(org + "-prod"))
		}).Should(Succeed())

		ns := &corev1.Namespace{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: org + "-dev"}, ns)).To(Succeed())
		patch := client.MergeFrom(ns.DeepCopy())
		delete(ns.Labels, tenancyv1alpha1.OrganizationLabel)
		Expect(k8s.Patch(ctx, ns, patch)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(memberBindings(g, org, "dave")).NotTo(HaveKey(org + "-dev/org-member-dave"))
		}).Should(Succeed())

		By("restoring a binding whose subject was changed")
		rb := &rbacv1.RoleBinding{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: org + "-prod", Name: "org-member-dave"}, rb)).To(Succeed())
		rb.Subjects[0].Name = "mallory@example.com"
		Expect(k8s.Update(ctx, rb)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: org + "-prod", Name: "org-member-dave"}, rb)).To(Succeed())
			g.Expect(rb.Subjects[0].Name).To(Equal("dave@example.com"))
		}).Should(Succeed())

		By("recreating a deleted binding")
		Expect(k8s.Delete(ctx, rb)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(memberBindings(g, org, "dave")).To(HaveKey(org + "-prod/org-member-dave"))
		}).Should(Succeed())
	})

	It("removes every binding when the member is deleted", func(ctx SpecContext) {
		Expect(k8s.Create(ctx, newMember(org, "erin", "erin@example.com", true, tenancyv1alpha1.KubernetesRoleAdmin))).To(Succeed())
		expectMemberReady(ctx, org, "erin")
		Eventually(func(g Gomega) { g.Expect(memberBindings(g, org, "erin")).To(HaveLen(3)) }).Should(Succeed())

		Expect(k8s.Delete(ctx, newMember(org, "erin", "", false, ""))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(memberBindings(g, org, "erin")).To(BeEmpty())
			err := k8s.Get(ctx, client.ObjectKey{Namespace: org, Name: "erin"}, &tenancyv1alpha1.OrganizationMember{})
			g.Expect(client.IgnoreNotFound(err)).To(Succeed())
			g.Expect(err).To(HaveOccurred())
		}).Should(Succeed())
	})

	It("reports a member outside any organization's home namespace", func(ctx SpecContext) {
		stray := uniqueName("stray")
		Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: stray}})).To(Succeed())
		Expect(k8s.Create(ctx, newMember(stray, "zed", "zed@example.com", false, ""))).To(Succeed())
		Eventually(func(g Gomega) {
			m := getMember(g, stray, "zed")
			ready := condition(m.Status.Conditions, tenancyv1alpha1.ReadyCondition)
			g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.Reason).To(Equal(tenancyv1alpha1.OrganizationNotFoundReason))
			g.Expect(condition(m.Status.Conditions, tenancyv1alpha1.StalledCondition).Status).To(Equal(metav1.ConditionTrue))
			g.Expect(m.Spec.KubernetesRole).To(Equal(tenancyv1alpha1.KubernetesRoleView), "defaulted by the CRD")
		}).Should(Succeed())
		Consistently(func(g Gomega) { g.Expect(memberBindings(g, stray, "zed")).To(BeEmpty()) }).Should(Succeed())
	})
})
