package webhook_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/controllers"
	"github.com/orgoperator/org-operator/internal/ledger"
	orgwebhook "github.com/orgoperator/org-operator/internal/webhook"
)

func plainPod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	}
}

// cpuPod is a pod that requests cpu.
func cpuPod(ns, name, cpu string) *corev1.Pod {
	p := plainPod(ns, name)
	p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}
	return p
}

// quotaOrganization creates an organization limited to maxPods pods in all, with its home
// namespace and extra namespaces, and waits until the API server can charge every namespace's
// ResourceQuotas (kube-controller-manager has computed their status).
func quotaOrganization(ctx context.Context, name string, maxPods string, extra int) []string {
	GinkgoHelper()
	return limitedOrganization(ctx, name, corev1.ResourceList{corev1.ResourcePods: resource.MustParse(maxPods)}, extra)
}

// limitedOrganization is quotaOrganization with any organization-wide quota.
func limitedOrganization(ctx context.Context, name string, hard corev1.ResourceList, extra int) []string {
	GinkgoHelper()
	o := organization(name, tenancyv1alpha1.DeletionPolicyCascade)
	o.Spec.Quotas = &tenancyv1alpha1.Quotas{OrganizationQuota: hard}
	Expect(admin.Create(ctx, o)).To(Succeed())
	namespaces := []string{name}
	for i := range extra {
		ns := fmt.Sprintf("%s-%d", name, i)
		Expect(admin.Create(ctx, namespace(ns, orgLabel(name)))).To(Succeed())
		namespaces = append(namespaces, ns)
	}
	Eventually(func(g Gomega) {
		for _, ns := range namespaces {
			rq := &corev1.ResourceQuota{}
			g.Expect(admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: controllers.OrganizationQuotaName}, rq)).To(Succeed())
			for resource := range hard {
				g.Expect(rq.Status.Hard).To(HaveKey(resource))
				g.Expect(rq.Status.Used).To(HaveKey(resource))
			}
		}
	}).WithContext(ctx).Should(Succeed())
	return namespaces
}

func quotaStatus(ctx context.Context, g Gomega, name string) *tenancyv1alpha1.Organization {
	o := &tenancyv1alpha1.Organization{}
	g.Expect(admin.Get(ctx, client.ObjectKey{Name: name}, o)).To(Succeed())
	g.Expect(o.Status.Quotas).NotTo(BeNil())
	g.Expect(o.Status.Usage).NotTo(BeNil())
	return o
}

// quotaLedger polls like quotaStatus and also waits for the ledger, so a poll never dereferences nil.
func quotaLedger(ctx context.Context, g Gomega, name string) *tenancyv1alpha1.QuotaLedger {
	l := quotaStatus(ctx, g, name).Status.Quotas.Ledger
	g.Expect(l).NotTo(BeNil())
	return l
}

// reservationsOf reads the ledger's reservations; an organization without a ledger has none.
func reservationsOf(o *tenancyv1alpha1.Organization) []tenancyv1alpha1.QuotaReservation {
	if l := o.Status.Quotas.LedgerOrNil(); l != nil {
		return l.Reservations
	}
	return nil
}

func countPods(ctx context.Context, namespaces []string) int {
	GinkgoHelper()
	total := 0
	for _, ns := range namespaces {
		pods := &corev1.PodList{}
		Expect(admin.List(ctx, pods, client.InNamespace(ns))).To(Succeed())
		total += len(pods.Items)
	}
	return total
}

