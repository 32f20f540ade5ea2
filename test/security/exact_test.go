package security_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/test/testenv"
)

// newOrganization creates an organization of its own for a spec, waits for its home namespace and
// returns its name.
func newOrganization(ctx context.Context, quotas *tenancyv1alpha1.Quotas) string {
	GinkgoHelper()
	name := racePrefix + utilrand.String(6)
	Expect(admin.Create(ctx, &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: tenancyv1alpha1.OrganizationSpec{DisplayName: name, DeletionPolicy: tenancyv1alpha1.DeletionPolicyCascade, Quotas: quotas}})).To(Succeed())
	Eventually(func() error { return admin.Get(ctx, client.ObjectKey{Name: name}, &corev1.Namespace{}) }).Should(Succeed())
	DeferCleanup(func(ctx SpecContext) {
		Expect(client.IgnoreNotFound(admin.Delete(ctx, &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: name}}))).To(Succeed())
	})
	return name
}

// settled waits until the operator has bound every member of org and writes nothing more.
func settled(ctx context.Context, org string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		for _, m := range members(ctx, org) {
			g.Expect(meta.IsStatusConditionTrue(m.Status.Conditions, tenancyv1alpha1.ReadyCondition)).To(BeTrue(), "member %s", m.Name)
			g.Expect(m.Status.ObservedGeneration).To(Equal(m.Generation))
		}
	}).Should(Succeed())
	Eventually(func(g Gomega) {
		first := versions(members(ctx, org))
		time.Sleep(time.Second)
		g.Expect(versions(members(ctx, org))).To(Equal(first))
	}).Should(Succeed())
}

func versions(ms []tenancyv1alpha1.OrganizationMember) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		out[m.Name] = m.ResourceVersion
	}
	return out
}

func members(ctx context.Context, org string) []tenancyv1alpha1.OrganizationMember {
	GinkgoHelper()
	l := &tenancyv1alpha1.OrganizationMemberList{}
	Expect(admin.List(ctx, l, client.InNamespace(org))).To(Succeed())
	return l.Items
}

// live counts the members not being deleted, and the admins among them.
func live(ms []tenancyv1alpha1.OrganizationMember) (count, admins int) {
	for _, m := range ms {
		if m.DeletionTimestamp.IsZero() {
			count++
			if m.Spec.Admin {
				admins++
			}
		}
	}
	return count, admins
}

// createAdmins creates n admins of org, a0 to a<n-1>, with the emails a<i>@<org>.example.
func createAdmins(ctx context.Context, org string, n int) {
	GinkgoHelper()
	for i := range n {
		Expect(admin.Create(ctx, member(org, fmt.Sprintf("a%d", i), fmt.Sprintf("a%d@%s.example", i, org), true, tenancyv1alpha1.KubernetesRoleAdmin))).To(Succeed())
	}
}

// concurrently runs n requests at once and returns how many succeeded; every failure must be a
// refusal.
func concurrently(n int, do func(i int) error) int {
	GinkgoHelper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer GinkgoRecover()
			defer wg.Done()
			<-start
			errs[i] = do(i)
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
			continue
		}
		Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "not a refusal: %v", err)
		GinkgoWriter.Println("refused:", err)
	}
	return ok
}

