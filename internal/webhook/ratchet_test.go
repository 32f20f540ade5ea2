package webhook_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

// uniqueName is prefix with a random suffix, a valid organization and plan name.
func uniqueName(prefix string) string { return prefix + "-" + utilrand.String(6) }

// trialOrganization creates a trial plan and an organization on it without an end date, waits
// until the operator holds the organization with its finalizer, then makes the plan paid
// underneath it, and waits until the webhooks judge new subscriptions by the changed plan. The
// organization is then valid as stored but would not be accepted as a new one.
func trialOrganization(ctx context.Context) (org, plan string) {
	GinkgoHelper()
	plan, org = uniqueName("trial"), uniqueName("ratchet")
	Expect(admin.Create(ctx, &tenancyv1alpha1.OrganizationPlan{
		ObjectMeta: metav1.ObjectMeta{Name: plan},
		Spec:       tenancyv1alpha1.OrganizationPlanSpec{DisplayName: "Trial", TrialDays: ptr(int32(14))},
	})).To(Succeed())
	DeferCleanup(func(ctx SpecContext) {
		Expect(client.IgnoreNotFound(admin.Delete(ctx, &tenancyv1alpha1.OrganizationPlan{ObjectMeta: metav1.ObjectMeta{Name: plan}}))).To(Succeed())
	})
	o := organization(org, tenancyv1alpha1.DeletionPolicyCascade)
	o.Spec.Subscription = &tenancyv1alpha1.Subscription{Plan: plan}
	Expect(admin.Create(ctx, o)).To(Succeed())
	// Other specs compare snapshots of the whole cluster: leave nothing behind, not even a
	// terminating home namespace.
	DeferCleanup(func(ctx SpecContext) {
		Expect(client.IgnoreNotFound(admin.Delete(ctx, organization(org, "")))).To(Succeed())
		Eventually(func() error {
			return admin.Get(ctx, client.ObjectKey{Name: org}, &tenancyv1alpha1.Organization{})
		}).Should(Satisfy(apierrors.IsNotFound))
		Eventually(func() error {
			return admin.Get(ctx, client.ObjectKey{Name: org}, &corev1.Namespace{})
		}, time.Minute).Should(Satisfy(apierrors.IsNotFound))
	})
	Eventually(func(g Gomega) {
		stored := &tenancyv1alpha1.Organization{}
		g.Expect(admin.Get(ctx, client.ObjectKey{Name: org}, stored)).To(Succeed())
		g.Expect(stored.Finalizers).To(ContainElement(tenancyv1alpha1.OrganizationFinalizer))
	}).Should(Succeed())

	Expect(admin.Patch(ctx, &tenancyv1alpha1.OrganizationPlan{ObjectMeta: metav1.ObjectMeta{Name: plan}},
		client.RawPatch(types.MergePatchType, []byte(`{"spec":{"trialDays":null}}`)))).To(Succeed())
	waitUntilPaid(ctx, plan)
	return org, plan
}

// waitUntilPaid waits until the webhooks know plan as a paid plan without a trial: a new
// organization on it without an end date is refused.
func waitUntilPaid(ctx context.Context, plan string) {
	GinkgoHelper()
	Eventually(func() error {
		probe := organization(uniqueName("probe"), "")
		probe.Spec.Subscription = &tenancyv1alpha1.Subscription{Plan: plan}
		return admin.Create(ctx, probe, client.DryRunAll)
	}).Should(MatchError(ContainSubstring("spec.subscription.endDate: Required value: plan %s is paid", plan)))
}

// fieldsOf lists the fields an API error's causes name.
func fieldsOf(err error) []string {
	var fields []string
	if status, ok := err.(apierrors.APIStatus); ok && status.Status().Details != nil {
		for _, cause := range status.Status().Details.Causes {
			fields = append(fields, cause.Field)
		}
	}
	return fields
}

