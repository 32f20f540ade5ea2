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

// The world every spec starts from: two organizations with their admins and members, a
// namespace that joined acme by label with a pod in it, and namespaces that belong to no one.
// alice and carol may create and label namespaces ("self-service namespaces"), so that the
// namespace webhook, not RBAC, is what stops them.
const (
	alice = "alice@acme.example" // admin of acme, kubernetesRole Admin
	bob   = "bob@acme.example"   // member of acme, View
	carol = "carol"              // admin of globex (username set), Edit
)

func member(ns, name, email string, isAdmin bool, role tenancyv1alpha1.KubernetesRole) *tenancyv1alpha1.OrganizationMember {
	return &tenancyv1alpha1.OrganizationMember{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       tenancyv1alpha1.OrganizationMemberSpec{Email: email, Admin: isAdmin, KubernetesRole: role},
	}
}

func organization(name string, policy tenancyv1alpha1.DeletionPolicy) *tenancyv1alpha1.Organization {
	return &tenancyv1alpha1.Organization{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       tenancyv1alpha1.OrganizationSpec{DisplayName: name, DeletionPolicy: policy},
	}
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func ptr[T any](v T) *T { return &v }

func orgLabel(org string) map[string]string {
	return map[string]string{tenancyv1alpha1.OrganizationLabel: org}
}

func buildWorld(ctx context.Context) {
	GinkgoHelper()
	Expect(admin.Create(ctx, &tenancyv1alpha1.OrganizationPlan{
		ObjectMeta: metav1.ObjectMeta{Name: "free"},
		Spec:       tenancyv1alpha1.OrganizationPlanSpec{DisplayName: "Free", Free: true},
	})).To(Succeed())
	Expect(admin.Create(ctx, &tenancyv1alpha1.OrganizationPlan{
		ObjectMeta: metav1.ObjectMeta{Name: "small"},
		Spec:       tenancyv1alpha1.OrganizationPlanSpec{DisplayName: "Small", Quotas: tenancyv1alpha1.Quotas{MaxAdmins: ptr(int32(1))}},
	})).To(Succeed())
	Expect(admin.Create(ctx, organization("acme", tenancyv1alpha1.DeletionPolicyBlock))).To(Succeed())
	globex := organization("globex", tenancyv1alpha1.DeletionPolicyCascade)
	end := metav1.NewTime(time.Now().Add(365 * 24 * time.Hour))
	globex.Spec.Subscription = &tenancyv1alpha1.Subscription{Plan: "small", EndDate: &end}
	Expect(admin.Create(ctx, globex)).To(Succeed())
	tiny := organization("tiny", tenancyv1alpha1.DeletionPolicyCascade)
	tiny.Spec.Quotas = &tenancyv1alpha1.Quotas{MaxMembers: ptr(int32(1)), MaxNamespaces: ptr(int32(1))}
	Expect(admin.Create(ctx, tiny)).To(Succeed())
	Expect(admin.Create(ctx, namespace("initech", nil))).To(Succeed())
	Expect(admin.Create(ctx, namespace("unowned", nil))).To(Succeed())
	Expect(admin.Create(ctx, namespace("acme-dev", orgLabel("acme")))).To(Succeed())
	Expect(admin.Create(ctx, namespace("globex-prod", orgLabel("globex")))).To(Succeed())
	Eventually(func(g Gomega) {
		for _, name := range []string{"acme", "globex", "tiny"} {
			g.Expect(admin.Get(ctx, client.ObjectKey{Name: name}, &corev1.Namespace{})).To(Succeed())
		}
	}).Should(Succeed())
	Expect(admin.Create(ctx, member("tiny", "tina", "tina@tiny.example", true, tenancyv1alpha1.KubernetesRoleAdmin))).To(Succeed())
	Expect(admin.Create(ctx, member("acme", "alice", alice, true, tenancyv1alpha1.KubernetesRoleAdmin))).To(Succeed())
	Expect(admin.Create(ctx, member("acme", "bob", bob, false, tenancyv1alpha1.KubernetesRoleView))).To(Succeed())
	carolMember := member("globex", "carol", "carol@globex.example", true, tenancyv1alpha1.KubernetesRoleEdit)
	carolMember.Spec.Username = carol
	Expect(admin.Create(ctx, carolMember)).To(Succeed())
	Expect(admin.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "acme-dev", Name: "worker"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	})).To(Succeed())

	selfService := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "namespace-self-service"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "create", "update", "patch"}}},
	}
	Expect(admin.Create(ctx, selfService)).To(Succeed())
	Expect(admin.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "namespace-self-service"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: selfService.Name},
		Subjects: []rbacv1.Subject{
			{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: alice},
			{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: carol},
		},
	})).To(Succeed())
	waitForQuiet(ctx)
}

