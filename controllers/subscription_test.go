package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/controllers"
)

const day = 24 * time.Hour

func newPlan(name string, trialDays *int32, grace int32, quotas tenancyv1alpha1.Quotas) *tenancyv1alpha1.OrganizationPlan {
	return &tenancyv1alpha1.OrganizationPlan{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       tenancyv1alpha1.OrganizationPlanSpec{DisplayName: name, TrialDays: trialDays, GracePeriodDays: grace, Quotas: quotas},
	}
}

func resources(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func int32p(v int32) *int32 { return &v }

// touch changes the organization's description, so that the operator reconciles it now.
func touch(ctx context.Context, name string) {
	GinkgoHelper()
	Eventually(func() error {
		o := &tenancyv1alpha1.Organization{}
		if err := k8s.Get(ctx, client.ObjectKey{Name: name}, o); err != nil {
			return err
		}
		o.Spec.Description = "touched at " + time.Now().Format(time.RFC3339Nano)
		return k8s.Update(ctx, o)
	}).Should(Succeed())
}

func subscriptionOf(g Gomega, name string) tenancyv1alpha1.SubscriptionStatus {
	o := getOrg(g, name)
	g.Expect(o.Status.Subscription).NotTo(BeNil())
	return *o.Status.Subscription
}

// quotaHard returns the hard limits of one of the operator's ResourceQuotas once kube-controller-
// manager has computed its status: the API server's quota admission only uses it from then on.
func quotaHard(g Gomega, ns, name string) corev1.ResourceList {
	rq := &corev1.ResourceQuota{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, rq)).To(Succeed())
	g.Expect(rq.Status.Hard).To(HaveLen(len(rq.Spec.Hard)), "status of %s/%s not yet computed", ns, name)
	return rq.Spec.Hard
}

func hasEvent(ctx context.Context, g Gomega, org, reason string) {
	list := &eventsv1.EventList{}
	g.Expect(k8s.List(ctx, list)).To(Succeed())
	g.Expect(list.Items).To(ContainElement(SatisfyAll(HaveField("Regarding.Name", org), HaveField("Reason", reason))))
}

