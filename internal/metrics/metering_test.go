package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/metrics"
)

func q(s string) *resource.Quantity { v := resource.MustParse(s); return &v }

func report(name string, start time.Time, podSeconds int64) *tenancyv1alpha1.OrganizationUsageReport {
	return &tenancyv1alpha1.OrganizationUsageReport{
		ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: name},
		Spec:       tenancyv1alpha1.OrganizationUsageReportSpec{Organization: "acme", PeriodStart: metav1.NewTime(start), PeriodEnd: metav1.NewTime(start.AddDate(0, 1, 0))},
		Status: tenancyv1alpha1.OrganizationUsageReportStatus{
			Total: tenancyv1alpha1.MeteredUsage{PodSeconds: podSeconds, Credits: q("12500m"),
				Limits: tenancyv1alpha1.ResourceSeconds{CPU: q("7200")}},
			Namespaces: []tenancyv1alpha1.NamespaceMeteredUsage{{Name: "acme", PodSeconds: podSeconds, CPU: q("3600500m"), Memory: q("1073741824"),
				Limits: tenancyv1alpha1.ResourceSeconds{CPU: q("7190"), Memory: q("2147483648")}}},
			DeletedNamespaces: &tenancyv1alpha1.MeteredUsage{PodSeconds: 10, Requests: tenancyv1alpha1.ResourceSeconds{CPU: q("5")},
				Limits: tenancyv1alpha1.ResourceSeconds{CPU: q("10")}},
			Allowance: q("100"),
		},
	}
}

// The counters come from each organization's latest report only, per namespace and for the
// deleted namespaces, with the report's exact values.
func TestMeteringCollector(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := tenancyv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		report("acme-2026-10-20", start.AddDate(0, -1, 0), 999999), report("acme-2026-11-20", start, 4200)).Build()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(metrics.NewMeteringCollector(c)); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			v := m.GetCounter().GetValue()
			if m.GetGauge() != nil {
				v = m.GetGauge().GetValue()
			}
			got[key] = v
		}
	}
	want := map[string]float64{
		"orgoperator_organization_pod_seconds_total namespace=(deleted) organization=acme":            10,
		"orgoperator_organization_pod_seconds_total namespace=acme organization=acme":                 4200,
		"orgoperator_organization_cpu_core_seconds_total namespace=(deleted) organization=acme":       5,
		"orgoperator_organization_cpu_core_seconds_total namespace=acme organization=acme":            3600.5,
		"orgoperator_organization_memory_byte_seconds_total namespace=acme organization=acme":         1 << 30,
		"orgoperator_organization_credits_total organization=acme":                                    12.5,
		"orgoperator_organization_credit_allowance organization=acme":                                 100,
		"orgoperator_organization_cpu_limit_core_seconds_total namespace=acme organization=acme":      7190,
		"orgoperator_organization_cpu_limit_core_seconds_total namespace=(deleted) organization=acme": 10,
		"orgoperator_organization_memory_limit_byte_seconds_total namespace=acme organization=acme":   2 << 30,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	for k := range got {
		if strings.Contains(k, "999999") {
			t.Errorf("a series of the previous period: %s", k)
		}
	}
	if v := got["orgoperator_organization_pod_seconds_total namespace=acme organization=acme"]; v == 999999 {
		t.Error("the previous period's report was read")
	}
}
