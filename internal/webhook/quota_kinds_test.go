package webhook_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/ledger"
	orgwebhook "github.com/orgoperator/org-operator/internal/webhook"
	"github.com/orgoperator/org-operator/test/testenv"
)

// countedKind is one kind the ledger counts, with how to make one and how to count the stored.
type countedKind struct {
	// quota is the resource limited, key the one the ledger counts it under.
	quota, key corev1.ResourceName
	make       func(ns, name string) client.Object
	list       client.ObjectList
}

func service(ns, name string) client.Object {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}, ClusterIP: corev1.ClusterIPNone},
	}
}

func stored(ctx SpecContext, namespaces []string, list client.ObjectList) int {
	GinkgoHelper()
	total := 0
	for _, ns := range namespaces {
		l := list.DeepCopyObject().(client.ObjectList)
		Expect(admin.List(ctx, l, client.InNamespace(ns))).To(Succeed())
		total += apimeta.LenList(l)
	}
	return total
}

var _ = Describe("Organization-wide quota on claims, storage and object counts", func() {
	DescribeTable("admits exactly the limit of 60 concurrent creations spread over 4 namespaces",
		func(ctx SpecContext, name string, kind countedKind) {
			const limit, attempts = 12, 60
			namespaces := limitedOrganization(ctx, name, corev1.ResourceList{kind.quota: resource.MustParse(fmt.Sprint(limit))}, 3)
			errs := createAtOnce(ctx, attempts, func(i int) client.Object {
				return kind.make(namespaces[i%len(namespaces)], fmt.Sprintf("o%03d", i))
			})
			Expect(admittedOf(errs, "exceeded organization quota: "+name)).To(Equal(limit))
			Expect(stored(ctx, namespaces, kind.list)).To(Equal(limit))

			By("the ledger settles every charge once the operator has seen the objects")
			Eventually(func(g Gomega) {
				l := quotaLedger(ctx, g, name)
				g.Expect(l.Reservations).To(BeEmpty())
				g.Expect(l.Observed).To(HaveKeyWithValue(kind.key, resource.MustParse(fmt.Sprint(limit))))
			}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
			Expect(admin.Create(ctx, kind.make(namespaces[0], "late"))).To(MatchError(ContainSubstring("exceeded organization quota: " + name)))
		},
		Entry("claims", "kind-claims", countedKind{corev1.ResourcePersistentVolumeClaims, corev1.ResourcePersistentVolumeClaims,
			func(ns, name string) client.Object { return testenv.Claim(ns, name, "1Gi", "") }, &corev1.PersistentVolumeClaimList{}}),
		Entry("Deployments", "kind-deployments", countedKind{"count/deployments.apps", "count/deployments.apps",
			func(ns, name string) client.Object { return testenv.Deployment(ns, name) }, &appsv1.DeploymentList{}}),
		Entry("Services", "kind-services", countedKind{"services", "count/services", service, &corev1.ServiceList{}}),
	)

	It("charges storage in total and per storage class", func(ctx SpecContext) {
		const name = "storage"
		namespaces := limitedOrganization(ctx, name, corev1.ResourceList{
			corev1.ResourceRequestsStorage:                      resource.MustParse("10Gi"),
			"gold.storageclass.storage.k8s.io/requests.storage": resource.MustParse("4Gi"),
		}, 1)
		Expect(admin.Create(ctx, testenv.Claim(namespaces[0], "gold-1", "3Gi", "gold"))).To(Succeed())
		Expect(admin.Create(ctx, testenv.Claim(namespaces[1], "gold-2", "2Gi", "gold"))).To(MatchError(ContainSubstring(
			"exceeded organization quota: storage, requested: gold.storageclass.storage.k8s.io/requests.storage=2Gi, " +
				"used: gold.storageclass.storage.k8s.io/requests.storage=3Gi, limited: gold.storageclass.storage.k8s.io/requests.storage=4Gi")))
		Expect(admin.Create(ctx, testenv.Claim(namespaces[1], "silver-1", "6Gi", "silver"))).To(Succeed())
		Expect(admin.Create(ctx, testenv.Claim(namespaces[0], "silver-2", "2Gi", "silver"))).To(MatchError(ContainSubstring(
			"requested: requests.storage=2Gi, used: requests.storage=9Gi, limited: requests.storage=10Gi")))
		Expect(admin.Create(ctx, testenv.Claim(namespaces[0], "silver-3", "1Gi", "silver"))).To(Succeed())
	})

	It("charges a claim's expansion with the storage it adds, once", func(ctx SpecContext) {
		const name = "expand"
		namespaces := limitedOrganization(ctx, name, corev1.ResourceList{corev1.ResourceRequestsStorage: resource.MustParse("10Gi")}, 0)
		old := testenv.Claim(namespaces[0], "data", "4Gi", "")
		Expect(admin.Create(ctx, old)).To(Succeed())
		Eventually(func(g Gomega) {
			l := quotaLedger(ctx, g, name)
			g.Expect(l.Reservations).To(BeEmpty())
			g.Expect(l.Observed).To(HaveKeyWithValue(corev1.ResourceRequestsStorage, resource.MustParse("4Gi")))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		// The API server expands only bound claims, and nothing binds them here: the webhook is
		// called as the API server would call it for an expansion.
		validator := &orgwebhook.ClaimValidator{Charger: ledger.NewCharger(env.Manager.GetClient(), admin, admin, env.Pods, clock.RealClock{})}
		expand := func(size string) error {
			grown := old.DeepCopy()
			grown.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse(size)
			req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
				UID: uuid.NewUUID(), Namespace: old.Namespace, Name: old.Name, Operation: admissionv1.Update,
			}}
			_, err := validator.ValidateUpdate(admission.NewContextWithRequest(ctx, req), old, grown)
			return err
		}
		Expect(expand("12Gi")).To(MatchError(ContainSubstring("requested: requests.storage=8Gi, used: requests.storage=4Gi, limited: requests.storage=10Gi")))
		Expect(expand("9Gi")).To(Succeed())
		Expect(expand("9Gi")).To(Succeed(), "a retried expansion is charged once")
		o := &tenancyv1alpha1.Organization{}
		Expect(admin.Get(ctx, client.ObjectKey{Name: name}, o)).To(Succeed())
		Expect(o.Status.Quotas.Ledger.Reservations).To(ConsistOf(HaveField("Usage", HaveKeyWithValue(corev1.ResourceRequestsStorage, resource.MustParse("5Gi")))))
		Expect(admin.Create(ctx, testenv.Claim(namespaces[0], "more", "2Gi", ""))).To(MatchError(ContainSubstring("exceeded organization quota: expand")))
	})

	It("lets objects through when the organization limits nothing they use", func(ctx SpecContext) {
		namespaces := quotaOrganization(ctx, "only-pods", "1", 0)
		Expect(admin.Create(ctx, testenv.Deployment(namespaces[0], "free"))).To(Succeed())
		Expect(admin.Create(ctx, testenv.Claim(namespaces[0], "free", "1Gi", ""))).To(Succeed())
		o := &tenancyv1alpha1.Organization{}
		Expect(admin.Get(ctx, client.ObjectKey{Name: "only-pods"}, o)).To(Succeed())
		Expect(reservationsOf(o)).To(BeEmpty())
	})
})
