package controllers_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/controllers"
)

// newProject is a project of org whose namespace is org-name, as the project webhook (not
// running in this suite) would default it.
func newProject(org, name string, roles ...tenancyv1alpha1.ProjectMember) *tenancyv1alpha1.OrganizationProject {
	return &tenancyv1alpha1.OrganizationProject{
		ObjectMeta: metav1.ObjectMeta{Namespace: org, Name: name},
		Spec:       tenancyv1alpha1.OrganizationProjectSpec{Namespace: org + "-" + name, Members: roles},
	}
}

func getProject(g Gomega, org, name string) *tenancyv1alpha1.OrganizationProject {
	p := &tenancyv1alpha1.OrganizationProject{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: org, Name: name}, p)).To(Succeed())
	return p
}

func expectProjectReady(ctx context.Context, org, name string) *tenancyv1alpha1.OrganizationProject {
	var p *tenancyv1alpha1.OrganizationProject
	Eventually(func(g Gomega) {
		p = getProject(g, org, name)
		g.Expect(p.Status.ObservedGeneration).To(Equal(p.Generation))
		g.Expect(condition(p.Status.Conditions, tenancyv1alpha1.ReadyCondition).Status).To(Equal(metav1.ConditionTrue),
			"Ready: %+v", condition(p.Status.Conditions, tenancyv1alpha1.ReadyCondition))
	}).WithContext(ctx).Should(Succeed())
	return p
}

func expectProjectStalled(ctx context.Context, org, name, reason, message string) {
	Eventually(func(g Gomega) {
		p := getProject(g, org, name)
		g.Expect(p.Status.ObservedGeneration).To(Equal(p.Generation))
		stalled := condition(p.Status.Conditions, tenancyv1alpha1.StalledCondition)
		g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(stalled.Reason).To(Equal(reason))
		g.Expect(stalled.Message).To(ContainSubstring(message))
		g.Expect(p.Status.Namespace).To(BeEmpty())
	}).WithContext(ctx).Should(Succeed())
}

