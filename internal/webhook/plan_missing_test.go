package webhook_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

// A plan that goes missing must not lift the limits it set: the quotas last applied hold at
// admission, as they do in the namespaces.
var _ = Describe("An organization whose plan is deleted", Ordered, func() {
	const planName, orgName = "held-plan", "held"

	BeforeAll(func(ctx context.Context) {
		Expect(admin.Create(ctx, &tenancyv1alpha1.OrganizationPlan{
			ObjectMeta: metav1.ObjectMeta{Name: planName},
			Spec: tenancyv1alpha1.OrganizationPlanSpec{DisplayName: "Held", Free: true, Quotas: tenancyv1alpha1.Quotas{
				MaxMembers:        ptr(int32(1)),
				OrganizationQuota: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")},
			}},
		})).To(Succeed())
		org := organization(orgName, tenancyv1alpha1.DeletionPolicyCascade)
		org.Spec.Subscription = &tenancyv1alpha1.Subscription{Plan: planName}
		Expect(admin.Create(ctx, org)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(admin.Create(ctx, member(orgName, "alice", "alice@held.example", true, ""))).To(Succeed())
		}).WithTimeout(30 * time.Second).Should(Succeed())
		Eventually(func(g Gomega) {
			o := get(ctx, client.ObjectKey{Name: orgName}, &tenancyv1alpha1.Organization{})
			g.Expect(o.Status.Quotas).NotTo(BeNil())
			g.Expect(o.Status.Quotas.MaxMembers).To(HaveValue(BeEquivalentTo(1)))
			g.Expect(o.Status.MemberCount).To(BeEquivalentTo(1))
		}).WithTimeout(30 * time.Second).Should(Succeed())

		Expect(admin.Delete(ctx, &tenancyv1alpha1.OrganizationPlan{ObjectMeta: metav1.ObjectMeta{Name: planName}})).To(Succeed())
		Eventually(func(g Gomega) {
			o := get(ctx, client.ObjectKey{Name: orgName}, &tenancyv1alpha1.Organization{})
			g.Expect(o.Status.Subscription).NotTo(BeNil())
			g.Expect(o.Status.Subscription.State).To(Equal(tenancyv1alpha1.SubscriptionPlanNotFound))
		}).WithTimeout(30 * time.Second).Should(Succeed())
	})

	// The organization stays PlanNotFound, which is not Ready: remove it with its home namespace, so
	// that the specs that wait for every organization to be Ready, or snapshot every namespace, can
	// run after this one.
	AfterAll(func(ctx context.Context) {
		Expect(admin.Delete(ctx, organization(orgName, tenancyv1alpha1.DeletionPolicyCascade))).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(admin.Get(ctx, client.ObjectKey{Name: orgName}, &tenancyv1alpha1.Organization{}))
		}).WithTimeout(60 * time.Second).Should(BeTrue())
		Eventually(func() bool {
			return apierrors.IsNotFound(admin.Get(ctx, client.ObjectKey{Name: orgName}, &corev1.Namespace{}))
		}).WithTimeout(90*time.Second).Should(BeTrue(), "the home namespace and its member go with the organization")
	})

	It("still refuses a member beyond the plan's maxMembers", func(ctx context.Context) {
		err := admin.Create(ctx, member(orgName, "bob", "bob@held.example", false, ""))
		Expect(err).To(MatchError(ContainSubstring("maxMembers quota of 1")))
		Expect(admin.Get(ctx, client.ObjectKey{Namespace: orgName, Name: "bob"}, &tenancyv1alpha1.OrganizationMember{})).NotTo(Succeed())
	})

	It("still refuses a pod beyond the plan's organization-wide quota", func(ctx context.Context) {
		Expect(admin.Create(ctx, plainPod(orgName, "first"))).To(Succeed())
		err := admin.Create(ctx, plainPod(orgName, "second"))
		Expect(err).To(MatchError(ContainSubstring("exceeded")))
		Expect(admin.Get(ctx, client.ObjectKey{Namespace: orgName, Name: "second"}, &corev1.Pod{})).NotTo(Succeed())
	})
})
