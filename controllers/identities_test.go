package controllers_test

import (
	"context"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/membership"
)

// boundSubjects lists, per namespace/clusterRole, the subjects the organization's RoleBindings
// name, as membership.SubjectString writes them.
func boundSubjects(g Gomega, org string) map[string][]string {
	list := &rbacv1.RoleBindingList{}
	g.Expect(k8s.List(context.Background(), list, client.MatchingLabels{tenancyv1alpha1.OrganizationLabel: org})).To(Succeed())
	out := map[string][]string{}
	for _, rb := range list.Items {
		for _, s := range rb.Subjects {
			key := rb.Namespace + "/" + rb.RoleRef.Name
			out[key] = append(out[key], membership.SubjectString(s))
		}
	}
	return out
}

var _ = Describe("Members that are groups and service accounts", func() {
	It("binds a group as a Group and a service account of the organization as a ServiceAccount, and a service account of another namespace nowhere until that namespace joins", func(ctx SpecContext) {
		org := uniqueName("ident")
		ci, elsewhere := org+"-ci", uniqueName("elsewhere")
		Expect(k8s.Create(ctx, newOrganization(org, tenancyv1alpha1.DeletionPolicyCascade))).To(Succeed())
		DeferCleanup(func(ctx SpecContext) {
			_ = k8s.Delete(ctx, &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: org}})
			_ = k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: elsewhere}})
		})
		Expect(k8s.Create(ctx, labelledNamespace(ci, org))).To(Succeed())
		Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: elsewhere}})).To(Succeed())
		expectOrgReady(ctx, org)

		admins := newMember(org, "admins", "", true, tenancyv1alpha1.KubernetesRoleEdit)
		admins.Spec.Group = "oidc:" + org + "-admins"
		deployer := newMember(org, "deployer", "", false, tenancyv1alpha1.KubernetesRoleView)
		deployer.Spec.ServiceAccount = &tenancyv1alpha1.ServiceAccountSubject{Namespace: ci, Name: "deployer"}
		stranger := newMember(org, "stranger", "", false, tenancyv1alpha1.KubernetesRoleAdmin)
		stranger.Spec.ServiceAccount = &tenancyv1alpha1.ServiceAccountSubject{Namespace: elsewhere, Name: "default"}
		for _, m := range []*tenancyv1alpha1.OrganizationMember{admins, deployer, stranger} {
			Expect(k8s.Create(ctx, m)).To(Succeed())
		}

		group, sa, outside := "Group:oidc:"+org+"-admins", "ServiceAccount:"+ci+"/deployer", "ServiceAccount:"+elsewhere+"/default"
		Eventually(func(g Gomega) {
			bound := boundSubjects(g, org)
			for _, ns := range []string{org, ci} {
				g.Expect(bound[ns+"/edit"]).To(ConsistOf(group))
				g.Expect(bound[ns+"/view"]).To(ConsistOf(sa))
				g.Expect(bound).NotTo(HaveKey(ns + "/admin"))
			}
			g.Expect(bound[org+"/"+membership.OrganizationAdminClusterRole]).To(ConsistOf(group))
			for _, subjects := range bound {
				g.Expect(subjects).NotTo(ContainElement(outside))
			}
			g.Expect(boundSubjects(g, org)).NotTo(HaveKey(elsewhere + "/admin"))

			crb := &rbacv1.ClusterRoleBinding{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Name: membership.ReaderRoleName(org)}, crb)).To(Succeed())
			var readers []string
			for _, s := range crb.Subjects {
				readers = append(readers, membership.SubjectString(s))
			}
			g.Expect(readers).To(ConsistOf(group, sa))

			m := getMember(g, org, "stranger")
			g.Expect(m.Status.Subject).To(Equal(outside))
			g.Expect(m.Status.Access).To(BeEmpty())
			ready := condition(m.Status.Conditions, tenancyv1alpha1.ReadyCondition)
			g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.Reason).To(Equal(tenancyv1alpha1.ServiceAccountOutsideOrganizationReason))
			g.Expect(condition(m.Status.Conditions, tenancyv1alpha1.StalledCondition).Status).To(Equal(metav1.ConditionTrue))
		}).WithContext(ctx).Should(Succeed())
		Expect(expectMemberReady(ctx, org, "admins").Status.Subject).To(Equal(group))
		Expect(expectMemberReady(ctx, org, "deployer").Status.Subject).To(Equal(sa))

		By("the namespace joining the organization: the service account is bound")
		Expect(k8s.Patch(ctx, labelledNamespace(elsewhere, org), client.Merge)).To(Succeed())
		Eventually(func(g Gomega) {
			bound := boundSubjects(g, org)
			for _, ns := range []string{org, ci, elsewhere} {
				g.Expect(bound[ns+"/admin"]).To(ConsistOf(outside))
			}
		}).WithContext(ctx).Should(Succeed())
		expectMemberReady(ctx, org, "stranger")

		By("and leaving it again: unbound everywhere")
		Expect(k8s.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: elsewhere}},
			client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"labels":{"`+tenancyv1alpha1.OrganizationLabel+`":null}}}`)))).To(Succeed())
		Eventually(func(g Gomega) {
			for key, subjects := range boundSubjects(g, org) {
				g.Expect(subjects).NotTo(ContainElement(outside), key)
			}
			g.Expect(condition(getMember(g, org, "stranger").Status.Conditions, tenancyv1alpha1.ReadyCondition).Reason).
				To(Equal(tenancyv1alpha1.ServiceAccountOutsideOrganizationReason))
		}).WithContext(ctx).Should(Succeed())
	}, SpecTimeout(2*time.Minute))
})

var _ = Describe("An organization's owner", func() {
	It("becomes an admin member once, and AdminMissing says when the organization has no admin", func(ctx SpecContext) {
		name := uniqueName("owned")
		org := newOrganization(name, tenancyv1alpha1.DeletionPolicyCascade)
		org.Spec.Owner = &tenancyv1alpha1.OrganizationOwner{Email: "alice@" + name + ".example", Username: "alice-" + name}
		Expect(k8s.Create(ctx, org)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) { _ = k8s.Delete(ctx, org) })

		owner := expectMemberReady(ctx, name, "owner")
		Expect(owner.Spec.Admin).To(BeTrue())
		Expect(owner.Spec.KubernetesRole).To(Equal(tenancyv1alpha1.KubernetesRoleAdmin))
		Expect(owner.Spec.Email).To(Equal("alice@" + name + ".example"))
		Expect(owner.Status.Subject).To(Equal("User:alice-" + name))
		Eventually(func(g Gomega) {
			o := getOrg(g, name)
			g.Expect(o.Status.Owner).To(Equal(&tenancyv1alpha1.OwnerStatus{Subject: "User:alice-" + name, Member: "owner"}))
			g.Expect(condition(o.Status.Conditions, tenancyv1alpha1.AdminMissingCondition).Status).To(Equal(metav1.ConditionFalse))
			g.Expect(subjectBindings(g, name, "alice-"+name)).To(Equal(map[string]string{
				name + "/org-operator:admin": "admin", name + "/org-operator:organization-admin": membership.OrganizationAdminClusterRole,
			}))
		}).WithContext(ctx).Should(Succeed())
		expectOrgReady(ctx, name)

		By("the owner's member removed: it is not made again, and AdminMissing turns True with a warning")
		Expect(k8s.Delete(ctx, owner)).To(Succeed())
		Eventually(func(g Gomega) {
			err := k8s.Get(ctx, client.ObjectKeyFromObject(owner), &tenancyv1alpha1.OrganizationMember{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "member still there: %v", err)
			c := condition(getOrg(g, name).Status.Conditions, tenancyv1alpha1.AdminMissingCondition)
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Reason).To(Equal(tenancyv1alpha1.NoAdminReason))
		}).WithContext(ctx).Should(Succeed())
		Eventually(func(g Gomega) {
			events := &corev1.EventList{}
			g.Expect(k8s.List(ctx, events, client.MatchingFields{"involvedObject.name": name})).To(Succeed())
			g.Expect(slices.ContainsFunc(events.Items, func(e corev1.Event) bool {
				return e.Type == corev1.EventTypeWarning && e.Reason == tenancyv1alpha1.NoAdminReason
			})).To(BeTrue())
		}).WithContext(ctx).Should(Succeed())
		// The organization is reconciled again whenever a member changes; a member added now must
		// not bring the owner back.
		Expect(k8s.Create(ctx, newMember(name, "bob", "bob@"+name+".example", false, tenancyv1alpha1.KubernetesRoleView))).To(Succeed())
		expectMemberReady(ctx, name, "bob")
		Consistently(func(g Gomega) {
			err := k8s.Get(ctx, client.ObjectKeyFromObject(owner), &tenancyv1alpha1.OrganizationMember{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "owner's member made again: %v", err)
		}).WithContext(ctx).WithTimeout(3 * time.Second).Should(Succeed())

		By("a new owner, a group: made an admin member too")
		Expect(k8s.Patch(ctx, &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: name}},
			client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"owner":{"email":null,"username":null,"group":"oidc:`+name+`-owners"}}}`)))).To(Succeed())
		owner = expectMemberReady(ctx, name, "owner")
		Expect(owner.Spec.Group).To(Equal("oidc:" + name + "-owners"))
		Expect(owner.Spec.Admin).To(BeTrue())
		Eventually(func(g Gomega) {
			o := getOrg(g, name)
			g.Expect(o.Status.Owner).To(Equal(&tenancyv1alpha1.OwnerStatus{Subject: "Group:oidc:" + name + "-owners", Member: "owner"}))
			g.Expect(condition(o.Status.Conditions, tenancyv1alpha1.AdminMissingCondition).Status).To(Equal(metav1.ConditionFalse))
		}).WithContext(ctx).Should(Succeed())
	}, SpecTimeout(2*time.Minute))

	It("is taken as it is when a member is already bound as it", func(ctx SpecContext) {
		name := uniqueName("preowned")
		org := newOrganization(name, tenancyv1alpha1.DeletionPolicyCascade)
		Expect(k8s.Create(ctx, org)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) { _ = k8s.Delete(ctx, org) })
		expectOrgReady(ctx, name)
		Expect(condition(getOrg(Default, name).Status.Conditions, tenancyv1alpha1.AdminMissingCondition).Status).To(Equal(metav1.ConditionTrue))
		Expect(k8s.Create(ctx, newMember(name, "carol", "carol@"+name+".example", false, tenancyv1alpha1.KubernetesRoleEdit))).To(Succeed())
		expectMemberReady(ctx, name, "carol")

		Expect(k8s.Patch(ctx, &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: name}},
			client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"owner":{"email":"carol@`+name+`.example"}}}`)))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(getOrg(g, name).Status.Owner).To(Equal(&tenancyv1alpha1.OwnerStatus{Subject: "User:carol@" + name + ".example", Member: "carol"}))
		}).WithContext(ctx).Should(Succeed())
		members := &tenancyv1alpha1.OrganizationMemberList{}
		Expect(k8s.List(ctx, members, client.InNamespace(name))).To(Succeed())
		Expect(members.Items).To(HaveLen(1), "no second member for the owner")
		Expect(members.Items[0].Spec.Admin).To(BeFalse(), "the member is taken as it is")
	}, SpecTimeout(time.Minute))
})