var _ = Describe("Rules that must hold under concurrency", func() {
	It("keeps one admin when a single request deletes the whole collection", func(ctx SpecContext) {
		org := newOrganization(ctx, nil)
		for i := range 3 {
			Expect(admin.Create(ctx, member(org, fmt.Sprintf("admin%d", i), fmt.Sprintf("admin%d@%s.example", i, org), true, tenancyv1alpha1.KubernetesRoleAdmin))).To(Succeed())
		}
		Expect(admin.Create(ctx, member(org, "viewer", "viewer@"+org+".example", false, ""))).To(Succeed())

		By("a platform admin deleting every member with one DELETE on the collection")
		err := admin.DeleteAllOf(ctx, &tenancyv1alpha1.OrganizationMember{}, client.InNamespace(org))
		Expect(err).To(MatchError(ContainSubstring("is the last admin of organization " + org)))
		_, admins := live(members(ctx, org))
		Expect(admins).To(Equal(1))

		settled(ctx, org)
		By("the remaining admin trying the same: organization admins may not delete collections")
		var last string
		for _, m := range members(ctx, org) {
			if m.DeletionTimestamp.IsZero() && m.Spec.Admin {
				last = m.Spec.Email
			}
		}
		ac, err := env.ClientAs(last)
		Expect(err).NotTo(HaveOccurred())
		Expect(ac.DeleteAllOf(ctx, &tenancyv1alpha1.OrganizationMember{}, client.InNamespace(org))).To(MatchError(ContainSubstring(`cannot deletecollection resource "organizationmembers"`)))
		_, admins = live(members(ctx, org))
		Expect(admins).To(Equal(1))
	})

	It("keeps one admin when every admin is deleted at once", func(ctx SpecContext) {
		org := newOrganization(ctx, nil)
		const n = 20
		createAdmins(ctx, org, n)
		deleted := concurrently(n, func(i int) error {
			return admin.Delete(ctx, member(org, fmt.Sprintf("a%d", i), "", false, ""))
		})
		Expect(deleted).To(Equal(n - 1))
		_, admins := live(members(ctx, org))
		Expect(admins).To(Equal(1))
	})

	It("keeps one admin when every admin is demoted at once, by each other", func(ctx SpecContext) {
		org := newOrganization(ctx, nil)
		const n = 20
		createAdmins(ctx, org, n)
		settled(ctx, org)
		demoted := concurrently(n, func(i int) error {
			// Each admin demotes the next one, so that every request is also an admin's own.
			c, err := env.ClientAs(fmt.Sprintf("a%d@%s.example", i, org))
			Expect(err).NotTo(HaveOccurred())
			target := fmt.Sprintf("a%d", (i+1)%n)
			return c.Patch(ctx, member(org, target, "", false, ""), client.RawPatch(types.MergePatchType, []byte(`{"spec":{"admin":false}}`)))
		})
		_, admins := live(members(ctx, org))
		Expect(admins).To(BeNumerically(">=", 1))
		Expect(demoted).To(Equal(n - admins))
	})

	It("stores exactly maxMembers, maxAdmins and one member per email when 20 requests race", func(ctx SpecContext) {
		org := newOrganization(ctx, &tenancyv1alpha1.Quotas{MaxMembers: ptr(int32(7)), MaxAdmins: ptr(int32(3))})
		Expect(admin.Create(ctx, member(org, "owner", "owner@"+org+".example", true, tenancyv1alpha1.KubernetesRoleAdmin))).To(Succeed())
		settled(ctx, org)
		owner, err := env.ClientAs("owner@" + org + ".example")
		Expect(err).NotTo(HaveOccurred())

		By("20 admins created at once by the organization's admin: 2 more fit maxAdmins")
		Expect(concurrently(20, func(i int) error {
			return owner.Create(ctx, member(org, fmt.Sprintf("adm%d", i), fmt.Sprintf("adm%d@%s.example", i, org), true, ""))
		})).To(Equal(2))
		By("20 members with one email at once: one is stored")
		Expect(concurrently(20, func(i int) error {
			return owner.Create(ctx, member(org, fmt.Sprintf("same%d", i), "Same@"+org+".example", false, ""))
		})).To(Equal(1))
		By("20 members at once: 3 more fit maxMembers")
		Expect(concurrently(20, func(i int) error {
			return owner.Create(ctx, member(org, fmt.Sprintf("m%d", i), fmt.Sprintf("m%d@%s.example", i, org), false, ""))
		})).To(Equal(3))
		count, admins := live(members(ctx, org))
		Expect(count).To(Equal(7))
		Expect(admins).To(Equal(3))
	})

	It("stores exactly maxNamespaces when 20 namespaces join at once", func(ctx SpecContext) {
		org := newOrganization(ctx, &tenancyv1alpha1.Quotas{MaxNamespaces: ptr(int32(4))})
		joined := concurrently(20, func(i int) error {
			return admin.Create(ctx, namespace(fmt.Sprintf("%s-ns%d", org, i), orgLabel(org)))
		})
		Expect(joined).To(Equal(3), "the home namespace is one of the 4")
		l := &corev1.NamespaceList{}
		Expect(admin.List(ctx, l, client.MatchingLabels(orgLabel(org)))).To(Succeed())
		Expect(l.Items).To(HaveLen(4))
		DeferCleanup(func(ctx SpecContext) {
			for i := range 20 {
				_ = admin.Delete(ctx, namespace(fmt.Sprintf("%s-ns%d", org, i), nil))
			}
		})
	})
})

