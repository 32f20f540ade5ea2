package quota_test

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/quota"
)

func list(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func ptr(v int32) *int32 { return &v }

func str(l corev1.ResourceList) map[string]string {
	out := map[string]string{}
	for k, v := range l {
		out[string(k)] = v.String()
	}
	return out
}

func TestEffective(t *testing.T) {
	plan := &tenancyv1alpha1.Quotas{
		MaxNamespaces: ptr(3), MaxMembers: ptr(10),
		NamespaceQuota:    list("pods", "20", "requests.cpu", "4"),
		OrganizationQuota: list("pods", "50"),
		LimitRange:        &tenancyv1alpha1.LimitRangeDefaults{Default: list("cpu", "500m")},
	}
	tests := []struct {
		name     string
		plan     *tenancyv1alpha1.Quotas
		override *tenancyv1alpha1.Quotas
		check    func(t *testing.T, q tenancyv1alpha1.Quotas)
	}{
		{"plan only", plan, nil, func(t *testing.T, q tenancyv1alpha1.Quotas) {
			if *q.MaxNamespaces != 3 || str(q.NamespaceQuota)["pods"] != "20" {
				t.Errorf("got %+v", q)
			}
		}},
		{"override only", nil, &tenancyv1alpha1.Quotas{MaxMembers: ptr(5)}, func(t *testing.T, q tenancyv1alpha1.Quotas) {
			if q.MaxNamespaces != nil || *q.MaxMembers != 5 {
				t.Errorf("got %+v", q)
			}
		}},
		{"counts override field by field", plan, &tenancyv1alpha1.Quotas{MaxNamespaces: ptr(8)}, func(t *testing.T, q tenancyv1alpha1.Quotas) {
			if *q.MaxNamespaces != 8 || *q.MaxMembers != 10 {
				t.Errorf("got namespaces=%d members=%d", *q.MaxNamespaces, *q.MaxMembers)
			}
		}},
		{"lists override resource by resource", plan, &tenancyv1alpha1.Quotas{NamespaceQuota: list("pods", "40", "requests.memory", "8Gi")}, func(t *testing.T, q tenancyv1alpha1.Quotas) {
			want := map[string]string{"pods": "40", "requests.cpu": "4", "requests.memory": "8Gi"}
			if !reflect.DeepEqual(str(q.NamespaceQuota), want) {
				t.Errorf("namespaceQuota = %v, want %v", str(q.NamespaceQuota), want)
			}
		}},
		{"limit range merges", plan, &tenancyv1alpha1.Quotas{LimitRange: &tenancyv1alpha1.LimitRangeDefaults{DefaultRequest: list("cpu", "100m")}}, func(t *testing.T, q tenancyv1alpha1.Quotas) {
			if str(q.LimitRange.Default)["cpu"] != "500m" || str(q.LimitRange.DefaultRequest)["cpu"] != "100m" {
				t.Errorf("limitRange = %+v", q.LimitRange)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, quota.Effective(tt.plan, tt.override)) })
	}
	// Merging never changes its inputs.
	quota.Effective(plan, &tenancyv1alpha1.Quotas{NamespaceQuota: list("pods", "1")})
	if str(plan.NamespaceQuota)["pods"] != "20" {
		t.Errorf("plan changed: %v", str(plan.NamespaceQuota))
	}
}

func TestExceeded(t *testing.T) {
	q := tenancyv1alpha1.Quotas{MaxNamespaces: ptr(2), MaxMembers: ptr(5), MaxAdmins: ptr(1), OrganizationQuota: list("pods", "10", "requests.cpu", "2")}
	got := quota.Exceeded(q, quota.Counts{Namespaces: 3, Members: 5, Admins: 2}, list("pods", "12", "requests.cpu", "1500m"))
	want := []tenancyv1alpha1.QuotaExcess{
		{Name: "maxAdmins", Hard: "1", Used: "2"},
		{Name: "maxNamespaces", Hard: "2", Used: "3"},
		{Name: "pods", Hard: "10", Used: "12"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Exceeded = %+v, want %+v", got, want)
	}
	if got := quota.Exceeded(tenancyv1alpha1.Quotas{}, quota.Counts{Namespaces: 100}, nil); got != nil {
		t.Errorf("no quotas, nothing exceeded; got %+v", got)
	}
}

func BenchmarkEffective(b *testing.B) {
	plan := &tenancyv1alpha1.Quotas{MaxNamespaces: ptr(3), NamespaceQuota: list("pods", "20", "requests.cpu", "4", "requests.memory", "8Gi")}
	override := &tenancyv1alpha1.Quotas{NamespaceQuota: list("pods", "40")}
	b.ReportAllocs()
	for b.Loop() {
		quota.Effective(plan, override)
	}
}
