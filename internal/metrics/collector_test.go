package metrics_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	orgmetrics "github.com/orgoperator/org-operator/internal/metrics"
)

func usageResourceNames() []string {
	var names []string
	for _, r := range orgmetrics.UsageResources {
		names = append(names, r.Name)
	}
	return names
}

// scrape GETs the metrics endpoint with a bearer token ("" for none) and returns the status code
// and the parsed families.
func scrape(token string) (int, map[string]*dto.MetricFamily) {
	GinkgoHelper()
	req, err := http.NewRequest(http.MethodGet, metricsURL, nil)
	Expect(err).NotTo(HaveOccurred())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// The manager serves a self-signed certificate when no certificate directory is given.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback test server
	resp, err := c.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, families
}

// series returns the values of a family keyed by its labels other than organization, as
// "k=v,k=v" ("" for none), for one organization.
func series(families map[string]*dto.MetricFamily, name, org string) map[string]float64 {
	out := map[string]float64{}
	f, ok := families[name]
	if !ok {
		return out
	}
	for _, m := range f.GetMetric() {
		var labels []string
		match := false
		for _, l := range m.GetLabel() {
			if l.GetName() == "organization" {
				match = l.GetValue() == org
				continue
			}
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		if match {
			out[strings.Join(labels, ",")] = m.GetGauge().GetValue()
		}
	}
	return out
}

// serviceAccountToken creates a ServiceAccount (bound to clusterRole when not empty) and returns a
// token for it, as Prometheus would mount.
func serviceAccountToken(ctx context.Context, name, clusterRole string) string {
	GinkgoHelper()
	cs, err := kubernetes.NewForConfig(cp.Config)
	Expect(err).NotTo(HaveOccurred())
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	Expect(k8s.Create(ctx, sa)).To(Succeed())
	if clusterRole != "" {
		bindClusterRole(ctx, clusterRole, map[string]any{"kind": "ServiceAccount", "name": name, "namespace": "default"})
	}
	tr, err := cs.CoreV1().ServiceAccounts("default").CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return tr.Status.Token
}

func newOrganization(name, plan string) *tenancyv1alpha1.Organization {
	return &tenancyv1alpha1.Organization{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: tenancyv1alpha1.OrganizationSpec{
			DisplayName:  "Metrics " + name,
			Type:         tenancyv1alpha1.OrganizationTypeEnterprise,
			Subscription: &tenancyv1alpha1.Subscription{Plan: plan},
		},
	}
}

var _ = Describe("Organization metrics on the manager's metrics endpoint", Ordered, func() {
	ctx := context.Background()
	var token string

	BeforeAll(func() {
		token = serviceAccountToken(ctx, "prometheus", "org-operator-metrics-reader")
	})

	It("refuses scrapes without a token or without the metrics-reader role", func() {
		code, _ := scrape("")
		Expect(code).To(Equal(http.StatusUnauthorized))
		code, _ = scrape(serviceAccountToken(ctx, "nosy", ""))
		Expect(code).To(Equal(http.StatusForbidden))
	})

	It("exports one series set per organization, read from its status at scrape time", func() {
		ready := newOrganization("metrics-ready", "gold")
		Expect(k8s.Create(ctx, ready)).To(Succeed())
		ready.Status = tenancyv1alpha1.OrganizationStatus{
			ObservedGeneration: ready.Generation,
			Conditions: []metav1.Condition{{
				Type: tenancyv1alpha1.ReadyCondition, Status: metav1.ConditionTrue, Reason: tenancyv1alpha1.ReconciledReason,
				Message: "Reconciled", ObservedGeneration: ready.Generation, LastTransitionTime: metav1.Now(),
			}},
			HomeNamespace: "metrics-ready",
			MemberCount:   5,
			AdminCount:    2,
			Usage: &tenancyv1alpha1.OrganizationUsage{
				NamespaceCount: 3, Members: 5,
				WorkloadUsage: tenancyv1alpha1.WorkloadUsage{
					Pods: 7, Deployments: 2, StatefulSets: 1, Services: 4, PersistentVolumeClaims: 6,
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1500m"), corev1.ResourceMemory: resource.MustParse("2Gi")},
					Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("3"), corev1.ResourceMemory: resource.MustParse("4Gi")},
				},
			},
			Subscription: &tenancyv1alpha1.SubscriptionStatus{
				Plan: "gold", State: tenancyv1alpha1.SubscriptionGracePeriod, HasActiveSubscription: true,
				EndDate: &metav1.Time{Time: time.Now().Add(-time.Hour)},
			},
			Quotas: &tenancyv1alpha1.QuotaStatus{
				MaxMembers: ptr.To(int32(10)),
				Hard:       corev1.ResourceList{corev1.ResourcePods: resource.MustParse("50"), corev1.ResourceRequestsCPU: resource.MustParse("4")},
				Used:       corev1.ResourceList{corev1.ResourcePods: resource.MustParse("7"), corev1.ResourceRequestsCPU: resource.MustParse("1500m")},
			},
		}
		Expect(k8s.Status().Update(ctx, ready)).To(Succeed())

		fresh := newOrganization("metrics-new", "")
		fresh.Spec.Subscription = nil
		fresh.Spec.Type = tenancyv1alpha1.OrganizationTypeTrial
		Expect(k8s.Create(ctx, fresh)).To(Succeed())

		Eventually(func(g Gomega) {
			code, families := scrape(token)
			g.Expect(code).To(Equal(http.StatusOK))
			g.Expect(series(families, "orgoperator_organization_info", "metrics-ready")).To(Equal(map[string]float64{"plan=gold,type=Enterprise": 1}))
			g.Expect(series(families, "orgoperator_organization_ready", "metrics-ready")).To(Equal(map[string]float64{"": 1}))
			g.Expect(series(families, "orgoperator_organization_members", "metrics-ready")).To(Equal(map[string]float64{"role=admin": 2, "role=member": 3}))
			g.Expect(series(families, "orgoperator_organization_usage", "metrics-ready")).To(Equal(map[string]float64{
				"resource=namespaces": 3, "resource=members": 5, "resource=pods": 7, "resource=deployments": 2,
				"resource=statefulsets": 1, "resource=services": 4, "resource=persistentvolumeclaims": 6,
				"resource=requests.cpu": 1.5, "resource=requests.memory": 2 << 30,
				"resource=limits.cpu": 3, "resource=limits.memory": 4 << 30,
			}))

			g.Expect(series(families, "orgoperator_organization_subscription_state", "metrics-ready")).To(Equal(map[string]float64{
				"state=Trial": 0, "state=Active": 0, "state=GracePeriod": 1, "state=Expired": 0, "state=PlanNotFound": 0,
			}))
			expiry := series(families, "orgoperator_organization_subscription_expiry_seconds", "metrics-ready")
			g.Expect(expiry).To(HaveKeyWithValue("", BeNumerically("~", -3600, 120)), "an hour past its end date")
			g.Expect(series(families, "orgoperator_organization_quota_hard", "metrics-ready")).To(Equal(map[string]float64{
				"resource=maxMembers": 10, "resource=pods": 50, "resource=requests.cpu": 4,
			}))
			g.Expect(series(families, "orgoperator_organization_quota_used", "metrics-ready")).To(Equal(map[string]float64{
				"resource=pods": 7, "resource=requests.cpu": 1.5,
			}))

			// Not reconciled yet: info, ready 0 and no members; no usage until the operator observed it.
			g.Expect(series(families, "orgoperator_organization_info", "metrics-new")).To(Equal(map[string]float64{"plan=,type=Trial": 1}))
			g.Expect(series(families, "orgoperator_organization_ready", "metrics-new")).To(Equal(map[string]float64{"": 0}))
			g.Expect(series(families, "orgoperator_organization_members", "metrics-new")).To(Equal(map[string]float64{"role=admin": 0, "role=member": 0}))
			g.Expect(series(families, "orgoperator_organization_usage", "metrics-new")).To(BeEmpty())
			g.Expect(series(families, "orgoperator_organization_subscription_state", "metrics-new")).To(BeEmpty())

			// controller-runtime's own metrics are still served beside ours.
			g.Expect(families).To(HaveKey("orgoperator_metrics_list_errors_total"))
			g.Expect(families).To(HaveKey("rest_client_requests_total"))
		}).Should(Succeed())
	})

	It("follows status changes and drops the series of deleted organizations", func() {
		org := newOrganization("metrics-changing", "silver")
		Expect(k8s.Create(ctx, org)).To(Succeed())
		org.Status.ObservedGeneration = org.Generation
		org.Status.Conditions = []metav1.Condition{{
			Type: tenancyv1alpha1.ReadyCondition, Status: metav1.ConditionTrue, Reason: tenancyv1alpha1.ReconciledReason,
			ObservedGeneration: org.Generation, LastTransitionTime: metav1.Now(),
		}}
		Expect(k8s.Status().Update(ctx, org)).To(Succeed())
		Eventually(func(g Gomega) {
			_, families := scrape(token)
			g.Expect(series(families, "orgoperator_organization_ready", org.Name)).To(Equal(map[string]float64{"": 1}))
		}).Should(Succeed())

		By("a spec change the operator has not observed yet makes it not ready")
		org.Spec.Subscription.Plan = "platinum"
		Expect(k8s.Update(ctx, org)).To(Succeed())
		Eventually(func(g Gomega) {
			_, families := scrape(token)
			g.Expect(series(families, "orgoperator_organization_ready", org.Name)).To(Equal(map[string]float64{"": 0}))
			g.Expect(series(families, "orgoperator_organization_info", org.Name)).To(Equal(map[string]float64{"plan=platinum,type=Enterprise": 1}))
		}).Should(Succeed())

		By("deleting it removes its series")
		Expect(k8s.Delete(ctx, org)).To(Succeed())
		Eventually(func(g Gomega) {
			_, families := scrape(token)
			g.Expect(series(families, "orgoperator_organization_info", org.Name)).To(BeEmpty())
			g.Expect(series(families, "orgoperator_organization_ready", org.Name)).To(BeEmpty())
		}).Should(Succeed())
	})

	It("keeps label cardinality fixed: the documented resource values only", func() {
		_, families := scrape(token)
		for _, m := range families["orgoperator_organization_usage"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "resource" {
					Expect(usageResourceNames()).To(ContainElement(l.GetValue()))
				}
			}
		}
		Expect(fmt.Sprint(usageResourceNames())).To(Equal("[namespaces members pods deployments statefulsets services " +
			"persistentvolumeclaims requests.cpu requests.memory limits.cpu limits.memory]"))
	})

	It("is documented in docs/metrics.md: every family and every resource value", func() {
		doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "metrics.md"))
		Expect(err).NotTo(HaveOccurred())
		_, families := scrape(token)
		for name := range families {
			if strings.HasPrefix(name, orgmetrics.Namespace+"_") {
				Expect(string(doc)).To(ContainSubstring("`"+name+"`"), "docs/metrics.md does not describe %s", name)
			}
		}
		for _, r := range usageResourceNames() {
			Expect(string(doc)).To(ContainSubstring("`"+r+"`"), "docs/metrics.md does not list resource %s", r)
		}
	})
})