var _ = Describe("Members who are not admins", func() {
	It("cannot make themselves admins, even where RBAC would let them write members", func(ctx SpecContext) {
		org := newOrganization(ctx, nil)
		Expect(admin.Create(ctx, member(org, "root", "root@"+org+".example", true, tenancyv1alpha1.KubernetesRoleAdmin))).To(Succeed())
		Expect(admin.Create(ctx, member(org, "dave", "dave@"+org+".example", false, tenancyv1alpha1.KubernetesRoleEdit))).To(Succeed())
		Expect(admin.Create(ctx, member(org, "erin", "erin@"+org+".example", false, tenancyv1alpha1.KubernetesRoleEdit))).To(Succeed())
		// A platform team granting member writes by mistake: the webhook still asks who is asking.
		Expect(admin.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: org, Name: "member-writers"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "orgoperator-editor"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "dave@" + org + ".example"},
				{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "erin@" + org + ".example"}},
		})).To(Succeed())
		settled(ctx, org)
		dave, err := env.ClientAs("dave@" + org + ".example")
		Expect(err).NotTo(HaveOccurred())
		erin, err := env.ClientAs("erin@" + org + ".example")
		Expect(err).NotTo(HaveOccurred())
		before := members(ctx, org)

		Expect(dave.Patch(ctx, member(org, "dave", "", false, ""), client.RawPatch(types.MergePatchType,
			[]byte(`{"spec":{"admin":true,"kubernetesRole":"Admin"}}`)))).To(MatchError(ContainSubstring("is not an admin of organization " + org)))
		Expect(erin.Delete(ctx, member(org, "root", "", false, ""))).To(MatchError(ContainSubstring("is not an admin of organization " + org)))
		second := member(org, "erin2", "erin2@"+org+".example", true, tenancyv1alpha1.KubernetesRoleAdmin)
		second.Spec.Username = "erin@" + org + ".example"
		Expect(erin.Create(ctx, second)).To(MatchError(ContainSubstring("is not an admin of organization " + org)))
		Expect(erin.DeleteAllOf(ctx, &tenancyv1alpha1.OrganizationMember{}, client.InNamespace(org))).To(Satisfy(apierrors.IsForbidden))

		after := members(ctx, org)
		Expect(after).To(HaveLen(len(before)))
		for i := range before {
			Expect(after[i].ResourceVersion).To(Equal(before[i].ResourceVersion), "member %s changed", after[i].Name)
		}
		// dave is bound as the member he is, and to nothing more.
		Eventually(func(g Gomega) {
			rbs := &rbacv1.RoleBindingList{}
			g.Expect(admin.List(ctx, rbs, client.MatchingLabels{tenancyv1alpha1.OrganizationLabel: org})).To(Succeed())
			var roles []string
			for _, rb := range rbs.Items {
				for _, s := range rb.Subjects {
					if s.Name == "dave@"+org+".example" {
						roles = append(roles, rb.Namespace+"/"+rb.RoleRef.Name)
					}
				}
			}
			g.Expect(roles).To(ConsistOf(org + "/edit"))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
	})
})

// mayLabelNamespaces lets user label namespaces, so that the webhook, not RBAC, is what stops it.
func mayLabelNamespaces(ctx context.Context, org, user string) {
	GinkgoHelper()
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: org + "-self-service"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "namespace-self-service"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}
	Expect(admin.Create(ctx, crb)).To(Succeed())
	DeferCleanup(func(ctx SpecContext) { _ = admin.Delete(ctx, crb) })
}