var _ = Describe("Subscriptions and quotas", func() {
	AfterEach(func() { clock.Reset() })

	It("moves through Trial, GracePeriod and Expired at the exact moments, and renewal restores", func(ctx SpecContext) {
		planName := uniqueName("trial")
		Expect(k8s.Create(ctx, newPlan(planName, int32p(14), 1, tenancyv1alpha1.Quotas{NamespaceQuota: resources("pods", "10")}))).To(Succeed())
		name := uniqueName("trialco")
		start := metav1.NewTime(clock.Now().Truncate(time.Second))
		o := newOrganization(name, tenancyv1alpha1.DeletionPolicyCascade)
		o.Spec.Subscription = &tenancyv1alpha1.Subscription{Plan: planName, StartDate: &start}
		Expect(k8s.Create(ctx, o)).To(Succeed())
		trialEnd, graceEnd := start.Add(14*day), start.Add(15*day)

		Eventually(func(g Gomega) {
			st := subscriptionOf(g, name)
			g.Expect(st.State).To(Equal(tenancyv1alpha1.SubscriptionTrial))
			g.Expect(st.TrialExpiresAt.Time).To(BeTemporally("==", trialEnd))
			g.Expect(*st.DaysRemaining).To(BeEquivalentTo(14))
			g.Expect(*st.TrialExpirySeconds).To(BeNumerically("~", 14*86400, 60))
			g.Expect(quotaHard(g, name, controllers.NamespaceQuotaName)).To(HaveKeyWithValue(corev1.ResourcePods, resource.MustParse("10")))
		}).Should(Succeed())
		Expect(k8s.Create(ctx, pod(name, "old", "100m", "64Mi"))).To(Succeed())

		By("two seconds before the trial ends: still Trial, one day left")
		clock.Set(trialEnd.Add(-2 * time.Second))
		touch(ctx, name)
		Eventually(func(g Gomega) {
			st := subscriptionOf(g, name)
			g.Expect(st.State).To(Equal(tenancyv1alpha1.SubscriptionTrial))
			g.Expect(*st.DaysRemaining).To(BeEquivalentTo(1))
		}).Should(Succeed())
		By("at the end of the trial the requeue lands and the grace period starts, without another change")
		Eventually(func(g Gomega) {
			st := subscriptionOf(g, name)
			g.Expect(st.State).To(Equal(tenancyv1alpha1.SubscriptionGracePeriod))
			g.Expect(st.HasActiveSubscription).To(BeTrue())
			hasEvent(ctx, g, name, string(tenancyv1alpha1.SubscriptionGracePeriod))
		}, 10*time.Second).Should(Succeed())

		By("a restarted operator, with no memory, reaches the same state and writes nothing")
		counter := &writeCounter{Client: mgrClient}
		fresh := &controllers.OrganizationReconciler{Client: counter, Recorder: events.NewFakeRecorder(10), Clock: clock, Pods: env.Pods}
		Eventually(func(g Gomega) {
			cached := &tenancyv1alpha1.Organization{}
			g.Expect(mgrClient.Get(ctx, client.ObjectKey{Name: name}, cached)).To(Succeed())
			g.Expect(cached).To(HaveField("Status.Subscription.State", tenancyv1alpha1.SubscriptionGracePeriod))
		}).Should(Succeed())
		result, err := fresh.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: name}})
		Expect(err).NotTo(HaveOccurred())
		Expect(result.RequeueAfter).To(BeNumerically("~", graceEnd.Sub(clock.Now()), 5*time.Second), "the next boundary is the end of the grace period")
		Expect(counter.writes.Load()).To(BeZero())

		By("at the end of the grace period: Expired, no new pods, the old one kept")
		clock.Set(graceEnd.Add(-2 * time.Second))
		touch(ctx, name)
		Eventually(func(g Gomega) {
			o := getOrg(g, name)
			g.Expect(o).To(HaveField("Status.Subscription.State", tenancyv1alpha1.SubscriptionExpired))
			active := condition(o.Status.Conditions, tenancyv1alpha1.SubscriptionActiveCondition)
			g.Expect(active.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(active.Reason).To(Equal(string(tenancyv1alpha1.SubscriptionExpired)))
			g.Expect(quotaHard(g, name, controllers.ExpiredQuotaName)).To(HaveKeyWithValue(corev1.ResourcePods, resource.MustParse("0")))
		}, 10*time.Second).Should(Succeed())
		Eventually(func() error {
			return k8s.Create(ctx, pod(name, "new", "100m", "64Mi"))
		}).Should(MatchError(ContainSubstring("exceeded quota: " + controllers.ExpiredQuotaName)))
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: name, Name: "old"}, &corev1.Pod{})).To(Succeed())

		By("renewing: Active again, the pods quota lifted")
		Eventually(func() error {
			o := &tenancyv1alpha1.Organization{}
			if err := k8s.Get(ctx, client.ObjectKey{Name: name}, o); err != nil {
				return err
			}
			end := metav1.NewTime(clock.Now().Add(365 * day))
			o.Spec.Subscription.EndDate = &end
			return k8s.Update(ctx, o)
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(subscriptionOf(g, name).State).To(Equal(tenancyv1alpha1.SubscriptionActive))
			err := k8s.Get(ctx, client.ObjectKey{Namespace: name, Name: controllers.ExpiredQuotaName}, &corev1.ResourceQuota{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
		}).Should(Succeed())
		Eventually(func() error { return k8s.Create(ctx, pod(name, "new", "100m", "64Mi")) }).Should(Succeed())
	})

	It("applies plan quotas to every namespace, follows plan changes and overrides, and survives the plan's deletion", func(ctx SpecContext) {
		planName := uniqueName("biz")
		plan := newPlan(planName, nil, 0, tenancyv1alpha1.Quotas{
			NamespaceQuota: resources("pods", "10"),
			LimitRange:     &tenancyv1alpha1.LimitRangeDefaults{Default: resources("cpu", "500m")},
		})
		Expect(k8s.Create(ctx, plan)).To(Succeed())
		name := uniqueName("bizco")
		o := newOrganization(name, tenancyv1alpha1.DeletionPolicyCascade)
		end := metav1.NewTime(time.Now().Add(90 * day))
		o.Spec.Subscription = &tenancyv1alpha1.Subscription{Plan: planName, EndDate: &end}
		Expect(k8s.Create(ctx, o)).To(Succeed())
		Expect(k8s.Create(ctx, labelledNamespace(name+"-dev", name))).To(Succeed())
		namespaces := []string{name, name + "-dev"}
		expectPods := func(want string) {
			GinkgoHelper()
			Eventually(func(g Gomega) {
				for _, ns := range namespaces {
					rq := &corev1.ResourceQuota{}
					g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: controllers.NamespaceQuotaName}, rq)).To(Succeed())
					g.Expect(rq.Spec.Hard.Pods().String()).To(Equal(want), "namespace %s", ns)
					g.Expect(rq.Labels).To(HaveKeyWithValue(tenancyv1alpha1.OrganizationLabel, name))
				}
			}).Should(Succeed())
		}
		expectPods("10")
		Eventually(func(g Gomega) {
			lr := &corev1.LimitRange{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: name + "-dev", Name: controllers.LimitRangeName}, lr)).To(Succeed())
			g.Expect(lr.Spec.Limits[0].Default.Cpu().String()).To(Equal("500m"))
			p := &tenancyv1alpha1.OrganizationPlan{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Name: planName}, p)).To(Succeed())
			g.Expect(p.Status.OrganizationCount).To(BeEquivalentTo(1))
		}).Should(Succeed())

		By("the plan raising its quota")
		Eventually(func() error {
			p := &tenancyv1alpha1.OrganizationPlan{}
			if err := k8s.Get(ctx, client.ObjectKey{Name: planName}, p); err != nil {
				return err
			}
			p.Spec.Quotas.NamespaceQuota = resources("pods", "20")
			return k8s.Update(ctx, p)
		}).Should(Succeed())
		expectPods("20")

		By("the organization overriding it")
		Eventually(func() error {
			o := &tenancyv1alpha1.Organization{}
			if err := k8s.Get(ctx, client.ObjectKey{Name: name}, o); err != nil {
				return err
			}
			o.Spec.Quotas = &tenancyv1alpha1.Quotas{NamespaceQuota: resources("pods", "5")}
			return k8s.Update(ctx, o)
		}).Should(Succeed())
		expectPods("5")

		By("restoring a quota someone deleted")
		Expect(k8s.Delete(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Namespace: name + "-dev", Name: controllers.NamespaceQuotaName}})).To(Succeed())
		expectPods("5")

		By("the plan being deleted: PlanNotFound, and the namespaces keep their quotas")
		Expect(k8s.Delete(ctx, plan)).To(Succeed())
		Eventually(func(g Gomega) {
			o := getOrg(g, name)
			g.Expect(o).To(HaveField("Status.Subscription.State", tenancyv1alpha1.SubscriptionPlanNotFound))
			ready := condition(o.Status.Conditions, tenancyv1alpha1.ReadyCondition)
			g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.Reason).To(Equal(string(tenancyv1alpha1.SubscriptionPlanNotFound)))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			for _, ns := range namespaces {
				g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: controllers.NamespaceQuotaName}, &corev1.ResourceQuota{})).To(Succeed())
			}
		}).Should(Succeed())
	})

	It("holds an organization-wide quota across namespaces and reports what a downgrade leaves over", func(ctx SpecContext) {
		name := uniqueName("wide")
		o := newOrganization(name, tenancyv1alpha1.DeletionPolicyCascade)
		o.Spec.Quotas = &tenancyv1alpha1.Quotas{OrganizationQuota: resources("pods", "4")}
		Expect(k8s.Create(ctx, o)).To(Succeed())
		namespaces := []string{name, name + "-a", name + "-b"}
		for _, ns := range namespaces[1:] {
			Expect(k8s.Create(ctx, labelledNamespace(ns, name))).To(Succeed())
		}
		for i := range 4 {
			ns := namespaces[i%3]
			Eventually(func(g Gomega) {
				// Every namespace's share is in place and counted before the next pod.
				for _, n := range namespaces {
					quotaHard(g, n, controllers.OrganizationQuotaName)
				}
				used := getOrgQuotas(g, name).Used
				g.Expect(used.Pods().Value()).To(BeEquivalentTo(i))
				g.Expect(k8s.Create(ctx, pod(ns, "p"+string(rune('0'+i)), "10m", "8Mi"))).To(Succeed())
			}).Should(Succeed())
		}
		Eventually(func(g Gomega) {
			q := getOrgQuotas(g, name)
			g.Expect(q.Used.Pods().Value()).To(BeEquivalentTo(4))
			g.Expect(q.Hard.Pods().Value()).To(BeEquivalentTo(4))
			for _, n := range namespaces {
				rq := &corev1.ResourceQuota{}
				g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: n, Name: controllers.OrganizationQuotaName}, rq)).To(Succeed())
				g.Expect(rq.Spec.Hard.Pods().Value()).To(Equal(rq.Status.Used.Pods().Value()), "namespace %s has no headroom left", n)
				g.Expect(rq.Status.Hard.Pods().Value()).To(Equal(rq.Spec.Hard.Pods().Value()))
			}
		}).Should(Succeed())
		By("the fifth pod, in any namespace, refused by the API server's quota admission")
		for _, ns := range namespaces {
			err := k8s.Create(ctx, pod(ns, "extra", "10m", "8Mi"))
			Expect(err).To(MatchError(ContainSubstring("exceeded quota: " + controllers.OrganizationQuotaName)))
		}

		By("a downgrade to 2 pods: everything stays, the excess is reported")
		Eventually(func() error {
			o := &tenancyv1alpha1.Organization{}
			if err := k8s.Get(ctx, client.ObjectKey{Name: name}, o); err != nil {
				return err
			}
			o.Spec.Quotas.OrganizationQuota = resources("pods", "2")
			return k8s.Update(ctx, o)
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			o := getOrg(g, name)
			g.Expect(o.Status.Quotas).NotTo(BeNil())
			g.Expect(o.Status.Quotas.Exceeded).To(Equal([]tenancyv1alpha1.QuotaExcess{{Name: "pods", Hard: "2", Used: "4"}}))
			exceeded := condition(o.Status.Conditions, tenancyv1alpha1.QuotaExceededCondition)
			g.Expect(exceeded.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(exceeded.Message).To(ContainSubstring("pods (used 4, hard 2)"))
			hasEvent(ctx, g, name, tenancyv1alpha1.OverQuotaReason)
		}).Should(Succeed())
		pods := &corev1.PodList{}
		total := 0
		for _, ns := range namespaces {
			Expect(k8s.List(ctx, pods, client.InNamespace(ns))).To(Succeed())
			total += len(pods.Items)
		}
		Expect(total).To(Equal(4))
	})

	It("flags organizations over their count quotas", func(ctx SpecContext) {
		name := uniqueName("crowd")
		o := newOrganization(name, tenancyv1alpha1.DeletionPolicyCascade)
		o.Spec.Quotas = &tenancyv1alpha1.Quotas{MaxMembers: int32p(1), MaxAdmins: int32p(1), MaxNamespaces: int32p(1)}
		Expect(k8s.Create(ctx, o)).To(Succeed())
		expectOrgReady(ctx, name)
		Expect(k8s.Create(ctx, newMember(name, "a", "a@example.com", true, ""))).To(Succeed())
		Expect(k8s.Create(ctx, newMember(name, "b", "b@example.com", true, ""))).To(Succeed())
		Expect(k8s.Create(ctx, labelledNamespace(name+"-x", name))).To(Succeed())
		Eventually(func(g Gomega) {
			q := getOrgQuotas(g, name)
			g.Expect(q.Exceeded).To(Equal([]tenancyv1alpha1.QuotaExcess{
				{Name: "maxAdmins", Hard: "1", Used: "2"},
				{Name: "maxMembers", Hard: "1", Used: "2"},
				{Name: "maxNamespaces", Hard: "1", Used: "2"},
			}))
		}).Should(Succeed())
	})
})