// waitForQuiet waits until every organization and member is Ready for its generation, and the
// members' RoleBindings exist: from then on the operator writes nothing until something changes.
func waitForQuiet(ctx context.Context) {
	GinkgoHelper()
	Eventually(func() error { return testenv.Settled(ctx, admin) }, 2*time.Minute).Should(Succeed())
	// Then until nothing moves: a reconcile queued by the last status write may still be running,
	// and the operator passes member and pod events to organizations a second later.
	Eventually(func(g Gomega) {
		first := snapshot(ctx)
		time.Sleep(1500 * time.Millisecond)
		g.Expect(testenv.Changed(first, snapshot(ctx))).To(BeEmpty())
	}, 2*time.Minute).Should(Succeed())
}

// snapshot records the resourceVersion of everything a tenant could try to change.
func snapshot(ctx context.Context) map[string]string {
	GinkgoHelper()
	out, err := testenv.Versions(ctx, admin, map[string]client.ObjectList{
		"Organization":       &tenancyv1alpha1.OrganizationList{},
		"OrganizationMember": &tenancyv1alpha1.OrganizationMemberList{},
		"Namespace":          &corev1.NamespaceList{},
		"RoleBinding":        &rbacv1.RoleBindingList{},
		"ClusterRoleBinding": &rbacv1.ClusterRoleBindingList{},
		"Pod":                &corev1.PodList{},
	}, nil)
	Expect(err).NotTo(HaveOccurred())
	return out
}

// platformAdmin names the cluster admin in the operations below.
const platformAdmin = ""

// as returns a client acting as user, or the cluster admin for platformAdmin.
func as(user string) client.Client {
	GinkgoHelper()
	if user == platformAdmin {
		return admin
	}
	c, err := env.ClientAs(user)
	Expect(err).NotTo(HaveOccurred())
	return c
}

func get[T client.Object](ctx context.Context, key client.ObjectKey, obj T) T {
	GinkgoHelper()
	Expect(admin.Get(ctx, key, obj)).To(Succeed())
	return obj
}

// op is an operation a user attempts.
type op func(ctx context.Context) error

func patchLabels(user, name string, change func(map[string]string)) op {
	return func(ctx context.Context) error { return patchLabelsAs(as(user), name, change)(ctx) }
}

func updateMember(user, ns, name string, change func(*tenancyv1alpha1.OrganizationMember)) op {
	return func(ctx context.Context) error {
		c := as(user)
		m := get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &tenancyv1alpha1.OrganizationMember{})
		change(m)
		return c.Update(ctx, m)
	}
}

func create(user string, obj client.Object) op {
	return func(ctx context.Context) error { return as(user).Create(ctx, obj) }
}

