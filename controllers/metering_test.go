package controllers_test

import (
	"context"
	"fmt"
	"math/big"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/controllers"
)

// meteredPod is a pod the test runs by writing its status, as a kubelet would, with the times
// the test chose.
type meteredPod struct {
	ns, name   string
	cpu, mem   string
	start, end time.Time // end zero: still running
	// allocated, when set, is the cpu the kubelet reports it runs with (an in-place resize
	// changes it after the spec).
	allocated string
	// written is the pod as the last status write left it.
	written *corev1.Pod
}

func (p *meteredPod) create(ctx context.Context) {
	GinkgoHelper()
	Expect(k8s.Create(ctx, pod(p.ns, p.name, p.cpu, p.mem))).To(Succeed())
	p.setStatus(ctx)
}

// setStatus writes Running from start, or Succeeded with its container finished at end.
func (p *meteredPod) setStatus(ctx context.Context) {
	GinkgoHelper()
	po := &corev1.Pod{}
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: p.ns, Name: p.name}, po)).To(Succeed())
	start := metav1.NewTime(p.start)
	po.Status.StartTime = &start
	po.Status.Phase = corev1.PodRunning
	state := corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: start}}
	if !p.end.IsZero() {
		po.Status.Phase = corev1.PodSucceeded
		state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{StartedAt: start, FinishedAt: metav1.NewTime(p.end), Reason: "Completed"}}
	}
	po.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Image: "registry.example/app:1", ImageID: "registry.example/app@sha256:0", State: state}}
	if p.allocated != "" {
		l := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(p.allocated), corev1.ResourceMemory: resource.MustParse(p.mem)}
		po.Status.ContainerStatuses[0].Resources = &corev1.ResourceRequirements{Requests: l, Limits: l}
	}
	Expect(k8s.Status().Update(ctx, po)).To(Succeed())
	p.written = po
}

// integral is what the pods used in [from, to), computed from the times the test gave them.
func integral(pods []*meteredPod, from, to time.Time) (podSeconds, milliCPUSeconds int64, byteSeconds *big.Int) {
	byteSeconds = new(big.Int)
	for _, p := range pods {
		s, e := p.start.Truncate(time.Second), to
		if s.Before(from) {
			s = from
		}
		if !p.end.IsZero() && p.end.Before(to) {
			e = p.end.Truncate(time.Second)
		}
		secs := int64(e.Sub(s) / time.Second)
		if secs <= 0 {
			continue
		}
		cpu, mem := resource.MustParse(p.cpu), resource.MustParse(p.mem)
		podSeconds += secs
		milliCPUSeconds += cpu.MilliValue() * secs
		byteSeconds.Add(byteSeconds, new(big.Int).Mul(big.NewInt(mem.Value()), big.NewInt(secs)))
	}
	return
}

func getReport(g Gomega, org string) *tenancyv1alpha1.OrganizationUsageReport {
	list := &tenancyv1alpha1.OrganizationUsageReportList{}
	g.Expect(k8s.List(context.Background(), list, client.InNamespace(org))).To(Succeed())
	g.Expect(list.Items).To(HaveLen(1))
	return &list.Items[0]
}

func expectReportMatches(g Gomega, org string, pods []*meteredPod, wantPodSeconds int64) *tenancyv1alpha1.OrganizationUsageReport {
	r := getReport(g, org)
	g.Expect(r.Status.CheckpointTime).NotTo(BeNil())
	podSeconds, mcpu, bytes := integral(pods, r.Spec.PeriodStart.Time, r.Status.CheckpointTime.Time)
	if wantPodSeconds > 0 {
		g.Expect(podSeconds).To(Equal(wantPodSeconds))
	}
	g.Expect(r.Status.Total.PodSeconds).To(Equal(podSeconds))
	g.Expect(milliOf(r.Status.Total.Requests.CPU)).To(Equal(mcpu))
	g.Expect(valueOf(r.Status.Total.Requests.Memory)).To(Equal(bytes.Int64()))
	return r
}

func milliOf(q *resource.Quantity) int64 {
	if q == nil {
		return 0
	}
	return q.MilliValue()
}

func valueOf(q *resource.Quantity) int64 {
	if q == nil {
		return 0
	}
	return q.Value()
}

// countEvents counts the organization's events of a reason.
func countEvents(ctx context.Context, g Gomega, org, reason string) int {
	list := &eventsv1.EventList{}
	g.Expect(k8s.List(ctx, list)).To(Succeed())
	n := 0
	for _, e := range list.Items {
		if e.Regarding.Name == org && e.Reason == reason {
			n++
		}
	}
	return n
}

