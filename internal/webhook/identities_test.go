package webhook_test

import (
	"context"
	"maps"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/test/testenv"
)

// Members that are groups and service accounts, and the users who act through them.
const (
	leadsGroup = "oidc:initrode-leads"
	dana       = "dana@sso.example"   // in leadsGroup, not a member herself
	milton     = "milton@sso.example" // in no group of initrode
	deployerSA = "system:serviceaccount:initrode-ci:deployer"
)

func groupMember(ns, name, group string, isAdmin bool, role tenancyv1alpha1.KubernetesRole) *tenancyv1alpha1.OrganizationMember {
	m := member(ns, name, "", isAdmin, role)
	m.Spec.Group = group
	return m
}

func serviceAccountMember(ns, name, saNamespace, saName string, isAdmin bool, role tenancyv1alpha1.KubernetesRole) *tenancyv1alpha1.OrganizationMember {
	m := member(ns, name, "", isAdmin, role)
	m.Spec.ServiceAccount = &tenancyv1alpha1.ServiceAccountSubject{Namespace: saNamespace, Name: saName}
	return m
}

var _ = Describe("Members that are groups and service accounts", Ordered, func() {
	BeforeAll(func(ctx SpecContext) {
		for _, name := range []string{"initrode", "vandelay"} {
			Expect(admin.Create(ctx, organization(name, tenancyv1alpha1.DeletionPolicyCascade))).To(Succeed())
		}
		Eventually(func(g Gomega) {
			for _, name := range []string{"initrode", "vandelay"} {
				g.Expect(admin.Get(ctx, client.ObjectKey{Name: name}, &corev1.Namespace{})).To(Succeed())
			}
		}).Should(Succeed())
		Expect(admin.Create(ctx, namespace("initrode-ci", orgLabel("initrode")))).To(Succeed())
		Expect(admin.Create(ctx, namespace("vandelay-ci", orgLabel("vandelay")))).To(Succeed())
		Expect(admin.Create(ctx, namespace("initrode-spare", nil))).To(Succeed())
		Expect(admin.Create(ctx, namespace("initrode-free", nil))).To(Succeed())
		Expect(admin.Create(ctx, groupMember("initrode", "leads", leadsGroup, true, tenancyv1alpha1.KubernetesRoleEdit))).To(Succeed())
		Expect(admin.Create(ctx, member("vandelay", "art", "art@vandelay.example", true, tenancyv1alpha1.KubernetesRoleAdmin))).To(Succeed())
		// Labelling namespaces takes the right to update them, which RBAC gives the group here.
		Expect(admin.Create(ctx, &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "initrode-namespaces"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "patch"}}},
		})).To(Succeed())
		Expect(admin.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "initrode-namespaces"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "initrode-namespaces"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: leadsGroup},
				{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: milton}},
		})).To(Succeed())
		// RBAC lets milton, and a user named like the group, write members: admission must still
		// refuse them, as neither is an admin member.
		Expect(admin.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: "initrode", Name: "member-writers"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "org-operator-organization-admin"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: milton},
				{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: leadsGroup}},
		})).To(Succeed())
		waitForQuiet(ctx)
	})

	It("lets a user administer the organization through a group member, within the group's role", func(ctx SpecContext) {
		lead := asUser(dana, leadsGroup)
		By("RBAC: the group's role in the organization's namespaces, nothing in another's")
		Eventually(func() error { return lead.List(ctx, &corev1.PodList{}, client.InNamespace("initrode-ci")) }).Should(Succeed())
		Expect(apierrors.IsForbidden(lead.List(ctx, &corev1.PodList{}, client.InNamespace("vandelay-ci")))).To(BeTrue())
		Expect(apierrors.IsForbidden(asUser(dana).List(ctx, &corev1.PodList{}, client.InNamespace("initrode-ci")))).To(BeTrue(),
			"without the group, dana has no access")

		By("adding members, a project and a namespace as an admin")
		Expect(lead.Create(ctx, member("initrode", "peter", "peter@initrode.example", false, tenancyv1alpha1.KubernetesRoleEdit))).To(Succeed())
		Expect(lead.Create(ctx, project("initrode", "tps", ""))).To(Succeed())
		Expect(patchLabelsAs(lead, "initrode-spare", func(l map[string]string) { maps.Copy(l, orgLabel("initrode")) })(ctx)).To(Succeed())

		By("a service account of one of the organization's namespaces, as a member")
		Expect(lead.Create(ctx, serviceAccountMember("initrode", "deployer", "initrode-ci", "deployer", true, tenancyv1alpha1.KubernetesRoleEdit))).To(Succeed())
		waitForQuiet(ctx)

		By("the service account administering the organization as that member")
		bot := asUser(deployerSA, "system:serviceaccounts", "system:serviceaccounts:initrode-ci")
		Expect(bot.List(ctx, &corev1.PodList{}, client.InNamespace("initrode-spare"))).To(Succeed())
		Expect(bot.Create(ctx, member("initrode", "samir", "samir@initrode.example", false, tenancyv1alpha1.KubernetesRoleView))).To(Succeed())
		Expect(apierrors.IsForbidden(bot.List(ctx, &corev1.PodList{}, client.InNamespace("vandelay-ci")))).To(BeTrue())
		waitForQuiet(ctx)
	})

	DescribeTable("refuses, and changes nothing",
		func(ctx SpecContext, attempt op, want string) {
			before := snapshot(ctx)
			err := attempt(ctx)
			Expect(err).To(HaveOccurred())
			Expect(apierrors.IsInvalid(err) || apierrors.IsForbidden(err)).To(BeTrue(), "unexpected error kind: %v", err)
			Expect(err.Error()).To(ContainSubstring(want))
			Expect(testenv.Changed(before, snapshot(ctx))).To(BeEmpty(), "the refused request changed the cluster")
		},
		Entry("a group admin granting a role above the group's", func(ctx context.Context) error {
			return asUser(dana, leadsGroup).Create(ctx, member("initrode", "bill", "bill@initrode.example", false, tenancyv1alpha1.KubernetesRoleAdmin))
		}, "cannot grant Admin"),
		Entry("a user outside the group adding a member", func(ctx context.Context) error {
			return asUser(milton).Create(ctx, member("initrode", "bill", "bill@initrode.example", false, tenancyv1alpha1.KubernetesRoleView))
		}, "is not an admin of organization initrode"),
		Entry("a user whose name is the group's", func(ctx context.Context) error {
			return asUser(leadsGroup).Create(ctx, member("initrode", "bill", "bill@initrode.example", false, tenancyv1alpha1.KubernetesRoleView))
		}, "is not an admin of organization initrode"),
		Entry("a user outside the group labelling a namespace into the organization", func(ctx context.Context) error {
			return patchLabelsAs(asUser(milton), "initrode-free", func(l map[string]string) { maps.Copy(l, orgLabel("initrode")) })(ctx)
		}, "is not an admin of organization initrode"),
		Entry("a group admin of initrode adding a member to vandelay", func(ctx context.Context) error {
			return asUser(dana, leadsGroup).Create(ctx, member("vandelay", "mole", "mole@initrode.example", false, tenancyv1alpha1.KubernetesRoleView))
		}, `cannot create resource "organizationmembers" in API group "tenancy.orgoperator.io" in the namespace "vandelay"`),
		Entry("a service account of another organization as a member", func(ctx context.Context) error {
			return asUser(dana, leadsGroup).Create(ctx, serviceAccountMember("initrode", "spy", "vandelay-ci", "default", false, tenancyv1alpha1.KubernetesRoleView))
		}, "namespace vandelay-ci is not a namespace of organization initrode"),
		Entry("a service account of a namespace of no organization, even by a platform admin", func(ctx context.Context) error {
			return admin.Create(ctx, serviceAccountMember("initrode", "spy", "kube-system", "default", false, tenancyv1alpha1.KubernetesRoleView))
		}, "namespace kube-system is not a namespace of organization initrode"),
		Entry("vandelay's admin naming her organization's service account in initrode", func(ctx context.Context) error {
			return asUser("art@vandelay.example").Create(ctx, serviceAccountMember("initrode", "spy", "vandelay-ci", "default", true, tenancyv1alpha1.KubernetesRoleAdmin))
		}, `cannot create resource "organizationmembers" in API group "tenancy.orgoperator.io" in the namespace "initrode"`),
		Entry("a second member for the same group", func(ctx context.Context) error {
			return admin.Create(ctx, groupMember("initrode", "leads2", leadsGroup, false, tenancyv1alpha1.KubernetesRoleView))
		}, "spec.group: Duplicate value"),
		Entry("a second member for the same service account", func(ctx context.Context) error {
			return admin.Create(ctx, serviceAccountMember("initrode", "deployer2", "initrode-ci", "deployer", false, tenancyv1alpha1.KubernetesRoleView))
		}, "spec.serviceAccount: Duplicate value"),
		Entry("a user member whose username another member is bound as", func(ctx context.Context) error {
			m := member("initrode", "peter2", "peter.two@initrode.example", false, tenancyv1alpha1.KubernetesRoleView)
			m.Spec.Username = "peter@initrode.example"
			return admin.Create(ctx, m)
		}, "spec.username: Duplicate value"),
		Entry("moving a service account member out of the organization", updateMember(platformAdmin, "initrode", "deployer", func(m *tenancyv1alpha1.OrganizationMember) {
			m.Spec.ServiceAccount.Namespace = "vandelay-ci"
		}), "not a namespace of organization initrode"),
		Entry("a system: group, refused by the schema", func(ctx context.Context) error {
			return admin.Create(ctx, groupMember("initrode", "everyone", "system:authenticated", false, tenancyv1alpha1.KubernetesRoleView))
		}, "group cannot be a system: group"),
	)

	It("counts admins of every kind for the last-admin rule", func(ctx SpecContext) {
		By("the service account admin removed, the group is the last admin")
		Expect(admin.Delete(ctx, member("initrode", "deployer", "", false, ""))).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(admin.Get(ctx, client.ObjectKey{Namespace: "initrode", Name: "deployer"}, &tenancyv1alpha1.OrganizationMember{}))
		}).Should(BeTrue())
		before := snapshot(ctx)
		err := updateMember(platformAdmin, "initrode", "leads", func(m *tenancyv1alpha1.OrganizationMember) { m.Spec.Admin = false })(ctx)
		Expect(err).To(MatchError(ContainSubstring("leads is the last admin of organization initrode")))
		Expect(admin.Delete(ctx, member("initrode", "leads", "", false, ""))).To(MatchError(ContainSubstring("leads is the last admin")))
		Expect(testenv.Changed(before, snapshot(ctx))).To(BeEmpty())
	})
})