var _ = Describe("Admission judges only what a request changes", func() {
	It("deletes an organization whose plan changed underneath it", func(ctx SpecContext) {
		org, _ := trialOrganization(ctx)

		Expect(admin.Delete(ctx, organization(org, ""))).To(Succeed())
		Eventually(func() error {
			return admin.Get(ctx, client.ObjectKey{Name: org}, &tenancyv1alpha1.Organization{})
		}).Should(Satisfy(apierrors.IsNotFound), "the operator could not remove its finalizer")
	})

	It("accepts updates that leave the subscription alone, and refuses one that breaks the plan's rules", func(ctx SpecContext) {
		org, _ := trialOrganization(ctx)
		update := func(change func(*tenancyv1alpha1.Organization)) error {
			o := get(ctx, client.ObjectKey{Name: org}, &tenancyv1alpha1.Organization{})
			change(o)
			return admin.Update(ctx, o)
		}

		By("labelling and annotating it")
		Eventually(func() error {
			return update(func(o *tenancyv1alpha1.Organization) {
				metav1.SetMetaDataLabel(&o.ObjectMeta, "example.com/team", "platform")
				metav1.SetMetaDataAnnotation(&o.ObjectMeta, "example.com/ticket", "OPS-11")
			})
		}).Should(Succeed())
		o := get(ctx, client.ObjectKey{Name: org}, &tenancyv1alpha1.Organization{})
		Expect(o.Labels).To(HaveKeyWithValue("example.com/team", "platform"))
		Expect(o.Annotations).To(HaveKeyWithValue("example.com/ticket", "OPS-11"))

		By("changing a field the plan's rules do not read")
		Eventually(func() error {
			return update(func(o *tenancyv1alpha1.Organization) { o.Spec.DisplayName = "Renamed" })
		}).Should(Succeed())

		By("moving it to another paid plan, still without an end date")
		paid := uniqueName("paid")
		Expect(admin.Create(ctx, &tenancyv1alpha1.OrganizationPlan{
			ObjectMeta: metav1.ObjectMeta{Name: paid},
			Spec:       tenancyv1alpha1.OrganizationPlanSpec{DisplayName: "Paid"},
		})).To(Succeed())
		DeferCleanup(func(ctx SpecContext) {
			Expect(client.IgnoreNotFound(admin.Delete(ctx, &tenancyv1alpha1.OrganizationPlan{ObjectMeta: metav1.ObjectMeta{Name: paid}}))).To(Succeed())
		})
		waitUntilPaid(ctx, paid)
		var err error
		Eventually(func() error {
			err = update(func(o *tenancyv1alpha1.Organization) { o.Spec.Subscription.Plan = paid })
			return err
		}).Should(MatchError(ContainSubstring("spec.subscription.endDate: Required value: plan %s is paid", paid)))
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "unexpected error: %v", err)
		Expect(fieldsOf(err)).To(ConsistOf("spec.subscription.endDate"))
		Expect(get(ctx, client.ObjectKey{Name: org}, &tenancyv1alpha1.Organization{}).Spec.Subscription.Plan).NotTo(Equal(paid))
	})

	DescribeTable("refuses a field of the wrong type with the schema's error, and stores nothing",
		func(ctx SpecContext, obj *unstructured.Unstructured, field, want string) {
			err := admin.Create(ctx, obj)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "unexpected error: %v", err)
			Expect(err.Error()).To(ContainSubstring(want))
			Expect(fieldsOf(err)).To(ContainElement(field))
			stored := &unstructured.Unstructured{}
			stored.SetGroupVersionKind(obj.GroupVersionKind())
			Expect(admin.Get(ctx, client.ObjectKeyFromObject(obj), stored)).To(Satisfy(apierrors.IsNotFound))
		},
		Entry("a member whose admin flag is a string", &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": tenancyv1alpha1.GroupVersion.String(),
			"kind":       "OrganizationMember",
			"metadata":   map[string]any{"namespace": "default", "name": uniqueName("yes")},
			"spec":       map[string]any{"email": "yes@example.com", "admin": "yes"},
		}}, "spec.admin", `spec.admin: Invalid value: "string": spec.admin in body must be of type boolean`),
		Entry("an organization whose type is a number", &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": tenancyv1alpha1.GroupVersion.String(),
			"kind":       "Organization",
			"metadata":   map[string]any{"name": uniqueName("typed")},
			"spec":       map[string]any{"displayName": "Typed", "type": int64(42)},
		}}, "spec.type", `spec.type: Invalid value: "integer": spec.type in body must be of type string`),
		Entry("an organization whose subscription is a string", &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": tenancyv1alpha1.GroupVersion.String(),
			"kind":       "Organization",
			"metadata":   map[string]any{"name": uniqueName("subscribed")},
			"spec":       map[string]any{"displayName": "Subscribed", "subscription": "business"},
		}}, "spec.subscription", `spec.subscription: Invalid value: "string": spec.subscription in body must be of type object`),
	)
})