// decisions reads orgoperator_quota_ledger_decisions_total{decision}, over all resources, from
// the manager's registry.
func decisions(decision string) float64 {
	GinkgoHelper()
	families, err := ctrlmetrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	total := 0.0
	for _, f := range families {
		if f.GetName() != "orgoperator_quota_ledger_decisions_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "decision" && l.GetValue() == decision {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// createAtOnce sends n creations at the same moment, through a client that is not rate limited
// so that all of them are in flight at once, and returns their errors.
func createAtOnce(ctx context.Context, n int, object func(i int) client.Object) []error {
	GinkgoHelper()
	cfg := rest.CopyConfig(env.ControlPlane.Config)
	cfg.QPS, cfg.Burst = -1, n
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	Expect(err).NotTo(HaveOccurred())
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		obj := object(i)
		wg.Go(func() {
			<-start
			errs[i] = c.Create(ctx, obj)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// admittedOf counts the creations that succeeded, and expects every other one refused as
// Forbidden with the refusal in its message.
func admittedOf(errs []error, refusal string) int {
	GinkgoHelper()
	admitted := 0
	for _, err := range errs {
		if err == nil {
			admitted++
			continue
		}
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring(refusal))
	}
	return admitted
}

var _ = Describe("Organization-wide quota", func() {
	It("admits exactly the limit of 200 concurrent pods spread over 5 namespaces", func(ctx SpecContext) {
		const name, limit, attempts = "burst", 50, 200
		namespaces := quotaOrganization(ctx, name, fmt.Sprint(limit), 4)

		admittedBefore, refusedBefore := decisions("admitted"), decisions("refused")
		errs := createAtOnce(ctx, attempts, func(i int) client.Object {
			return plainPod(namespaces[i%len(namespaces)], fmt.Sprintf("p%03d", i))
		})

		admitted := admittedOf(errs, "exceeded organization quota: burst, requested: pods=1, used: pods=50, limited: pods=50")
		Expect(admitted).To(Equal(limit))
		Expect(countPods(ctx, namespaces)).To(Equal(limit))
		Expect(decisions("admitted") - admittedBefore).To(BeEquivalentTo(limit))
		Expect(decisions("refused") - refusedBefore).To(BeEquivalentTo(attempts - limit))

		By("status.usage and the ledger equal the real sum once the operator has seen every pod")
		Eventually(func(g Gomega) {
			o := quotaStatus(ctx, g, name)
			g.Expect(o.Status.Usage.Pods).To(BeEquivalentTo(limit))
			perNamespace := int32(0)
			for _, u := range o.Status.Usage.Namespaces {
				perNamespace += u.Pods
			}
			g.Expect(perNamespace).To(BeEquivalentTo(limit))
			g.Expect(o.Status.Usage.Namespaces).To(HaveLen(len(namespaces)))
			g.Expect(o.Status.Quotas.Ledger).NotTo(BeNil())
			g.Expect(o.Status.Quotas.Ledger.Reservations).To(BeEmpty())
			g.Expect(o.Status.Quotas.Ledger.Observed.Pods().Value()).To(BeEquivalentTo(limit))
		}).WithContext(ctx).Should(Succeed())

		By("a dry run is checked but charges nothing; a deleted pod makes room for exactly one")
		err := admin.Create(ctx, plainPod(namespaces[1], "dry"), client.DryRunAll)
		Expect(err).To(MatchError(ContainSubstring("exceeded organization quota: burst")))
		// Which namespaces the admitted pods landed in is up to the race: delete one wherever it is.
		var victim *corev1.Pod
		for _, ns := range namespaces {
			pods := &corev1.PodList{}
			Expect(admin.List(ctx, pods, client.InNamespace(ns))).To(Succeed())
			if len(pods.Items) > 0 {
				victim = &pods.Items[0]
				break
			}
		}
		Expect(victim).NotTo(BeNil())
		Expect(admin.Delete(ctx, victim)).To(Succeed())
		Eventually(func() error {
			return admin.Create(ctx, plainPod(namespaces[1], "dry"), client.DryRunAll)
		}).WithContext(ctx).Should(Succeed())
		Expect(admin.Create(ctx, plainPod(namespaces[2], "after-1"))).To(Succeed())
		Expect(admin.Create(ctx, plainPod(namespaces[3], "after-2"))).To(MatchError(ContainSubstring("exceeded organization quota: burst")))
		Expect(countPods(ctx, namespaces)).To(Equal(limit))
	})

	It("never overshoots when two replicas decide at once", func(ctx SpecContext) {
		const name, limit, attempts = "replicas", 20, 100
		namespaces := quotaOrganization(ctx, name, fmt.Sprint(limit), 1)
		// Two validators with their own queues and copies, as two webhook replicas have; the
		// organization's resourceVersion is all they share.
		replicas := []*orgwebhook.PodValidator{
			{Charger: ledger.NewCharger(env.Manager.GetClient(), admin, admin, env.Pods, clock.RealClock{})},
			{Charger: ledger.NewCharger(env.Manager.GetClient(), admin, admin, env.Pods, clock.RealClock{})},
		}
		errs := make([]error, attempts)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range attempts {
			wg.Go(func() {
				p := plainPod(namespaces[i%len(namespaces)], fmt.Sprintf("r%03d", i))
				p.UID = uuid.NewUUID()
				req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
					UID: uuid.NewUUID(), Namespace: p.Namespace, Name: p.Name, Operation: admissionv1.Create,
				}}
				<-start
				_, errs[i] = replicas[i%2].ValidateCreate(admission.NewContextWithRequest(ctx, req), p)
			})
		}
		close(start)
		wg.Wait()
		admitted := 0
		for _, err := range errs {
			if err == nil {
				admitted++
			} else {
				Expect(err).To(MatchError(ContainSubstring("exceeded organization quota: replicas")))
			}
		}
		Expect(admitted).To(Equal(limit))
		o := &tenancyv1alpha1.Organization{}
		Expect(admin.Get(ctx, client.ObjectKey{Name: name}, o)).To(Succeed())
		Expect(o.Status.Quotas.Ledger.Reservations).To(HaveLen(limit))
	})

	It("refuses itself, without a charge, a pod that the namespace's ResourceQuota would refuse", func(ctx SpecContext) {
		const name = "refused"
		namespaces := quotaOrganization(ctx, name, "2", 0)
		blocker := &corev1.ResourceQuota{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespaces[0], Name: "no-more-pods"},
			Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}},
		}
		Expect(admin.Create(ctx, blocker)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(blocker), blocker)).To(Succeed())
			g.Expect(blocker.Status.Used).To(HaveKey(corev1.ResourcePods))
		}).WithContext(ctx).Should(Succeed())

		err := admin.Create(ctx, plainPod(namespaces[0], "refused"))
		Expect(err).To(MatchError(ContainSubstring(`denied the request: pods "refused" is forbidden: exceeded quota: no-more-pods, requested: pods=1, used: pods=0, limited: pods=0`)))
		o := &tenancyv1alpha1.Organization{}
		Expect(admin.Get(ctx, client.ObjectKey{Name: name}, o)).To(Succeed())
		Expect(reservationsOf(o)).To(BeEmpty())

		Expect(admin.Delete(ctx, blocker)).To(Succeed())
		Eventually(func() error { // once the API server's quota admission has let go of the blocker
			return admin.Create(ctx, plainPod(namespaces[0], "one"))
		}).WithContext(ctx).Should(Succeed())
		Expect(admin.Create(ctx, plainPod(namespaces[0], "two"))).To(Succeed())
		Expect(admin.Create(ctx, plainPod(namespaces[0], "three"))).To(MatchError(ContainSubstring("exceeded organization quota: refused")))
	})

	It("does not hold room for a pod the namespace's ResourceQuota refused (issue 12)", func(ctx SpecContext) {
		const name = "ph"
		namespaces := limitedOrganization(ctx, name, corev1.ResourceList{corev1.ResourceRequestsCPU: resource.MustParse("2")}, 0)
		compute := &corev1.ResourceQuota{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespaces[0], Name: "compute"},
			Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceRequestsCPU: resource.MustParse("1500m")}},
		}
		Expect(admin.Create(ctx, compute)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(compute), compute)).To(Succeed())
			g.Expect(compute.Status.Used).To(HaveKey(corev1.ResourceRequestsCPU))
		}).WithContext(ctx).Should(Succeed())

		Expect(admin.Create(ctx, cpuPod(namespaces[0], "ph1", "1800m"))).To(MatchError(ContainSubstring(
			`pods "ph1" is forbidden: exceeded quota: compute, requested: requests.cpu=1800m, used: requests.cpu=0, limited: requests.cpu=1500m`)))
		Eventually(func() error {
			return admin.Create(ctx, cpuPod(namespaces[0], "ph2", "500m"))
		}).WithContext(ctx).WithTimeout(5 * time.Second).Should(Succeed())
		o := &tenancyv1alpha1.Organization{}
		Expect(admin.Get(ctx, client.ObjectKey{Name: name}, o)).To(Succeed())
		for _, r := range reservationsOf(o) {
			Expect(r.Name).NotTo(Equal("ph1"))
		}
	})

	It("drops, within seconds, the charge of a pod that a later admission step refused", func(ctx SpecContext) {
		const name = "scoped"
		namespaces := quotaOrganization(ctx, name, "2", 0)
		// The webhook judges only the quotas without scopes: it charges a pod that this one then
		// refuses.
		bestEffort := &corev1.ResourceQuota{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespaces[0], Name: "best-effort"},
			Spec: corev1.ResourceQuotaSpec{
				Hard:   corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")},
				Scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeBestEffort},
			},
		}
		Expect(admin.Create(ctx, bestEffort)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(bestEffort), bestEffort)).To(Succeed())
			g.Expect(bestEffort.Status.Used).To(HaveKey(corev1.ResourcePods))
		}).WithContext(ctx).Should(Succeed())

		Expect(admin.Create(ctx, cpuPod(namespaces[0], "one", "100m"))).To(Succeed())
		Expect(admin.Create(ctx, plainPod(namespaces[0], "best-effort"))).To(MatchError(ContainSubstring("exceeded quota: best-effort")))
		Eventually(func() error {
			return admin.Create(ctx, cpuPod(namespaces[0], "two", "100m"))
		}).WithContext(ctx).WithTimeout(5 * time.Second).Should(Succeed())
		Expect(admin.Create(ctx, cpuPod(namespaces[0], "three", "100m"))).To(MatchError(ContainSubstring("exceeded organization quota: scoped")))
		Expect(countPods(ctx, namespaces)).To(Equal(2))
	})

	It("makes room as soon as a deleted pod is gone, before the controller settles the ledger", func(ctx SpecContext) {
		const name = "freed"
		namespaces := quotaOrganization(ctx, name, "2", 1)
		Expect(admin.Create(ctx, plainPod(namespaces[0], "a"))).To(Succeed())
		Expect(admin.Create(ctx, plainPod(namespaces[1], "b"))).To(Succeed())
		Eventually(func(g Gomega) {
			l := quotaLedger(ctx, g, name)
			g.Expect(l.Reservations).To(BeEmpty())
			g.Expect(l.Observed.Pods().Value()).To(BeEquivalentTo(2))
		}).WithContext(ctx).Should(Succeed())
		Expect(admin.Create(ctx, plainPod(namespaces[1], "c"))).To(MatchError(ContainSubstring("exceeded organization quota: freed")))

		Expect(admin.Delete(ctx, plainPod(namespaces[0], "a"))).To(Succeed())
		Eventually(func(g Gomega) { // the operator's pod cache has seen the deletion
			pods, err := env.Pods.InNamespace(namespaces[0])
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pods).To(BeEmpty())
		}).WithContext(ctx).Should(Succeed())
		Expect(admin.Create(ctx, plainPod(namespaces[1], "c"))).To(Succeed())
		Expect(admin.Create(ctx, plainPod(namespaces[0], "d"))).To(MatchError(ContainSubstring("exceeded organization quota: freed")))
		Expect(countPods(ctx, namespaces)).To(Equal(2))
	})

	It("charges in-place resizes like creations", func(ctx SpecContext) {
		const name = "resize"
		namespaces := limitedOrganization(ctx, name, corev1.ResourceList{corev1.ResourceRequestsCPU: resource.MustParse("2")}, 1)
		r0, r1 := cpuPod(namespaces[0], "r0", "400m"), cpuPod(namespaces[1], "r1", "400m")
		Expect(admin.Create(ctx, r0)).To(Succeed())
		Expect(admin.Create(ctx, r1)).To(Succeed())
		resize := func(p *corev1.Pod, cpu string) error {
			p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse(cpu)
			return admin.SubResource("resize").Update(ctx, p)
		}
		Expect(resize(r0, "1500m")).To(Succeed())
		err := resize(r1, "1500m")
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err).To(MatchError(ContainSubstring(
			`pods "r1" is forbidden: exceeded organization quota: resize, requested: requests.cpu=1100m, used: requests.cpu=1900m, limited: requests.cpu=2`)))
		requested := func() int64 {
			total := int64(0)
			for _, ns := range namespaces {
				pods := &corev1.PodList{}
				Expect(admin.List(ctx, pods, client.InNamespace(ns))).To(Succeed())
				for _, p := range pods.Items {
					total += p.Spec.Containers[0].Resources.Requests.Cpu().MilliValue()
				}
			}
			return total
		}
		Expect(requested()).To(BeEquivalentTo(1900))

		By("a decrease frees room once the operator sees it")
		Expect(admin.Get(ctx, client.ObjectKeyFromObject(r0), r0)).To(Succeed())
		Expect(resize(r0, "400m")).To(Succeed())
		Eventually(func() error {
			Expect(admin.Get(ctx, client.ObjectKeyFromObject(r1), r1)).To(Succeed())
			return resize(r1, "1500m")
		}).WithContext(ctx).WithTimeout(5 * time.Second).Should(Succeed())
		Expect(requested()).To(BeEquivalentTo(1900))
		Expect(admin.Get(ctx, client.ObjectKeyFromObject(r0), r0)).To(Succeed())
		Expect(resize(r0, "600m")).To(MatchError(ContainSubstring("exceeded organization quota: resize, requested: requests.cpu=200m")))

		By("the ledger settles the resizes once the controller sees them")
		Eventually(func(g Gomega) {
			l := quotaLedger(ctx, g, name)
			g.Expect(l.Reservations).To(BeEmpty())
			g.Expect(l.Observed.Name(corev1.ResourceRequestsCPU, resource.DecimalSI).MilliValue()).To(BeEquivalentTo(1900))
		}).WithContext(ctx).Should(Succeed())
	})
})