var _ = Describe("An organization's owner, through admission", func() {
	It("is refused by maxMembers like anyone, reported as OwnerNotAdded, and added once the quota allows", func(ctx SpecContext) {
		org := organization("hooli", tenancyv1alpha1.DeletionPolicyCascade)
		org.Spec.Quotas = &tenancyv1alpha1.Quotas{MaxMembers: ptr(int32(1))}
		Expect(admin.Create(ctx, org)).To(Succeed())
		// Gone before the next spec: a namespace terminating meanwhile would change under other
		// specs' snapshots of what a refusal may not change.
		DeferCleanup(func(ctx SpecContext) {
			Expect(client.IgnoreNotFound(admin.Delete(ctx, org))).To(Succeed())
			Eventually(func() bool {
				return apierrors.IsNotFound(admin.Get(ctx, client.ObjectKey{Name: "hooli"}, &corev1.Namespace{}))
			}, 2*time.Minute).Should(BeTrue())
		})
		Eventually(func() error { return admin.Get(ctx, client.ObjectKey{Name: "hooli"}, &corev1.Namespace{}) }).Should(Succeed())
		Expect(admin.Create(ctx, member("hooli", "gilfoyle", "gilfoyle@hooli.example", false, tenancyv1alpha1.KubernetesRoleView))).To(Succeed())
		Expect(admin.Patch(ctx, &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "hooli"}},
			client.RawPatch(types.MergePatchType, []byte(`{"spec":{"owner":{"email":"gavin@hooli.example"}}}`)))).To(Succeed())
		Eventually(func(g Gomega) {
			o := get(ctx, client.ObjectKey{Name: "hooli"}, &tenancyv1alpha1.Organization{})
			stalled := meta.FindStatusCondition(o.Status.Conditions, tenancyv1alpha1.StalledCondition)
			g.Expect(stalled).NotTo(BeNil())
			g.Expect(stalled.Reason).To(Equal(tenancyv1alpha1.OwnerNotAddedReason))
			g.Expect(stalled.Message).To(ContainSubstring("maxMembers"))
			g.Expect(o.Status.Owner).To(BeNil())
			g.Expect(meta.IsStatusConditionTrue(o.Status.Conditions, tenancyv1alpha1.AdminMissingCondition)).To(BeTrue())
		}).Should(Succeed())
		members := &tenancyv1alpha1.OrganizationMemberList{}
		Expect(admin.List(ctx, members, client.InNamespace("hooli"))).To(Succeed())
		Expect(members.Items).To(HaveLen(1))

		By("room for one more member")
		Expect(admin.Patch(ctx, &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "hooli"}},
			client.RawPatch(types.MergePatchType, []byte(`{"spec":{"quotas":{"maxMembers":2}}}`)))).To(Succeed())
		Eventually(func(g Gomega) {
			o := get(ctx, client.ObjectKey{Name: "hooli"}, &tenancyv1alpha1.Organization{})
			g.Expect(o.Status.Owner).To(Equal(&tenancyv1alpha1.OwnerStatus{Subject: "User:gavin@hooli.example", Member: "owner"}))
			g.Expect(meta.IsStatusConditionTrue(o.Status.Conditions, tenancyv1alpha1.ReadyCondition)).To(BeTrue())
			g.Expect(meta.FindStatusCondition(o.Status.Conditions, tenancyv1alpha1.StalledCondition)).To(BeNil())
		}).Should(Succeed())
		owner := get(ctx, client.ObjectKey{Namespace: "hooli", Name: "owner"}, &tenancyv1alpha1.OrganizationMember{})
		Expect(owner.Spec.Admin).To(BeTrue())
	})
})

// patchLabelsAs changes a namespace's labels through c.
func patchLabelsAs(c client.Client, name string, change func(map[string]string)) op {
	return func(ctx context.Context) error {
		ns := get(ctx, client.ObjectKey{Name: name}, &corev1.Namespace{})
		before := ns.DeepCopy()
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		change(ns.Labels)
		return c.Patch(ctx, ns, client.MergeFrom(before))
	}
}