// createSubscribedOrganization creates an organization whose subscription, on plan (none when
// empty), started at start.
func createSubscribedOrganization(ctx context.Context, name, plan string, start time.Time) {
	GinkgoHelper()
	startDate := metav1.NewTime(start)
	o := newOrganization(name, tenancyv1alpha1.DeletionPolicyCascade)
	o.Spec.Subscription = &tenancyv1alpha1.Subscription{Plan: plan, StartDate: &startDate}
	Expect(k8s.Create(ctx, o)).To(Succeed())
}

// allowanceOrganization creates a Ready organization, subscribed since an hour ago to a plan of
// its own that charges a credit per pod-second, allows 100 credits and then blocks new pods.
func allowanceOrganization(ctx context.Context, prefix string) string {
	GinkgoHelper()
	planName := uniqueName(prefix + "-plan")
	one := resource.MustParse("3600") // credits per pod-hour: one per pod-second
	allowance := resource.MustParse("100")
	Expect(k8s.Create(ctx, &tenancyv1alpha1.OrganizationPlan{
		ObjectMeta: metav1.ObjectMeta{Name: planName},
		Spec: tenancyv1alpha1.OrganizationPlanSpec{DisplayName: "Metered", Free: true,
			Metering: &tenancyv1alpha1.PlanMetering{Prices: tenancyv1alpha1.MeteringPrices{PodHour: &one},
				MonthlyAllowance: &allowance, BlockWhenExhausted: true}},
	})).To(Succeed())
	name := uniqueName(prefix)
	createSubscribedOrganization(ctx, name, planName, time.Now().Add(-time.Hour).Truncate(time.Second))
	expectOrgReady(ctx, name)
	return name
}

