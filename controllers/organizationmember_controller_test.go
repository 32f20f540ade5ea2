package controllers_test

import (
	"fmt"
	"maps"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/membership"
)

var _ = Describe("Members' access", func() {
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
		Expect(m.Status.Access).To(ConsistOf(
			tenancyv1alpha1.MemberAccess{ClusterRole: "admin", Namespaces: tenancyv1alpha1.AccessScopeOrganization, RoleBinding: "org-operator:admin"},
			tenancyv1alpha1.MemberAccess{ClusterRole: membership.OrganizationAdminClusterRole, Namespaces: tenancyv1alpha1.AccessScopeHome, RoleBinding: "org-operator:organization-admin"},
		))
		Expect(m.Status.JoinedAt).NotTo(BeNil())
		Expect(m.Finalizers).To(ContainElement(tenancyv1alpha1.MemberFinalizer))
		Expect(subjectBindings(Default, org, "alice@example.com")).To(Equal(map[string]string{
			org + "/org-operator:admin":              "admin",
			org + "-dev/org-operator:admin":          "admin",
			org + "/org-operator:organization-admin": "org-operator-organization-admin",
		}))
		rb := &rbacv1.RoleBinding{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: org + "-dev", Name: "org-operator:admin"}, rb)).To(Succeed())
		Expect(metav1.GetControllerOf(rb)).To(HaveField("Name", org), "the organization owns its bindings, so they go with it")
	})

	It("binds the username when one is set", func(ctx SpecContext) {
		m := newMember(org, "carol", "carol@example.com", false, tenancyv1alpha1.KubernetesRoleEdit)
		m.Spec.Username = "carol"
		Expect(k8s.Create(ctx, m)).To(Succeed())
		expectMemberReady(ctx, org, "carol")
		Expect(subjectBindings(Default, org, "carol")).To(Equal(map[string]string{
			org + "/org-operator:edit": "edit", org + "-dev/org-operator:edit": "edit",
		}))
		Expect(subjectBindings(Default, org, "carol@example.com")).To(BeEmpty())
	})

	It("lists the members of a role in one binding per namespace", func(ctx SpecContext) {
		for i := range 5 {
			Expect(k8s.Create(ctx, newMember(org, fmt.Sprintf("m%d", i), fmt.Sprintf("m%d@example.com", i), i == 0, tenancyv1alpha1.KubernetesRoleView))).To(Succeed())
		}
		for i := range 5 {
			expectMemberReady(ctx, org, fmt.Sprintf("m%d", i))
		}
		list := &rbacv1.RoleBindingList{}
		Expect(k8s.List(ctx, list, client.MatchingLabels{tenancyv1alpha1.OrganizationLabel: org})).To(Succeed())
		names := map[string]int{}
		for _, rb := range list.Items {
			names[rb.Namespace+"/"+rb.Name] = len(rb.Subjects)
		}
		Expect(names).To(Equal(map[string]int{
			org + "/org-operator:view": 5, org + "-dev/org-operator:view": 5, org + "/org-operator:organization-admin": 1,
		}))
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
			return subjectBindings(g, org, "bob@example.com")
		}).Should(Equal(map[string]string{org + "/org-operator:edit": "edit", org + "-dev/org-operator:edit": "edit"}))
		m = expectMemberReady(ctx, org, "bob")
		Expect(m.Status.Access).To(Equal([]tenancyv1alpha1.MemberAccess{
			{ClusterRole: "edit", Namespaces: tenancyv1alpha1.AccessScopeOrganization, RoleBinding: "org-operator:edit"},
		}))

		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: org, Name: "bob"}, m)).To(Succeed())
		m.Spec.KubernetesRole = tenancyv1alpha1.KubernetesRoleNone
		Expect(k8s.Update(ctx, m)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(subjectBindings(g, org, "bob@example.com")).To(BeEmpty())
			g.Expect(getMember(g, org, "bob").Status.Access).To(BeEmpty())
		}).Should(Succeed())
		expectMemberReady(ctx, org, "bob")
	})

	It("binds new namespaces, unbinds departed ones and repairs tampered bindings", func(ctx SpecContext) {
		Expect(k8s.Create(ctx, newMember(org, "dave", "dave@example.com", false, tenancyv1alpha1.KubernetesRoleView))).To(Succeed())
		before := expectMemberReady(ctx, org, "dave")

		Expect(k8s.Create(ctx, labelledNamespace(org+"-prod", org))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(subjectBindings(g, org, "dave@example.com")).To(HaveKey(org + "-prod/org-operator:view"))
		}).Should(Succeed())
		Expect(getMember(Default, org, "dave").ResourceVersion).To(Equal(before.ResourceVersion),
			"a namespace joining changes no member's status")

		ns := &corev1.Namespace{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: org + "-dev"}, ns)).To(Succeed())
		patch := client.MergeFrom(ns.DeepCopy())
		delete(ns.Labels, tenancyv1alpha1.OrganizationLabel)
		Expect(k8s.Patch(ctx, ns, patch)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(subjectBindings(g, org, "dave@example.com")).NotTo(HaveKey(org + "-dev/org-operator:view"))
			rbs := &rbacv1.RoleBindingList{}
			g.Expect(k8s.List(ctx, rbs, client.InNamespace(org+"-dev"))).To(Succeed())
			g.Expect(rbs.Items).To(BeEmpty(), "a namespace that left keeps none of the organization's bindings")
		}).Should(Succeed())

		By("restoring a binding whose subjects were changed")
		rb := &rbacv1.RoleBinding{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: org + "-prod", Name: "org-operator:view"}, rb)).To(Succeed())
		rb.Subjects = []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "mallory@example.com"}}
		Expect(k8s.Update(ctx, rb)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: org + "-prod", Name: "org-operator:view"}, rb)).To(Succeed())
			g.Expect(rb.Subjects).To(Equal([]rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "dave@example.com"}}))
		}).Should(Succeed())

		By("recreating a deleted binding")
		Expect(k8s.Delete(ctx, rb)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(subjectBindings(g, org, "dave@example.com")).To(HaveKey(org + "-prod/org-operator:view"))
		}).Should(Succeed())
	})

	It("takes a deleted member out of every binding before it goes, and the last one's bindings with it", func(ctx SpecContext) {
		Expect(k8s.Create(ctx, newMember(org, "erin", "erin@example.com", true, tenancyv1alpha1.KubernetesRoleAdmin))).To(Succeed())
		Expect(k8s.Create(ctx, newMember(org, "fred", "fred@example.com", false, tenancyv1alpha1.KubernetesRoleAdmin))).To(Succeed())
		expectMemberReady(ctx, org, "erin")
		expectMemberReady(ctx, org, "fred")
		Expect(subjectBindings(Default, org, "erin@example.com")).To(HaveLen(3))

		Expect(k8s.Delete(ctx, newMember(org, "erin", "", false, ""))).To(Succeed())
		Eventually(func(g Gomega) {
			err := k8s.Get(ctx, client.ObjectKey{Namespace: org, Name: "erin"}, &tenancyv1alpha1.OrganizationMember{})
			g.Expect(client.IgnoreNotFound(err)).To(Succeed())
			g.Expect(err).To(HaveOccurred())
		}).Should(Succeed())
		Expect(subjectBindings(Default, org, "erin@example.com")).To(BeEmpty(), "the member went only once its access had")
		Expect(subjectBindings(Default, org, "fred@example.com")).To(HaveLen(2))
		rb := &rbacv1.RoleBinding{}
		err := k8s.Get(ctx, client.ObjectKey{Namespace: org, Name: "org-operator:organization-admin"}, rb)
		Expect(client.IgnoreNotFound(err)).To(Succeed())
		Expect(err).To(HaveOccurred(), "a binding of no one is removed, not left empty")
	})

	It("leaves a squatted binding name alone, reports it and binds the other namespaces", func(ctx SpecContext) {
		Expect(k8s.Create(ctx, newMember(org, "gus", "gus@example.com", false, tenancyv1alpha1.KubernetesRoleView))).To(Succeed())
		expectMemberReady(ctx, org, "gus")
		// A tenant prepares a namespace with a binding of the operator's name, then joins it.
		squat := org + "-squat"
		Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: squat}})).To(Succeed())
		squatter := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: squat, Name: "org-operator:view"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "mallory@example.com"}},
		}
		Expect(k8s.Create(ctx, squatter)).To(Succeed())
		Expect(k8s.Create(ctx, labelledNamespace(org+"-prod", org))).To(Succeed())
		ns := &corev1.Namespace{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: squat}, ns)).To(Succeed())
		ns.Labels = map[string]string{tenancyv1alpha1.OrganizationLabel: org}
		Expect(k8s.Update(ctx, ns)).To(Succeed())

		Eventually(func(g Gomega) {
			ready := condition(getOrg(g, org).Status.Conditions, tenancyv1alpha1.ReadyCondition)
			g.Expect(ready.Reason).To(Equal(tenancyv1alpha1.NameCollisionReason))
			g.Expect(ready.Message).To(ContainSubstring(squat + "/org-operator:view"))
			g.Expect(subjectBindings(g, org, "gus@example.com")).To(HaveKey(org + "-prod/org-operator:view"))
		}).Should(Succeed())
		have := &rbacv1.RoleBinding{}
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(squatter), have)).To(Succeed())
		Expect(have.Subjects).To(Equal(squatter.Subjects), "someone else's binding is not rewritten")
		Expect(have.ResourceVersion).To(Equal(squatter.ResourceVersion))

		By("once the squatter's binding goes, the namespace is bound and the organization Ready")
		Expect(k8s.Delete(ctx, have)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(subjectBindings(g, org, "gus@example.com")).To(HaveKey(squat + "/org-operator:view"))
		}).WithTimeout(time.Minute).Should(Succeed(), "the organization looks again every 30 s")
		expectOrgReady(ctx, org)
	})

	It("deletes no binding labelled like the older model's unless the organization owns it", func(ctx SpecContext) {
		Expect(k8s.Create(ctx, newMember(org, "hal", "hal@example.com", false, tenancyv1alpha1.KubernetesRoleView))).To(Succeed())
		// A tenant's own binding, labelled as if the operator had made it for a member.
		decoy := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: org + "-dev", Name: "org-member-hal", Labels: map[string]string{
				tenancyv1alpha1.OrganizationLabel: org, tenancyv1alpha1.MemberLabel: "hal", tenancyv1alpha1.ManagedByLabel: tenancyv1alpha1.ManagedByValue,
			}},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "ci@example.com"}},
		}
		Expect(k8s.Create(ctx, decoy)).To(Succeed())
		expectMemberReady(ctx, org, "hal")
		Expect(subjectBindings(Default, org, "hal@example.com")).To(HaveKey(org + "-dev/org-operator:view"))
		Consistently(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(decoy), &rbacv1.RoleBinding{})).To(Succeed())
		}).WithTimeout(3 * time.Second).Should(Succeed())
	})

	It("replaces the per-member bindings of the older model without a moment without access", func(ctx SpecContext) {
		// As the previous release left a populated organization: one RoleBinding per member and
		// namespace, labelled with the member, owned (not controlled) by the organization.
		o := getOrg(Default, org)
		namespaces := []string{org, org + "-dev"}
		users := []string{"u0@example.com", "u1@example.com", "u2@example.com"}
		for i, user := range users {
			name := fmt.Sprintf("u%d", i)
			for _, ns := range namespaces {
				Expect(k8s.Create(ctx, legacyBinding(o, ns, "org-member-"+name, name, user, "edit"))).To(Succeed())
			}
			if i == 0 {
				Expect(k8s.Create(ctx, legacyBinding(o, org, "org-admin-"+name, name, user, membership.OrganizationAdminClusterRole))).To(Succeed())
			}
		}
		list := &rbacv1.RoleBindingList{}
		Expect(k8s.List(ctx, list, client.MatchingLabels{tenancyv1alpha1.OrganizationLabel: org})).To(Succeed())
		watcher, err := client.NewWithWatch(env.ControlPlane.Config, client.Options{Scheme: env.Scheme})
		Expect(err).NotTo(HaveOccurred())
		w, err := watcher.Watch(ctx, &rbacv1.RoleBindingList{}, client.MatchingLabels{tenancyv1alpha1.OrganizationLabel: org},
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()

		for i, user := range users {
			Expect(k8s.Create(ctx, newMember(org, fmt.Sprintf("u%d", i), user, i == 0, tenancyv1alpha1.KubernetesRoleEdit))).To(Succeed())
		}
		for i := range users {
			expectMemberReady(ctx, org, fmt.Sprintf("u%d", i))
		}
		Eventually(func(g Gomega) {
			g.Expect(k8s.List(ctx, list, client.MatchingLabels{tenancyv1alpha1.OrganizationLabel: org})).To(Succeed())
			names := []string{}
			for _, rb := range list.Items {
				names = append(names, rb.Namespace+"/"+rb.Name)
			}
			g.Expect(names).To(ConsistOf(org+"/org-operator:edit", org+"-dev/org-operator:edit", org+"/org-operator:organization-admin"))
		}).Should(Succeed())

		By("replaying every change the bindings went through: each user keeps its access at every step")
		// From the legacy bindings (made before the watch began), apply the watched events in order.
		state := legacyState(o, namespaces, users)
		steps := 0
		for done := false; !done; {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					done = true
					break
				}
				rb, isBinding := ev.Object.(*rbacv1.RoleBinding)
				Expect(isBinding).To(BeTrue(), "watch event %v", ev.Object)
				key := rb.Namespace + "/" + rb.Name
				if ev.Type == watch.Deleted {
					delete(state, key)
				} else {
					state[key] = *rb
				}
				steps++
				for _, ns := range namespaces {
					for i, user := range users {
						Expect(grants(state, ns, user, "edit")).To(BeTrue(), "after step %d, %s has no edit in %s", steps, user, ns)
						if i == 0 && ns == org {
							Expect(grants(state, ns, user, membership.OrganizationAdminClusterRole)).To(BeTrue(), "after step %d, the admin lost its role", steps)
						}
					}
				}
				done = len(state) == 3 && !slices.ContainsFunc(slices.Collect(maps.Values(state)), func(rb rbacv1.RoleBinding) bool { return membership.IsLegacy(&rb) })
			case <-ctx.Done():
				Fail("the watch did not show the migration end")
			}
		}
		Expect(steps).To(BeNumerically(">=", 3+7), "the shared bindings were created and the legacy ones deleted")
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
		Consistently(func(g Gomega) { g.Expect(subjectBindings(g, stray, "zed@example.com")).To(BeEmpty()) }).Should(Succeed())
	})
})