var _ = Describe("Admission", Ordered, func() {
	BeforeAll(func(ctx SpecContext) { buildWorld(ctx) })

	DescribeTable("rejects, with a message naming the rule, and changes nothing",
		func(ctx SpecContext, attempt op, want string) {
			before := snapshot(ctx)
			err := attempt(ctx)
			Expect(err).To(HaveOccurred())
			Expect(apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsBadRequest(err)).To(BeTrue(), "unexpected error kind: %v", err)
			Expect(err.Error()).To(ContainSubstring(want))
			Expect(testenv.Changed(before, snapshot(ctx))).To(BeEmpty(), "the rejected request changed the cluster")
		},

		// Organizations, as a platform admin: the webhook's rules beyond the schema.
		Entry("an organization named after an existing namespace", func(ctx context.Context) error {
			return admin.Create(ctx, organization("initech", ""))
		}, "namespace initech already exists and is not an organization's home"),
		Entry("an organization named after a system namespace", func(ctx context.Context) error {
			return admin.Create(ctx, organization("kube-tenants", ""))
		}, "metadata.name is reserved for the system"),
		Entry("a subscription that ends before it starts", func(ctx context.Context) error {
			o := organization("dated", "")
			start, end := metav1.NewTime(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)), metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			o.Spec.Subscription = &tenancyv1alpha1.Subscription{StartDate: &start, EndDate: &end}
			return admin.Create(ctx, o)
		}, "subscription.endDate must be after subscription.startDate"),
		Entry("deleting an organization with deletionPolicy Block while a pod runs", func(ctx context.Context) error {
			return admin.Delete(ctx, organization("acme", ""))
		}, "deletionPolicy is Block and the organization still holds workloads: namespace acme-dev has 1 pods"),

		// Plans and quotas.
		Entry("a paid plan without an end date", func(ctx context.Context) error {
			o := organization("paidless", "")
			o.Spec.Subscription = &tenancyv1alpha1.Subscription{Plan: "small"}
			return admin.Create(ctx, o)
		}, "spec.subscription.endDate: Required value: plan small is paid: set the date the subscription ends"),
		Entry("a free plan with an end date", func(ctx context.Context) error {
			o := organization("freeend", "")
			end := metav1.NewTime(time.Now().Add(24 * time.Hour))
			o.Spec.Subscription = &tenancyv1alpha1.Subscription{Plan: "free", EndDate: &end}
			return admin.Create(ctx, o)
		}, "spec.subscription.endDate: Forbidden: plan free is free and never ends: remove endDate"),
		Entry("moving an organization to a paid plan without an end date", func(ctx context.Context) error {
			o := get(ctx, client.ObjectKey{Name: "acme"}, &tenancyv1alpha1.Organization{})
			o.Spec.Subscription = &tenancyv1alpha1.Subscription{Plan: "small"}
			return admin.Update(ctx, o)
		}, "plan small is paid"),
		Entry("lowering maxMembers below the members an organization has", func(ctx context.Context) error {
			o := get(ctx, client.ObjectKey{Name: "acme"}, &tenancyv1alpha1.Organization{})
			o.Spec.Quotas = &tenancyv1alpha1.Quotas{MaxMembers: ptr(int32(1))}
			return admin.Update(ctx, o)
		}, "spec.quotas.maxMembers: Invalid value: 1: the organization has 2 already; annotate it tenancy.orgoperator.io/force-quota=true"),
		Entry("a member beyond maxMembers", create(platformAdmin, member("tiny", "tom", "tom@tiny.example", false, "")),
			"organization tiny has 1 of its maxMembers quota of 1; remove one first or ask a platform admin to raise the quota"),
		Entry("an admin beyond the plan's maxAdmins", create(platformAdmin, member("globex", "gus", "gus@globex.example", true, "")),
			"organization globex has 1 of its maxAdmins quota of 1"),
		Entry("a namespace beyond maxNamespaces, even for a platform admin", create(platformAdmin, namespace("tiny-more", orgLabel("tiny"))),
			"organization tiny has 1 of its maxNamespaces quota of 1; ask a platform admin to raise it"),

		// Members: the webhook's rules.
		Entry("a member outside any organization", create(platformAdmin, member("unowned", "eve", "eve@example.com", false, "")),
			"namespace unowned is not the home namespace of an existing organization"),
		Entry("a member in an organization namespace that is not its home", create(platformAdmin, member("acme-dev", "eve", "eve@example.com", false, "")),
			"namespace acme-dev is not the home namespace of an existing organization"),
		Entry("a second member with the same email, in another case", create(platformAdmin, member("acme", "alice2", "ALICE@acme.example", false, "")),
			"spec.email: Duplicate value: \"ALICE@acme.example (already used by member alice)\""),
		Entry("changing an email to one already used", updateMember(platformAdmin, "acme", "bob", func(m *tenancyv1alpha1.OrganizationMember) { m.Spec.Email = alice }),
			"already used by member alice"),
		Entry("an email the schema lets through but RFC 5322 does not", create(platformAdmin, member("acme", "dots", "a..b@acme.example", false, "")),
			"spec.email: Invalid value: \"a..b@acme.example\": must be a plain email address"),
		Entry("a username with surrounding white space", func(ctx context.Context) error {
			m := member("acme", "spaced", "spaced@acme.example", false, "")
			m.Spec.Username = " spaced"
			return admin.Create(ctx, m)
		}, "spec.username: Invalid value: \" spaced\": must not contain surrounding white space"),
		Entry("a role that does not exist", create(platformAdmin, member("acme", "owner", "owner@acme.example", false, "Owner")),
			`spec.kubernetesRole: Unsupported value: "Owner"`),
		Entry("demoting the last admin", updateMember(platformAdmin, "acme", "alice", func(m *tenancyv1alpha1.OrganizationMember) { m.Spec.Admin = false }),
			"alice is the last admin of organization acme and cannot be demoted"),
		Entry("removing the last admin", func(ctx context.Context) error {
			return admin.Delete(ctx, member("acme", "alice", "", false, ""))
		}, "alice is the last admin of organization acme and cannot be removed"),
		Entry("the last admin demoting herself", updateMember(alice, "acme", "alice", func(m *tenancyv1alpha1.OrganizationMember) { m.Spec.Admin = false }),
			"alice is the last admin of organization acme and cannot be demoted"),

		// alice, admin of acme, against globex and the platform.
		Entry("alice adding a member to globex", create(alice, member("globex", "mole", "mole@acme.example", true, tenancyv1alpha1.KubernetesRoleAdmin)),
			`organizationmembers.tenancy.orgoperator.io is forbidden: User "alice@acme.example" cannot create resource "organizationmembers" in API group "tenancy.orgoperator.io" in the namespace "globex"`),
		Entry("alice reading globex's members", func(ctx context.Context) error {
			return as(alice).List(ctx, &tenancyv1alpha1.OrganizationMemberList{}, client.InNamespace("globex"))
		}, `cannot list resource "organizationmembers" in API group "tenancy.orgoperator.io" in the namespace "globex"`),
		Entry("alice promoting herself in globex's member list", updateMember(alice, "globex", "carol", func(m *tenancyv1alpha1.OrganizationMember) { m.Spec.Email = alice }),
			`cannot update resource "organizationmembers" in API group "tenancy.orgoperator.io" in the namespace "globex"`),
		Entry("alice reading the globex organization", func(ctx context.Context) error {
			return as(alice).Get(ctx, client.ObjectKey{Name: "globex"}, &tenancyv1alpha1.Organization{})
		}, `cannot get resource "organizations" in API group "tenancy.orgoperator.io" at the cluster scope`),
		Entry("alice raising her own organization's quota or subscription", func(ctx context.Context) error {
			o := get(ctx, client.ObjectKey{Name: "acme"}, &tenancyv1alpha1.Organization{})
			o.Spec.Subscription = &tenancyv1alpha1.Subscription{Plan: "enterprise"}
			return as(alice).Update(ctx, o)
		}, `cannot update resource "organizations" in API group "tenancy.orgoperator.io" at the cluster scope`),
		Entry("alice creating an organization", create(alice, organization("acme-two", "")),
			`cannot create resource "organizations"`),
		Entry("alice labelling a free namespace into globex", patchLabels(alice, "unowned", func(l map[string]string) { maps.Copy(l, orgLabel("globex")) }),
			`user "alice@acme.example" is not an admin of organization globex; only its admins and platform admins may add namespaces to it`),
		Entry("alice creating a namespace inside globex", create(alice, namespace("trojan", orgLabel("globex"))),
			`user "alice@acme.example" is not an admin of organization globex`),
		Entry("alice moving acme's namespace to globex", patchLabels(alice, "acme-dev", func(l map[string]string) { maps.Copy(l, orgLabel("globex")) }),
			"namespaces cannot be moved between organizations (acme to globex) by tenants"),
		Entry("alice taking globex's namespace out of globex", patchLabels(alice, "globex-prod", func(l map[string]string) { delete(l, tenancyv1alpha1.OrganizationLabel) }),
			`user "alice@acme.example" is not an admin of organization globex; only its admins and platform admins may remove namespaces from it`),
		Entry("alice unmarking her own home namespace", patchLabels(alice, "acme", func(l map[string]string) { delete(l, tenancyv1alpha1.HomeNamespaceLabel) }),
			"only platform admins may change the labels of an organization's home namespace"),
		Entry("alice detaching her home namespace from acme", patchLabels(alice, "acme", func(l map[string]string) { delete(l, tenancyv1alpha1.OrganizationLabel) }),
			"only platform admins may change the labels of an organization's home namespace"),
		Entry("alice binding cluster-admin to herself", create(alice, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: "escalate"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: alice}},
		}), `is attempting to grant RBAC permissions not currently held`),
		Entry("alice binding herself in globex's namespace", create(alice, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: "globex-prod", Name: "sneak"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "admin"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: alice}},
		}), `cannot create resource "rolebindings" in API group "rbac.authorization.k8s.io" in the namespace "globex-prod"`),
		Entry("alice editing the operator's RoleBinding to widen it", func(ctx context.Context) error {
			rb := get(ctx, client.ObjectKey{Namespace: "acme", Name: "org-operator:view"}, &rbacv1.RoleBinding{})
			rb.Subjects = append(rb.Subjects, rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "carol"})
			rb.RoleRef.Name = "cluster-admin"
			return as(alice).Update(ctx, rb)
		}, `user "alice@acme.example" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held`),

		// bob, View member of acme: read only.
		Entry("bob adding a member", create(bob, member("acme", "friend", "friend@acme.example", false, "")),
			`User "bob@acme.example" cannot create resource "organizationmembers"`),
		Entry("bob promoting himself", updateMember(bob, "acme", "bob", func(m *tenancyv1alpha1.OrganizationMember) { m.Spec.Admin = true }),
			`User "bob@acme.example" cannot update resource "organizationmembers"`),
		Entry("bob deleting a pod", func(ctx context.Context) error {
			return as(bob).Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "acme-dev", Name: "worker"}})
		}, `User "bob@acme.example" cannot delete resource "pods" in API group "" in the namespace "acme-dev"`),
		Entry("bob labelling a namespace", patchLabels(bob, "unowned", func(l map[string]string) { maps.Copy(l, orgLabel("acme")) }),
			`User "bob@acme.example" cannot patch resource "namespaces"`),

		// carol, admin of globex, against acme.
		Entry("carol reading acme's members", func(ctx context.Context) error {
			return as(carol).Get(ctx, types.NamespacedName{Namespace: "acme", Name: "alice"}, &tenancyv1alpha1.OrganizationMember{})
		}, `User "carol" cannot get resource "organizationmembers" in API group "tenancy.orgoperator.io" in the namespace "acme"`),
		Entry("carol deleting acme's admin", func(ctx context.Context) error {
			return as(carol).Delete(ctx, member("acme", "alice", "", false, ""))
		}, `User "carol" cannot delete resource "organizationmembers"`),
	)

	It("lets tenants do what is theirs", func(ctx SpecContext) {
		By("alice adding a member to acme, who gets bound")
		Expect(as(alice).Create(ctx, member("acme", "dave", "dave@acme.example", true, tenancyv1alpha1.KubernetesRoleEdit))).To(Succeed())
		Eventually(func(g Gomega) {
			m := &tenancyv1alpha1.OrganizationMember{}
			g.Expect(admin.Get(ctx, client.ObjectKey{Namespace: "acme", Name: "dave"}, m)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(m.Status.Conditions, tenancyv1alpha1.ReadyCondition)).To(BeTrue())
		}).Should(Succeed())

		By("alice demoting herself now that dave is an admin too")
		Expect(updateMember(alice, "acme", "alice", func(m *tenancyv1alpha1.OrganizationMember) { m.Spec.Admin = false })(ctx)).To(Succeed())

		By("dave, now the last admin, cannot be removed; alice, no longer admin, can")
		Expect(admin.Delete(ctx, member("acme", "dave", "", false, ""))).To(MatchError(ContainSubstring("dave is the last admin")))
		Expect(admin.Delete(ctx, member("acme", "alice", "", false, ""))).To(Succeed())

		By("dave labelling a free namespace into acme")
		Expect(admin.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "namespace-self-service-dave"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "namespace-self-service"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "dave@acme.example"}},
		})).To(Succeed())
		Expect(patchLabels("dave@acme.example", "unowned", func(l map[string]string) { maps.Copy(l, orgLabel("acme")) })(ctx)).To(Succeed())
		Eventually(func(g Gomega) {
			o := &tenancyv1alpha1.Organization{}
			g.Expect(admin.Get(ctx, client.ObjectKey{Name: "acme"}, o)).To(Succeed())
			g.Expect(o.Status.Namespaces).To(ContainElement("unowned"))
		}).Should(Succeed())

		By("bob reading his organization and the pods of its namespaces")
		Eventually(func() error {
			return as(bob).Get(ctx, client.ObjectKey{Name: "acme"}, &tenancyv1alpha1.Organization{})
		}).Should(Succeed())
		Expect(as(bob).List(ctx, &corev1.PodList{}, client.InNamespace("acme-dev"))).To(Succeed())
		Expect(as(bob).List(ctx, &tenancyv1alpha1.OrganizationMemberList{}, client.InNamespace("acme"))).To(Succeed(),
			"members are readable through the aggregated view role")

		By("a platform admin lowering a quota below usage, with the force annotation")
		Eventually(func() error {
			o := get(ctx, client.ObjectKey{Name: "acme"}, &tenancyv1alpha1.Organization{})
			o.Annotations = map[string]string{tenancyv1alpha1.ForceQuotaAnnotation: "true"}
			o.Spec.Quotas = &tenancyv1alpha1.Quotas{MaxMembers: ptr(int32(1))}
			return admin.Update(ctx, o)
		}).Should(Succeed())

		By("a platform admin moving a namespace between organizations")
		Expect(patchLabels(platformAdmin, "unowned", func(l map[string]string) { maps.Copy(l, orgLabel("globex")) })(ctx)).To(Succeed())
	})

	It("lets an organization with deletionPolicy Block go once its workloads are gone", func(ctx SpecContext) {
		Expect(admin.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "acme-dev", Name: "worker"}})).To(Succeed())
		Eventually(func() error {
			return admin.Delete(ctx, organization("acme", ""))
		}).Should(Succeed())
		Eventually(func() error {
			return admin.Get(ctx, client.ObjectKey{Name: "acme"}, &tenancyv1alpha1.Organization{})
		}).Should(Satisfy(apierrors.IsNotFound))
		By("its members, the last admin among them, going with the home namespace")
		Eventually(func() error {
			return admin.Get(ctx, client.ObjectKey{Name: "acme"}, &corev1.Namespace{})
		}, time.Minute).Should(Satisfy(apierrors.IsNotFound))
	})
})