var _ = Describe("Metering", func() {
	It("integrates the pods' lifetimes exactly, and a restarted operator continues to the same integral", func(ctx SpecContext) {
		name := uniqueName("meter")
		startDate := time.Now().Add(-time.Hour).Truncate(time.Second)
		createSubscribedOrganization(ctx, name, "", startDate)
		web := name + "-web"
		Expect(k8s.Create(ctx, labelledNamespace(web, name))).To(Succeed())
		expectOrgReady(ctx, name)

		// The pods start and end when the test says so, with the times a kubelet would report.
		startNow := func(p *meteredPod) {
			p.start = time.Now().Truncate(time.Second)
			p.create(ctx)
		}
		endNow := func(p *meteredPod) {
			p.end = time.Now().Truncate(time.Second)
			p.setStatus(ctx)
		}
		finished := &meteredPod{ns: name, name: "finished", cpu: "250m", mem: "64Mi"}
		deleted := &meteredPod{ns: web, name: "deleted", cpu: "1", mem: "1Gi"}
		running := &meteredPod{ns: web, name: "running", cpu: "1500m", mem: "300Mi"}
		pods := []*meteredPod{finished, deleted, running}
		for _, p := range pods {
			startNow(p)
		}
		// A pod never bound to a node uses nothing.
		Expect(k8s.Create(ctx, pod(name, "pending", "4", "4Gi"))).To(Succeed())
		time.Sleep(2 * time.Second)
		endNow(finished)
		time.Sleep(time.Second)
		endNow(deleted)
		Expect(k8s.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: deleted.ns, Name: deleted.name}})).To(Succeed())

		By("the deleted pod's usage reaches a checkpoint before the restart")
		Eventually(func(g Gomega) {
			r := expectReportMatches(g, name, pods, 0)
			g.Expect(r.Status.CheckpointTime.Time).To(BeTemporally(">", deleted.end))
			// The create was the first interval's write: no checkpoint sooner than an interval after it.
			g.Expect(r.Status.CheckpointTime.Add(settleDelay)).To(BeTemporally(">=", r.CreationTimestamp.Add(meterInterval)))
			g.Expect(r.Name).To(Equal(name + "-" + startDate.UTC().Format(time.DateOnly)))
			g.Expect(r.Status.Namespaces).To(HaveLen(2))
			g.Expect(r.Status.Days).NotTo(BeEmpty())
			g.Expect(milliOf(r.Status.Total.Limits.CPU)).To(Equal(milliOf(r.Status.Total.Requests.CPU)), "limits equal requests here")
			g.Expect(r.Status.Total.Credits).To(BeNil(), "no plan, no prices")
			org := getOrg(g, name)
			g.Expect(org.Status.Metering).NotTo(BeNil())
			g.Expect(org.Status.Metering.Report).To(Equal(r.Name))
		}).Should(Succeed())

		By("restarting the operator: everything it held in memory is gone")
		Expect(env.RestartOperator()).To(Succeed())
		mgrClient = env.Manager.GetClient()

		By("the running pod finishes and a new one runs its whole life after the restart")
		late := &meteredPod{ns: name, name: "late", cpu: "2", mem: "2Gi"}
		startNow(late)
		pods = append(pods, late)
		time.Sleep(2 * time.Second)
		endNow(running)
		endNow(late)
		var want int64
		for _, p := range pods {
			want += int64(p.end.Sub(p.start) / time.Second)
		}
		Expect(want).To(BeNumerically(">=", 4))
		Eventually(func(g Gomega) {
			r := expectReportMatches(g, name, pods, want)
			g.Expect(r.Status.CheckpointTime.Time).To(BeTemporally(">=", late.end))
			// Per namespace too.
			for _, ns := range r.Status.Namespaces {
				var in []*meteredPod
				for _, p := range pods {
					if p.ns == ns.Name {
						in = append(in, p)
					}
				}
				ps, mcpu, bytes := integral(in, r.Spec.PeriodStart.Time, r.Status.CheckpointTime.Time)
				g.Expect(ns.PodSeconds).To(Equal(ps), ns.Name)
				g.Expect(milliOf(ns.CPU)).To(Equal(mcpu), ns.Name)
				g.Expect(valueOf(ns.Memory)).To(Equal(bytes.Int64()), ns.Name)
				g.Expect(milliOf(ns.Limits.CPU)).To(Equal(mcpu), "%s: its pods' limits equal their requests", ns.Name)
				g.Expect(valueOf(ns.Limits.Memory)).To(Equal(bytes.Int64()), ns.Name)
			}
		}).WithTimeout(timeout + 2*meterInterval).Should(Succeed())

		By("once nothing runs, the report is no longer written")
		r := getReport(Default, name)
		Consistently(func(g Gomega) {
			g.Expect(getReport(g, name).ResourceVersion).To(Equal(r.ResourceVersion))
		}, 3*meterInterval).Should(Succeed())
	})

	It("splits a pod's lifetime at each in-place resize, at the second the API server took it", func(ctx SpecContext) {
		name := uniqueName("resize")
		createSubscribedOrganization(ctx, name, "", time.Now().Add(-time.Hour).Truncate(time.Second))
		expectOrgReady(ctx, name)
		p := &meteredPod{ns: name, name: "resized", cpu: "1", mem: "100Mi", allocated: "1", start: time.Now().Add(-5 * time.Second).Truncate(time.Second)}
		p.create(ctx)
		// writtenAt is when the API server recorded the pod's last write through subresource.
		writtenAt := func(po *corev1.Pod, subresource string) time.Time {
			GinkgoHelper()
			for _, f := range po.ManagedFields {
				if f.Subresource == subresource {
					return f.Time.Time
				}
			}
			Fail("the pod has no managedFields entry of " + subresource)
			return time.Time{}
		}
		resize := func(cpu string) time.Time {
			GinkgoHelper()
			patch := fmt.Sprintf(`{"spec":{"containers":[{"name":"app","resources":{"requests":{"cpu":%q},"limits":{"cpu":%q}}}]}}`, cpu, cpu)
			po := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: p.name}}
			Expect(k8s.SubResource("resize").Patch(ctx, po, client.RawPatch(types.StrategicMergePatchType, []byte(patch)))).To(Succeed())
			return writtenAt(po, "resize")
		}
		// actuate reports, as the kubelet does once it has applied a resize, what the pod runs with.
		actuate := func(cpu string) time.Time {
			GinkgoHelper()
			p.allocated = cpu
			p.setStatus(ctx)
			return writtenAt(p.written, "status")
		}
		// Growing counts from the request (quota charges the larger of spec and allocation);
		// shrinking from the kubelet's report.
		time.Sleep(2 * time.Second)
		grown := resize("3")
		time.Sleep(time.Second)
		actuate("3")
		time.Sleep(time.Second)
		resize("500m")
		time.Sleep(time.Second)
		shrunk := actuate("500m")
		time.Sleep(time.Second)
		p.end = time.Now().Truncate(time.Second)
		p.setStatus(ctx)
		Expect(shrunk).To(BeTemporally(">", grown))

		want := 1000*int64(grown.Sub(p.start)/time.Second) + 3000*int64(shrunk.Sub(grown)/time.Second) + 500*int64(p.end.Sub(shrunk)/time.Second)
		Eventually(func(g Gomega) {
			r := getReport(g, name)
			g.Expect(r.Status.CheckpointTime).NotTo(BeNil())
			g.Expect(r.Status.CheckpointTime.Time).To(BeTemporally(">=", p.end))
			g.Expect(r.Status.Total.PodSeconds).To(Equal(int64(p.end.Sub(p.start) / time.Second)))
			g.Expect(milliOf(r.Status.Total.Requests.CPU)).To(Equal(want))
			g.Expect(milliOf(r.Status.Total.Limits.CPU)).To(Equal(want))
		}).WithTimeout(timeout + 2*meterInterval).Should(Succeed())
	})

	It("loses, of the pods deleted while the operator is down, exactly what docs/metering.md says", func(ctx SpecContext) {
		name := uniqueName("down")
		createSubscribedOrganization(ctx, name, "", time.Now().Add(-time.Hour).Truncate(time.Second))
		expectOrgReady(ctx, name)
		now := func() time.Time { return time.Now().Truncate(time.Second) }
		gone := &meteredPod{ns: name, name: "gone", cpu: "1", mem: "1Gi", start: now()}
		gone.create(ctx)
		Eventually(func(g Gomega) {
			g.Expect(getReport(g, name).Status.Total.PodSeconds).To(BeNumerically(">=", 2))
		}).Should(Succeed())

		By("stopping the operator; meanwhile one pod ends and is deleted, one lives and is deleted, one lives and stays")
		Expect(env.StopOperator()).To(Succeed())
		last := getReport(Default, name).Status.CheckpointTime.Time
		brief := &meteredPod{ns: name, name: "brief", cpu: "3", mem: "3Gi", start: now()}
		stays := &meteredPod{ns: name, name: "stays", cpu: "500m", mem: "512Mi", start: now()}
		brief.create(ctx)
		stays.create(ctx)
		time.Sleep(2 * time.Second)
		for _, p := range []*meteredPod{gone, brief, stays} {
			p.end = now()
			p.setStatus(ctx)
		}
		for _, p := range []*meteredPod{gone, brief} {
			Expect(k8s.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: p.name}})).To(Succeed())
		}
		Expect(env.StartOperator()).To(Succeed())
		mgrClient = env.Manager.GetClient()

		By("the report counts the deleted pod up to the last checkpoint, the brief one not at all, the one that stays exactly")
		cut := *gone
		cut.end = last
		Eventually(func(g Gomega) {
			r := getReport(g, name)
			g.Expect(r.Status.CheckpointTime.Time).To(BeTemporally(">=", stays.end))
			podSeconds, mcpu, _ := integral([]*meteredPod{&cut, stays}, r.Spec.PeriodStart.Time, r.Status.CheckpointTime.Time)
			g.Expect(r.Status.Total.PodSeconds).To(Equal(podSeconds))
			g.Expect(milliOf(r.Status.Total.Requests.CPU)).To(Equal(mcpu))
			lost, _, _ := integral([]*meteredPod{gone, brief}, last, r.Status.CheckpointTime.Time)
			g.Expect(lost).To(BeNumerically(">", 0), "the test deleted pods that ran after the last checkpoint")
		}).WithTimeout(timeout + 2*meterInterval).Should(Succeed())
	})

	It("finishes a period's report at its exact end and carries on in the next one's", func(ctx SpecContext) {
		name := uniqueName("roll")
		// The current period ends seconds from now.
		// Far enough that the pod below starts before it, even on a loaded machine.
		end := time.Now().Add(20 * time.Second).Truncate(time.Second)
		startDate := end.AddDate(0, -1, 0)
		createSubscribedOrganization(ctx, name, "", startDate)
		expectOrgReady(ctx, name)
		p := &meteredPod{ns: name, name: "across", cpu: "750m", mem: "128Mi", start: time.Now().Truncate(time.Second)}
		p.create(ctx)
		oldName, newName := name+"-"+startDate.UTC().Format(time.DateOnly), name+"-"+end.UTC().Format(time.DateOnly)
		Eventually(func(g Gomega) {
			old := &tenancyv1alpha1.OrganizationUsageReport{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: name, Name: oldName}, old)).To(Succeed())
			g.Expect(old.Status.CheckpointTime).NotTo(BeNil())
			g.Expect(old.Status.CheckpointTime.Time).To(BeTemporally("==", end))
			g.Expect(old.Status.Total.PodSeconds).To(Equal(int64(end.Sub(p.start) / time.Second)))
			cur := &tenancyv1alpha1.OrganizationUsageReport{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: name, Name: newName}, cur)).To(Succeed())
			g.Expect(cur.Spec.PeriodStart.Time).To(BeTemporally("==", end))
			g.Expect(cur.Status.CheckpointTime).NotTo(BeNil())
			g.Expect(cur.Status.Total.PodSeconds).To(BeNumerically(">", 0))
			g.Expect(cur.Status.Total.PodSeconds).To(Equal(int64(cur.Status.CheckpointTime.Sub(end) / time.Second)))
			org := getOrg(g, name)
			g.Expect(org).To(HaveField("Status.Metering.Report", newName))
			g.Expect(org.Status.Metering.PeriodStart.Time).To(BeTemporally("==", end))
		}).WithTimeout(time.Until(end) + timeout + 2*meterInterval).Should(Succeed())
	})

	It("drops the days of reports before the previous period and deletes reports past the retention", func(ctx SpecContext) {
		name := uniqueName("keep")
		startDate := time.Now().AddDate(0, -15, 0).Truncate(time.Second)
		createSubscribedOrganization(ctx, name, "", startDate)
		expectOrgReady(ctx, name)
		// Reports a platform admin restored: of the period 14 months back (past the retention),
		// 3 months back (before the previous period) and 1 month back (the previous period).
		report := func(monthsAfterStart int) *tenancyv1alpha1.OrganizationUsageReport {
			from, to := startDate.AddDate(0, monthsAfterStart, 0), startDate.AddDate(0, monthsAfterStart+1, 0)
			r := &tenancyv1alpha1.OrganizationUsageReport{
				ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: name + "-" + from.UTC().Format(time.DateOnly),
					Labels: map[string]string{tenancyv1alpha1.OrganizationLabel: name}},
				Spec: tenancyv1alpha1.OrganizationUsageReportSpec{Organization: name, PeriodStart: metav1.NewTime(from), PeriodEnd: metav1.NewTime(to)}}
			Expect(k8s.Create(ctx, r)).To(Succeed())
			r.Status.Days = []tenancyv1alpha1.DayUsage{{Date: from.UTC().Format(time.DateOnly), MeteredUsage: tenancyv1alpha1.MeteredUsage{PodSeconds: 60}}}
			r.Status.Total.PodSeconds = 60
			Expect(k8s.Status().Update(ctx, r)).To(Succeed())
			return r
		}
		expired, older, previous := report(1), report(12), report(14)
		touch(ctx, name)
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(expired), &tenancyv1alpha1.OrganizationUsageReport{})).To(MatchError(ContainSubstring("not found")))
			r := &tenancyv1alpha1.OrganizationUsageReport{}
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(older), r)).To(Succeed())
			g.Expect(r.Status.Days).To(BeEmpty())
			g.Expect(r.Status.Total.PodSeconds).To(BeEquivalentTo(60), "the total stays")
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(previous), r)).To(Succeed())
			g.Expect(r.Status.Days).To(HaveLen(1), "the previous period keeps its days")
		}).Should(Succeed())
	})

	Context("with the clock frozen", func() {
		AfterEach(func() { clock.Reset() })

		It("changes the allowance level at the exact second the credits reach 80 % and 100 %", func(ctx SpecContext) {
			name := allowanceOrganization(ctx, "frozen")
			start := time.Now().Truncate(time.Second)
			// Two pods from start: 2 credits per second, 80 credits at +40 s, 100 at +50 s.
			for _, n := range []string{"a", "b"} {
				(&meteredPod{ns: name, name: n, cpu: "10m", mem: "1Mi", start: start}).create(ctx)
			}
			at := func(seconds int, reason string, status metav1.ConditionStatus) {
				GinkgoHelper()
				clock.Freeze(start.Add(time.Duration(seconds) * time.Second))
				touch(ctx, name)
				Eventually(func(g Gomega) {
					org := getOrg(g, name)
					g.Expect(org.Status.ObservedGeneration).To(Equal(org.Generation))
					c := condition(org.Status.Conditions, tenancyv1alpha1.CreditsExhaustedCondition)
					g.Expect(c.Reason).To(Equal(reason), "at +%d s", seconds)
					g.Expect(c.Status).To(Equal(status))
				}).Should(Succeed())
			}
			at(39, tenancyv1alpha1.WithinAllowanceReason, metav1.ConditionFalse)
			at(40, tenancyv1alpha1.AllowanceNearlyUsedReason, metav1.ConditionFalse)
			at(49, tenancyv1alpha1.AllowanceNearlyUsedReason, metav1.ConditionFalse)
			Expect(k8s.Create(ctx, pod(name, "admitted", "10m", "1Mi"))).To(Succeed(), "a second before the allowance is used up, pods are admitted")
			at(50, tenancyv1alpha1.AllowanceExhaustedReason, metav1.ConditionTrue)
			Eventually(func() error { return k8s.Create(ctx, pod(name, "refused", "10m", "1Mi")) }).Should(MatchError(ContainSubstring("exceeded quota: " + controllers.ExpiredQuotaName)))
			Eventually(func(g Gomega) {
				g.Expect(countEvents(ctx, g, name, tenancyv1alpha1.AllowanceNearlyUsedReason)).To(Equal(1))
				g.Expect(countEvents(ctx, g, name, tenancyv1alpha1.AllowanceExhaustedReason)).To(Equal(1))
			}).Should(Succeed())
		})
	})

	It("says when the allowance passes 80 % and 100 %, once each, and then blocks new pods without deleting any", func(ctx SpecContext) {
		name := allowanceOrganization(ctx, "allow")
		now := time.Now().Truncate(time.Second)
		Eventually(func(g Gomega) {
			c := condition(getOrg(g, name).Status.Conditions, tenancyv1alpha1.CreditsExhaustedCondition)
			g.Expect(c.Reason).To(Equal(tenancyv1alpha1.WithinAllowanceReason))
		}).Should(Succeed())

		// 70 credits used: within; 80 at +10 s, 100 at +30 s.
		p := &meteredPod{ns: name, name: "burner", cpu: "10m", mem: "1Mi", start: now.Add(-70 * time.Second)}
		p.create(ctx)
		nearly, exhausted := p.start.Add(80*time.Second), p.start.Add(100*time.Second)
		Eventually(func(g Gomega) {
			c := condition(getOrg(g, name).Status.Conditions, tenancyv1alpha1.CreditsExhaustedCondition)
			g.Expect(c.Reason).To(Equal(tenancyv1alpha1.AllowanceNearlyUsedReason))
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		}).WithTimeout(40 * time.Second).Should(Succeed())
		Expect(time.Now()).To(BeTemporally(">=", nearly))
		Eventually(func(g Gomega) {
			c := condition(getOrg(g, name).Status.Conditions, tenancyv1alpha1.CreditsExhaustedCondition)
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			// Never before the crossing; how soon after depends on the machine, not on polling.
			g.Expect(c.LastTransitionTime.Time).To(BeTemporally(">=", exhausted.Truncate(time.Second)))
			g.Expect(c.LastTransitionTime.Time).To(BeTemporally("<", exhausted.Add(10*time.Second)))
		}).WithTimeout(60 * time.Second).Should(Succeed())
		Expect(time.Now()).To(BeTemporally(">=", exhausted))
		Eventually(func(g Gomega) {
			hasEvent(ctx, g, name, tenancyv1alpha1.AllowanceNearlyUsedReason)
			hasEvent(ctx, g, name, tenancyv1alpha1.AllowanceExhaustedReason)
			g.Expect(quotaHard(g, name, controllers.ExpiredQuotaName)).To(HaveKeyWithValue(corev1.ResourcePods, resource.MustParse("0")))
		}).Should(Succeed())
		Eventually(func() error { return k8s.Create(ctx, pod(name, "refused", "10m", "1Mi")) }).Should(MatchError(ContainSubstring("exceeded quota: " + controllers.ExpiredQuotaName)))
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: name, Name: "burner"}, &corev1.Pod{})).To(Succeed(), "nothing is deleted")
		// One event per crossing.
		Consistently(func(g Gomega) {
			g.Expect(countEvents(ctx, g, name, tenancyv1alpha1.AllowanceExhaustedReason)).To(Equal(1))
			g.Expect(countEvents(ctx, g, name, tenancyv1alpha1.AllowanceNearlyUsedReason)).To(Equal(1))
		}).Should(Succeed())
		org := getOrg(Default, name)
		Expect(meta.IsStatusConditionTrue(org.Status.Conditions, tenancyv1alpha1.CreditsExhaustedCondition)).To(BeTrue())
	})
})
