package usage_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/orgoperator/org-operator/internal/resourcelist"
	"github.com/orgoperator/org-operator/internal/usage"
)

func resources(cpu, mem string) corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}
}

func TestAddCompute(t *testing.T) {
	a := usage.Compute{Requests: resources("1", "1Gi"), Limits: resources("1", "1Gi")}
	b := usage.Compute{Requests: resources("500m", "512Mi"), Limits: resources("500m", "512Mi")}
	sum := usage.AddCompute(a, b)
	if got := sum.Requests[corev1.ResourceCPU]; got.String() != "1500m" {
		t.Errorf("cpu = %s, want 1500m", got.String())
	}
	if got := sum.Limits[corev1.ResourceMemory]; got.String() != "1536Mi" {
		t.Errorf("memory limit = %s, want 1536Mi", got.String())
	}
	if empty := usage.AddCompute(usage.Compute{}, usage.Compute{}); len(empty.Requests) != 2 {
		t.Errorf("an empty sum should still carry cpu and memory, got %v", empty.Requests)
	}
	// The inputs are not changed.
	if got := a.Requests[corev1.ResourceCPU]; got.String() != "1" {
		t.Errorf("input changed to %s", got.String())
	}
}

func TestCanonicalComparesEqualAfterRoundTrip(t *testing.T) {
	c := usage.AddCompute(usage.Compute{Requests: resources("0.5", "1048576")}, usage.Compute{Requests: resources("500m", "1Mi")})
	got := resourcelist.Canonical(c.Requests)
	for name, q := range got {
		back := resource.MustParse(q.String())
		if back.String() != q.String() {
			t.Errorf("%s: %s does not survive a round trip (%s)", name, q.String(), back.String())
		}
	}
}