var _ = Describe("Organization projects", func() {
	It("creates the project's namespace with the organization's quotas and bindings, and reports it", func(ctx SpecContext) {
		name := uniqueName("proj")
		org := newOrganization(name, tenancyv1alpha1.DeletionPolicyCascade)
		org.Spec.Quotas = &tenancyv1alpha1.Quotas{NamespaceQuota: resources("pods", "10")}
		Expect(k8s.Create(ctx, org)).To(Succeed())
		expectOrgReady(ctx, name)
		Expect(k8s.Create(ctx, newMember(name, "alice", "alice@example.com", true, tenancyv1alpha1.KubernetesRoleAdmin))).To(Succeed())
		Expect(k8s.Create(ctx, newMember(name, "bob", "bob@example.com", false, tenancyv1alpha1.KubernetesRoleView))).To(Succeed())
		expectMemberReady(ctx, name, "bob")

		Expect(k8s.Create(ctx, newProject(name, "web"))).To(Succeed())
		p := expectProjectReady(ctx, name, "web")
		web := name + "-web"
		Expect(p.Status.Organization).To(Equal(name))
		Expect(p.Status.Namespace).To(Equal(web))

		ns := &corev1.Namespace{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: web}, ns)).To(Succeed())
		Expect(ns.Labels).To(HaveKeyWithValue(tenancyv1alpha1.OrganizationLabel, name))
		Expect(ns.Labels).To(HaveKeyWithValue(tenancyv1alpha1.ProjectLabel, "web"))
		Expect(ns.Labels).NotTo(HaveKey(tenancyv1alpha1.HomeNamespaceLabel))
		Expect(metav1.GetControllerOf(ns)).To(HaveField("Name", name))
		Eventually(func(g Gomega) {
			g.Expect(quotaHard(g, web, controllers.NamespaceQuotaName)).To(HaveKeyWithValue(corev1.ResourcePods, resource.MustParse("10")))
			g.Expect(subjectBindings(g, name, "alice@example.com")).To(HaveKeyWithValue(web+"/org-operator:admin", "admin"))
			g.Expect(subjectBindings(g, name, "bob@example.com")).To(HaveKeyWithValue(web+"/org-operator:view", "view"))
			g.Expect(getOrg(g, name).Status.Namespaces).To(ContainElement(web))
		}).Should(Succeed())
		Expect(getMember(Default, name, "bob").Status.Projects).To(BeEmpty(), "bob has his kubernetesRole in the project")

		By("counting what runs in it")
		Expect(k8s.Create(ctx, pod(web, "app", "250m", "64Mi"))).To(Succeed())
		Eventually(func(g Gomega) {
			u := getProject(g, name, "web").Status.Usage
			g.Expect(u).NotTo(BeNil())
			g.Expect(u.Pods).To(BeEquivalentTo(1))
			g.Expect(u.Requests).To(HaveKeyWithValue(corev1.ResourceCPU, resource.MustParse("250m")))
		}).Should(Succeed())

		By("deleting the project")
		Expect(k8s.Delete(ctx, newProject(name, "web"))).To(Succeed())
		Eventually(func(g Gomega) {
			err := k8s.Get(ctx, client.ObjectKey{Name: web}, ns)
			g.Expect(apierrors.IsNotFound(err) || err == nil && ns.DeletionTimestamp != nil).To(BeTrue(), "namespace %s goes", web)
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(getOrg(g, name).Status.Namespaces).NotTo(ContainElement(web))
		}).Should(Succeed())
	})

	It("binds a member's project role in the project's namespace and its kubernetesRole elsewhere", func(ctx SpecContext) {
		name := uniqueName("roles")
		Expect(k8s.Create(ctx, newOrganization(name, tenancyv1alpha1.DeletionPolicyCascade))).To(Succeed())
		expectOrgReady(ctx, name)
		Expect(k8s.Create(ctx, labelledNamespace(name+"-shared", name))).To(Succeed())
		Expect(k8s.Create(ctx, newMember(name, "alice", "alice@example.com", true, tenancyv1alpha1.KubernetesRoleAdmin))).To(Succeed())
		Expect(k8s.Create(ctx, newMember(name, "bob", "bob@example.com", false, tenancyv1alpha1.KubernetesRoleView))).To(Succeed())
		expectMemberReady(ctx, name, "bob")

		Expect(k8s.Create(ctx, newProject(name, "db",
			tenancyv1alpha1.ProjectMember{Name: "bob", KubernetesRole: tenancyv1alpha1.KubernetesRoleAdmin},
			tenancyv1alpha1.ProjectMember{Name: "alice", KubernetesRole: tenancyv1alpha1.KubernetesRoleNone},
			tenancyv1alpha1.ProjectMember{Name: "nobody", KubernetesRole: tenancyv1alpha1.KubernetesRoleAdmin},
		))).To(Succeed())
		expectProjectReady(ctx, name, "db")
		db := name + "-db"
		Eventually(func(g Gomega) {
			g.Expect(subjectBindings(g, name, "bob@example.com")).To(Equal(map[string]string{
				name + "/org-operator:view": "view", name + "-shared/org-operator:view": "view", db + "/org-operator:admin": "admin",
			}))
			g.Expect(subjectBindings(g, name, "alice@example.com")).To(Equal(map[string]string{
				name + "/org-operator:admin": "admin", name + "/org-operator:organization-admin": "org-operator-organization-admin",
				name + "-shared/org-operator:admin": "admin",
			}))
			g.Expect(getMember(g, name, "bob").Status.Projects).To(ConsistOf(tenancyv1alpha1.ProjectAccess{
				Project: "db", Namespace: db, KubernetesRole: tenancyv1alpha1.KubernetesRoleAdmin, RoleBinding: "org-operator:admin"}))
			g.Expect(getMember(g, name, "alice").Status.Projects).To(ConsistOf(tenancyv1alpha1.ProjectAccess{
				Project: "db", Namespace: db, KubernetesRole: tenancyv1alpha1.KubernetesRoleNone}))
		}).Should(Succeed())

		By("dropping bob's project role")
		Eventually(func() error {
			p := getProject(Default, name, "db")
			p.Spec.Members = p.Spec.Members[1:]
			return k8s.Update(ctx, p)
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(subjectBindings(g, name, "bob@example.com")).To(HaveKeyWithValue(db+"/org-operator:view", "view"))
			g.Expect(subjectBindings(g, name, "bob@example.com")).NotTo(HaveKey(db + "/org-operator:admin"))
			g.Expect(getMember(g, name, "bob").Status.Projects).To(BeEmpty())
		}).Should(Succeed())
	})

	It("takes no namespace it did not make, and deletes none of those when the project goes", func(ctx SpecContext) {
		name := uniqueName("adopt")
		Expect(k8s.Create(ctx, newOrganization(name, tenancyv1alpha1.DeletionPolicyCascade))).To(Succeed())
		expectOrgReady(ctx, name)
		other := uniqueName("other")
		Expect(k8s.Create(ctx, newOrganization(other, tenancyv1alpha1.DeletionPolicyCascade))).To(Succeed())
		expectOrgReady(ctx, other)

		By("an unlabelled namespace")
		plain := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name + "-legacy"}}
		Expect(k8s.Create(ctx, plain)).To(Succeed())
		Expect(k8s.Create(ctx, newProject(name, "legacy"))).To(Succeed())
		expectProjectStalled(ctx, name, "legacy", tenancyv1alpha1.NamespaceNotAdoptedReason, "a platform admin adopts it")
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(plain), plain)).To(Succeed())
		Expect(plain.Labels).NotTo(HaveKey(tenancyv1alpha1.OrganizationLabel), "the operator does not label it")

		By("another organization's namespace")
		Expect(k8s.Create(ctx, labelledNamespace(name+"-theirs", other))).To(Succeed())
		Expect(k8s.Create(ctx, newProject(name, "theirs"))).To(Succeed())
		expectProjectStalled(ctx, name, "theirs", tenancyv1alpha1.NameCollisionReason, "belongs to organization "+other)

		By("a platform admin adopting the unlabelled one")
		plain.Labels = map[string]string{tenancyv1alpha1.OrganizationLabel: name, tenancyv1alpha1.ProjectLabel: "legacy"}
		Expect(k8s.Update(ctx, plain)).To(Succeed())
		Expect(expectProjectReady(ctx, name, "legacy").Status.Namespace).To(Equal(name + "-legacy"))

		By("deleting the adopted project")
		Expect(k8s.Delete(ctx, newProject(name, "legacy"))).To(Succeed())
		Eventually(func() error {
			return k8s.Get(ctx, client.ObjectKey{Namespace: name, Name: "legacy"}, &tenancyv1alpha1.OrganizationProject{})
		}).Should(Satisfy(apierrors.IsNotFound))
		Consistently(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(plain), plain)).To(Succeed())
			g.Expect(plain.DeletionTimestamp).To(BeNil(), "a namespace the operator did not make stays")
		}).Should(Succeed())
	})

	It("deletes the projects' namespaces with the organization under deletionPolicy Block once they are empty", func(ctx SpecContext) {
		name := uniqueName("blockp")
		Expect(k8s.Create(ctx, newOrganization(name, tenancyv1alpha1.DeletionPolicyBlock))).To(Succeed())
		expectOrgReady(ctx, name)
		Expect(k8s.Create(ctx, newProject(name, "api"))).To(Succeed())
		expectProjectReady(ctx, name, "api")
		api := name + "-api"
		Expect(k8s.Create(ctx, pod(api, "worker", "100m", "64Mi"))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(getOrg(g, name)).To(HaveField("Status.Usage.Pods", BeEquivalentTo(1)))
		}).Should(Succeed())

		Expect(k8s.Delete(ctx, newOrganization(name, ""))).To(Succeed())
		Eventually(func(g Gomega) {
			ready := condition(getOrg(g, name).Status.Conditions, tenancyv1alpha1.ReadyCondition)
			g.Expect(ready.Reason).To(Equal(tenancyv1alpha1.DeletionBlockedReason))
			g.Expect(ready.Message).To(ContainSubstring("namespace %s has 1 pods", api))
		}).Should(Succeed())

		By("a suspended CronJob blocks as well, and its going releases the organization")
		cron := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: api, Name: "nightly"}, Spec: batchv1.CronJobSpec{
			Schedule: "0 3 * * *", Suspend: ptr.To(true),
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "job", Image: "registry.example/job:1"}}}}}},
		}}
		Expect(k8s.Create(ctx, cron)).To(Succeed())
		Expect(k8s.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: api, Name: "worker"}})).To(Succeed())
		Eventually(func(g Gomega) {
			ready := condition(getOrg(g, name).Status.Conditions, tenancyv1alpha1.ReadyCondition)
			g.Expect(ready.Message).To(ContainSubstring("namespace %s has 1 cronjobs", api))
			g.Expect(ready.Message).NotTo(ContainSubstring("pods"))
		}).Should(Succeed())
		Expect(k8s.Delete(ctx, cron)).To(Succeed())
		for _, ns := range []string{name, api} {
			Eventually(func() error {
				return k8s.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{})
			}).Should(Satisfy(apierrors.IsNotFound), "namespace %s", ns)
		}
		Eventually(func() error {
			return k8s.Get(ctx, client.ObjectKey{Name: name}, &tenancyv1alpha1.Organization{})
		}).Should(Satisfy(apierrors.IsNotFound))
	})
})