// legacyBinding is a RoleBinding as the per-member model made it.
func legacyBinding(org *tenancyv1alpha1.Organization, namespace, name, member, user, clusterRole string) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: name,
			Labels: map[string]string{
				tenancyv1alpha1.OrganizationLabel: org.Name, tenancyv1alpha1.MemberLabel: member,
				tenancyv1alpha1.ManagedByLabel: tenancyv1alpha1.ManagedByValue,
			},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: tenancyv1alpha1.GroupVersion.String(), Kind: "Organization", Name: org.Name, UID: org.UID}},
		},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
	}
}

// legacyState is the bindings the legacy model made for users (the first an admin), keyed namespace/name.
func legacyState(org *tenancyv1alpha1.Organization, namespaces, users []string) map[string]rbacv1.RoleBinding {
	out := map[string]rbacv1.RoleBinding{}
	for i, user := range users {
		name := fmt.Sprintf("u%d", i)
		for _, ns := range namespaces {
			out[ns+"/org-member-"+name] = *legacyBinding(org, ns, "org-member-"+name, name, user, "edit")
		}
		if i == 0 {
			out[org.Name+"/org-admin-"+name] = *legacyBinding(org, org.Name, "org-admin-"+name, name, user, membership.OrganizationAdminClusterRole)
		}
	}
	return out
}

// grants says whether a binding in state gives user clusterRole in namespace.
func grants(state map[string]rbacv1.RoleBinding, namespace, user, clusterRole string) bool {
	for _, rb := range state {
		if rb.Namespace == namespace && rb.RoleRef.Name == clusterRole && slices.ContainsFunc(rb.Subjects, func(s rbacv1.Subject) bool { return s.Name == user }) {
			return true
		}
	}
	return false
}