var _ = Describe("A namespace joining an organization", func() {
	It("brings its pods into the organization-wide quota: leaving and rejoining launders nothing", func(ctx SpecContext) {
		org := newOrganization(ctx, &tenancyv1alpha1.Quotas{OrganizationQuota: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("3")}})
		owner := "owner@" + org + ".example"
		Expect(admin.Create(ctx, member(org, "owner", owner, true, tenancyv1alpha1.KubernetesRoleAdmin))).To(Succeed())
		side := org + "-x"
		Expect(admin.Create(ctx, namespace(side, orgLabel(org)))).To(Succeed())
		DeferCleanup(func(ctx SpecContext) { _ = admin.Delete(ctx, namespace(side, nil)) })
		for i := range 2 {
			Expect(admin.Create(ctx, pod(org, fmt.Sprintf("p%d", i)))).To(Succeed())
		}
		mayLabelNamespaces(ctx, org, owner)
		settled(ctx, org)
		oc, err := env.ClientAs(owner)
		Expect(err).NotTo(HaveOccurred())
		label := func(c client.Client, value string) error {
			v := "null"
			if value != "" {
				v = fmt.Sprintf("%q", value)
			}
			return c.Patch(ctx, namespace(side, nil), client.RawPatch(types.MergePatchType,
				[]byte(fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, tenancyv1alpha1.OrganizationLabel, v))))
		}

		By("the organization's admin taking the namespace out, and 3 pods started there")
		Expect(label(oc, "")).To(Succeed())
		for i := range 3 {
			Expect(admin.Create(ctx, pod(side, fmt.Sprintf("q%d", i)))).To(Succeed())
		}
		before := &corev1.Namespace{}
		Expect(admin.Get(ctx, client.ObjectKey{Name: side}, before)).To(Succeed())

		By("the admin labelling it back: refused, and nothing changed")
		Expect(label(oc, org)).To(MatchError(And(ContainSubstring("what namespace "+side+" holds does not fit in what organization "+org+" has left"),
			ContainSubstring("exceeded organization quota"))))
		after := &corev1.Namespace{}
		Expect(admin.Get(ctx, client.ObjectKey{Name: side}, after)).To(Succeed())
		Expect(after.ResourceVersion).To(Equal(before.ResourceVersion))

		By("a platform admin labelling it back: allowed, charged, and the next pod refused")
		Expect(label(admin, org)).To(Succeed())
		o := &tenancyv1alpha1.Organization{}
		Expect(admin.Get(ctx, client.ObjectKey{Name: org}, o)).To(Succeed())
		used := o.Status.Quotas.Ledger.Observed.DeepCopy()
		for _, r := range o.Status.Quotas.Ledger.Reservations {
			q := used[corev1.ResourcePods]
			q.Add(r.Usage[corev1.ResourcePods])
			used[corev1.ResourcePods] = q
		}
		Expect(used.Pods().Value()).To(BeEquivalentTo(5))
		Expect(admin.Create(ctx, pod(org, "p9"))).To(MatchError(ContainSubstring("exceeded")))
	})

	It("brings its Deployments and claims into the organization-wide counts", func(ctx SpecContext) {
		org := newOrganization(ctx, &tenancyv1alpha1.Quotas{OrganizationQuota: corev1.ResourceList{
			"count/deployments.apps": resource.MustParse("1"), corev1.ResourcePersistentVolumeClaims: resource.MustParse("1"),
		}})
		owner := "owner@" + org + ".example"
		Expect(admin.Create(ctx, member(org, "owner", owner, true, tenancyv1alpha1.KubernetesRoleAdmin))).To(Succeed())
		mayLabelNamespaces(ctx, org, owner)
		side := org + "-y"
		Expect(admin.Create(ctx, namespace(side, nil))).To(Succeed())
		DeferCleanup(func(ctx SpecContext) { _ = admin.Delete(ctx, namespace(side, nil)) })
		settled(ctx, org)
		Expect(admin.Create(ctx, testenv.Deployment(org, "in"))).To(Succeed())
		Expect(admin.Create(ctx, testenv.Deployment(org, "second"))).To(MatchError(ContainSubstring("exceeded organization quota")))
		Expect(admin.Create(ctx, testenv.Deployment(side, "outside"))).To(Succeed())
		Expect(admin.Create(ctx, testenv.Claim(side, "outside", "1Gi", ""))).To(Succeed())
		settled(ctx, org)

		oc, err := env.ClientAs(owner)
		Expect(err).NotTo(HaveOccurred())
		before := &corev1.Namespace{}
		Expect(admin.Get(ctx, client.ObjectKey{Name: side}, before)).To(Succeed())
		err = oc.Patch(ctx, namespace(side, nil), client.RawPatch(types.MergePatchType,
			[]byte(fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, tenancyv1alpha1.OrganizationLabel, org))))
		Expect(err).To(MatchError(And(ContainSubstring("what namespace "+side+" holds does not fit"),
			ContainSubstring("count/deployments.apps"))))
		after := &corev1.Namespace{}
		Expect(admin.Get(ctx, client.ObjectKey{Name: side}, after)).To(Succeed())
		Expect(after.ResourceVersion).To(Equal(before.ResourceVersion))
	})
})
