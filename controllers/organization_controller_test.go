package controllers_test

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

var _ = Describe("Organization controller", func() {
	It("creates an owned, labelled home namespace and reports Ready", func(ctx SpecContext) {
		name := uniqueName("acme")
		Expect(k8s.Create(ctx, newOrganization(name, ""))).To(Succeed())

		org := expectOrgReady(ctx, name)
		Expect(org.Finalizers).To(ContainElement(tenancyv1alpha1.OrganizationFinalizer))
		Expect(condition(org.Status.Conditions, tenancyv1alpha1.StalledCondition).Type).To(BeEmpty(), "Stalled is absent unless True")
		Expect(org.Status.HomeNamespace).To(Equal(name))
		Expect(org.Status.Namespaces).To(Equal([]string{name}))
		Expect(condition(org.Status.Conditions, tenancyv1alpha1.NamespacesReadyCondition).Status).To(Equal(metav1.ConditionTrue))
		Expect(condition(org.Status.Conditions, tenancyv1alpha1.MembersReadyCondition).Status).To(Equal(metav1.ConditionTrue))
		Expect(org.Spec.DeletionPolicy).To(Equal(tenancyv1alpha1.DeletionPolicyBlock), "defaulted by the CRD")

		ns := &corev1.Namespace{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, ns)).To(Succeed())
		Expect(ns.Labels).To(HaveKeyWithValue(tenancyv1alpha1.OrganizationLabel, name))
		Expect(ns.Labels).To(HaveKeyWithValue(tenancyv1alpha1.HomeNamespaceLabel, "true"))
		Expect(metav1.IsControlledBy(ns, org)).To(BeTrue())

		By("emitting an event on the organization")
		Eventually(func(g Gomega) {
			events := &eventsv1.EventList{}
			g.Expect(k8s.List(ctx, events)).To(Succeed())
			g.Expect(events.Items).To(ContainElement(SatisfyAll(
				HaveField("Regarding.Name", name), HaveField("Reason", tenancyv1alpha1.NamespaceCreatedReason))))
		}).Should(Succeed())
	})

	It("restores the home namespace's labels when someone removes them", func(ctx SpecContext) {
		name := uniqueName("relabel")
		Expect(k8s.Create(ctx, newOrganization(name, ""))).To(Succeed())
		expectOrgReady(ctx, name)

		ns := &corev1.Namespace{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, ns)).To(Succeed())
		patch := client.MergeFrom(ns.DeepCopy())
		delete(ns.Labels, tenancyv1alpha1.OrganizationLabel)
		Expect(k8s.Patch(ctx, ns, patch)).To(Succeed())

		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, ns)).To(Succeed())
			g.Expect(ns.Labels).To(HaveKeyWithValue(tenancyv1alpha1.OrganizationLabel, name))
		}).Should(Succeed())
	})

	It("adopts namespaces by label and lets them go when the label is removed", func(ctx SpecContext) {
		name := uniqueName("globex")
		Expect(k8s.Create(ctx, newOrganization(name, ""))).To(Succeed())
		expectOrgReady(ctx, name)

		staging := labelledNamespace(name+"-staging", name)
		Expect(k8s.Create(ctx, staging)).To(Succeed())
		Eventually(func(g Gomega) {
			org := getOrg(g, name)
			g.Expect(org.Status.Namespaces).To(Equal([]string{name, name + "-staging"}))
			g.Expect(org).To(HaveField("Status.Usage.NamespaceCount", BeEquivalentTo(2)))
		}).Should(Succeed())

		patch := client.MergeFrom(staging.DeepCopy())
		delete(staging.Labels, tenancyv1alpha1.OrganizationLabel)
		Expect(k8s.Patch(ctx, staging, patch)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(getOrg(g, name).Status.Namespaces).To(Equal([]string{name}))
		}).Should(Succeed())
	})

	It("sums usage over the organization's namespaces", func(ctx SpecContext) {
		name := uniqueName("usage")
		Expect(k8s.Create(ctx, newOrganization(name, tenancyv1alpha1.DeletionPolicyCascade))).To(Succeed())
		expectOrgReady(ctx, name)
		Expect(k8s.Create(ctx, labelledNamespace(name+"-prod", name))).To(Succeed())

		Expect(k8s.Create(ctx, pod(name, "web", "250m", "128Mi"))).To(Succeed())
		Expect(k8s.Create(ctx, pod(name+"-prod", "api", "1", "1Gi"))).To(Succeed())
		done := pod(name+"-prod", "job", "2", "2Gi")
		Expect(k8s.Create(ctx, done)).To(Succeed())
		done.Status.Phase = corev1.PodSucceeded
		Expect(k8s.Status().Update(ctx, done)).To(Succeed())

		replicas := int32(0)
		labels := map[string]string{"app": "web"}
		Expect(k8s.Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: "web"},
			Spec: appsv1.DeploymentSpec{
				Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
				},
			},
		})).To(Succeed())
		Expect(k8s.Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: name + "-prod", Name: "api"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
		})).To(Succeed())
		Expect(k8s.Create(ctx, &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: name + "-prod", Name: "data"},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			},
		})).To(Succeed())

		Eventually(func(g Gomega) {
			u := getOrg(g, name).Status.Usage
			g.Expect(u).NotTo(BeNil())
			g.Expect(u.NamespaceCount).To(BeEquivalentTo(2))
			g.Expect(u.Pods).To(BeEquivalentTo(2), "the Succeeded pod does not count")
			g.Expect(u.Namespaces).To(HaveLen(2))
			home, prod := u.Namespaces[0], u.Namespaces[1]
			g.Expect([]string{home.Name, prod.Name}).To(Equal([]string{name, name + "-prod"}))
			g.Expect([]int32{home.Pods, home.Deployments, home.Services}).To(Equal([]int32{1, 1, 0}))
			g.Expect([]int32{prod.Pods, prod.Services, prod.PersistentVolumeClaims}).To(Equal([]int32{1, 1, 1}))
			g.Expect(home.Requests.Cpu().String()).To(Equal("250m"))
			g.Expect(prod.Requests.Memory().String()).To(Equal("1Gi"))
			g.Expect(u.Deployments).To(BeEquivalentTo(1))
			g.Expect(u.Services).To(BeEquivalentTo(1))
			g.Expect(u.PersistentVolumeClaims).To(BeEquivalentTo(1))
			g.Expect(u.Requests.Cpu().String()).To(Equal("1250m"))
			g.Expect(u.Requests.Memory().String()).To(Equal("1152Mi"))
			g.Expect(u.Limits.Cpu().String()).To(Equal("1250m"))
		}).Should(Succeed())

		By("following pod deletion")
		Expect(k8s.Delete(ctx, pod(name+"-prod", "api", "1", "1Gi"))).To(Succeed())
		Eventually(func(g Gomega) {
			u := getOrg(g, name).Status.Usage
			g.Expect(u.Pods).To(BeEquivalentTo(1))
			g.Expect(u.Requests.Cpu().String()).To(Equal("250m"))
		}).Should(Succeed())
	})

	It("refuses a name taken by a namespace it does not own", func(ctx SpecContext) {
		name := uniqueName("initech")
		Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
		Expect(k8s.Create(ctx, newOrganization(name, tenancyv1alpha1.DeletionPolicyCascade))).To(Succeed())

		Eventually(func(g Gomega) {
			org := getOrg(g, name)
			ready := condition(org.Status.Conditions, tenancyv1alpha1.ReadyCondition)
			g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.Reason).To(Equal(tenancyv1alpha1.NameCollisionReason))
			g.Expect(ready.Message).To(ContainSubstring("Namespace %s already exists", name))
			g.Expect(org.Status.ObservedGeneration).To(Equal(org.Generation))
			stalled := condition(org.Status.Conditions, tenancyv1alpha1.StalledCondition)
			g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue), "kstatus reports Failed, not InProgress forever")
			g.Expect(stalled.Reason).To(Equal(tenancyv1alpha1.NameCollisionReason))
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			events := &eventsv1.EventList{}
			g.Expect(k8s.List(ctx, events)).To(Succeed())
			g.Expect(events.Items).To(ContainElement(SatisfyAll(
				HaveField("Regarding.Name", name), HaveField("Reason", tenancyv1alpha1.NameCollisionReason),
				HaveField("Type", corev1.EventTypeWarning))))
		}).Should(Succeed())

		By("leaving the foreign namespace alone, even when the organization is deleted with Cascade")
		Expect(k8s.Delete(ctx, newOrganization(name, ""))).To(Succeed())
		Eventually(func() error {
			return k8s.Get(ctx, client.ObjectKey{Name: name}, &tenancyv1alpha1.Organization{})
		}).Should(Satisfy(apierrors.IsNotFound))
		ns := &corev1.Namespace{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, ns)).To(Succeed())
		Expect(ns.DeletionTimestamp).To(BeNil())
	})

	It("blocks deletion while workloads remain under deletionPolicy Block, then removes only the home namespace", func(ctx SpecContext) {
		name := uniqueName("blocky")
		Expect(k8s.Create(ctx, newOrganization(name, tenancyv1alpha1.DeletionPolicyBlock))).To(Succeed())
		expectOrgReady(ctx, name)
		adopted := labelledNamespace(name+"-extra", name)
		Expect(k8s.Create(ctx, adopted)).To(Succeed())
		Expect(k8s.Create(ctx, pod(name+"-extra", "worker", "100m", "64Mi"))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(getOrg(g, name)).To(HaveField("Status.Usage.Pods", BeEquivalentTo(1)))
		}).Should(Succeed())

		Expect(k8s.Delete(ctx, newOrganization(name, ""))).To(Succeed())
		Eventually(func(g Gomega) {
			ready := condition(getOrg(g, name).Status.Conditions, tenancyv1alpha1.ReadyCondition)
			g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.Reason).To(Equal(tenancyv1alpha1.DeletionBlockedReason))
			g.Expect(ready.Message).To(ContainSubstring("namespace %s-extra has 1 pods", name))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			getOrg(g, name)
			ns := &corev1.Namespace{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, ns)).To(Succeed())
			g.Expect(ns.DeletionTimestamp).To(BeNil())
		}).Should(Succeed())

		By("deleting the last workload")
		Expect(k8s.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: name + "-extra", Name: "worker"}})).To(Succeed())
		Eventually(func() error {
			return k8s.Get(ctx, client.ObjectKey{Name: name}, &tenancyv1alpha1.Organization{})
		}).Should(Satisfy(apierrors.IsNotFound))
		Eventually(func() error {
			return k8s.Get(ctx, client.ObjectKey{Name: name}, &corev1.Namespace{})
		}).Should(Satisfy(apierrors.IsNotFound), "the home namespace is deleted by the namespace controller")
		Expect(k8s.Get(ctx, client.ObjectKey{Name: name + "-extra"}, adopted)).To(Succeed())
		Expect(adopted.DeletionTimestamp).To(BeNil(), "namespaces that joined by label stay")
	})

	It("deletes every namespace of the organization under deletionPolicy Cascade", func(ctx SpecContext) {
		name := uniqueName("cascade")
		Expect(k8s.Create(ctx, newOrganization(name, tenancyv1alpha1.DeletionPolicyCascade))).To(Succeed())
		expectOrgReady(ctx, name)
		Expect(k8s.Create(ctx, labelledNamespace(name+"-a", name))).To(Succeed())
		Expect(k8s.Create(ctx, pod(name+"-a", "busy", "100m", "64Mi"))).To(Succeed())
		Expect(k8s.Create(ctx, newMember(name, "ann", "ann@example.com", true, tenancyv1alpha1.KubernetesRoleEdit))).To(Succeed())
		expectMemberReady(ctx, name, "ann")

		Expect(k8s.Delete(ctx, newOrganization(name, ""))).To(Succeed())
		for _, ns := range []string{name, name + "-a"} {
			Eventually(func() error {
				return k8s.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{})
			}).Should(Satisfy(apierrors.IsNotFound), fmt.Sprintf("namespace %s", ns))
		}
		Eventually(func() error {
			return k8s.Get(ctx, client.ObjectKey{Name: name}, &tenancyv1alpha1.Organization{})
		}).Should(Satisfy(apierrors.IsNotFound))
	})

	It("counts members and admins and waits for them to be Ready", func(ctx SpecContext) {
		name := uniqueName("team")
		Expect(k8s.Create(ctx, newOrganization(name, tenancyv1alpha1.DeletionPolicyCascade))).To(Succeed())
		expectOrgReady(ctx, name)
		Expect(k8s.Create(ctx, newMember(name, "alice", "alice@example.com", true, tenancyv1alpha1.KubernetesRoleAdmin))).To(Succeed())
		Expect(k8s.Create(ctx, newMember(name, "bob", "bob@example.com", false, tenancyv1alpha1.KubernetesRoleView))).To(Succeed())
		Eventually(func(g Gomega) {
			org := getOrg(g, name)
			g.Expect(org.Status.MemberCount).To(BeEquivalentTo(2))
			g.Expect(org.Status.AdminCount).To(BeEquivalentTo(1))
			g.Expect(org).To(HaveField("Status.Usage.Members", BeEquivalentTo(2)))
			g.Expect(condition(org.Status.Conditions, tenancyv1alpha1.MembersReadyCondition).Message).To(Equal("2 members, 1 admins"))
			g.Expect(condition(org.Status.Conditions, tenancyv1alpha1.ReadyCondition).Status).To(Equal(metav1.ConditionTrue))
		}).Should(Succeed())
	})
})
