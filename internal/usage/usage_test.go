package usage_test

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/orgoperator/org-operator/internal/usage"
)

func container(cpu, mem string) corev1.Container {
	rl := corev1.ResourceList{}
	if cpu != "" {
		rl[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		rl[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	return corev1.Container{Name: "c", Resources: corev1.ResourceRequirements{Requests: rl, Limits: rl}}
}

func podWith(phase corev1.PodPhase, init []corev1.Container, containers ...corev1.Container) corev1.Pod {
	return corev1.Pod{
		Spec:   corev1.PodSpec{InitContainers: init, Containers: containers},
		Status: corev1.PodStatus{Phase: phase},
	}
}

func TestSumPods(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	sidecar := container("100m", "10Mi")
	sidecar.RestartPolicy = &always

	tests := []struct {
		name      string
		pods      []corev1.Pod
		wantCount int32
		wantCPU   string
		wantMem   string
	}{
		{"no pods", nil, 0, "0", "0"},
		{"one container", []corev1.Pod{podWith(corev1.PodRunning, nil, container("250m", "128Mi"))}, 1, "250m", "128Mi"},
		{"containers add up", []corev1.Pod{podWith(corev1.PodPending, nil, container("250m", "128Mi"), container("750m", "896Mi"))}, 1, "1", "1Gi"},
		{"terminal pods do not count", []corev1.Pod{
			podWith(corev1.PodSucceeded, nil, container("1", "1Gi")),
			podWith(corev1.PodFailed, nil, container("1", "1Gi")),
			podWith(corev1.PodRunning, nil, container("1", "1Gi")),
		}, 1, "1", "1Gi"},
		{"a larger init container sets the request", []corev1.Pod{podWith(corev1.PodPending,
			[]corev1.Container{container("2", "64Mi")}, container("500m", "128Mi"))}, 1, "2", "128Mi"},
		{"sidecars add to the app containers", []corev1.Pod{podWith(corev1.PodRunning,
			[]corev1.Container{sidecar}, container("500m", "128Mi"))}, 1, "600m", "138Mi"},
		{"containers without requests", []corev1.Pod{podWith(corev1.PodRunning, nil, container("", ""))}, 1, "0", "0"},
		{"an unknown phase counts", []corev1.Pod{podWith("", nil, container("1", ""))}, 1, "1", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, got := usage.SumPods(tt.pods)
			if n != tt.wantCount {
				t.Errorf("count = %d, want %d", n, tt.wantCount)
			}
			req := usage.Canonical(got.Requests)
			if cpu := req[corev1.ResourceCPU]; cpu.String() != tt.wantCPU {
				t.Errorf("cpu = %s, want %s", cpu.String(), tt.wantCPU)
			}
			if mem := req[corev1.ResourceMemory]; mem.String() != tt.wantMem {
				t.Errorf("memory = %s, want %s", mem.String(), tt.wantMem)
			}
		})
	}
}

func TestAddCompute(t *testing.T) {
	_, a := usage.SumPods([]corev1.Pod{podWith(corev1.PodRunning, nil, container("1", "1Gi"))})
	_, b := usage.SumPods([]corev1.Pod{podWith(corev1.PodRunning, nil, container("500m", "512Mi"))})
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
	_, c := usage.SumPods([]corev1.Pod{podWith(corev1.PodRunning, nil, container("0.5", "1048576"), container("500m", "1Mi"))})
	got := usage.Canonical(c.Requests)
	for name, q := range got {
		back := resource.MustParse(q.String())
		if back.String() != q.String() {
			t.Errorf("%s: %s does not survive a round trip (%s)", name, q.String(), back.String())
		}
	}
}

// BenchmarkSumPods sums the pods of a large organization: the work of one usage refresh.
func BenchmarkSumPods(b *testing.B) {
	for _, n := range []int{30, 3000} {
		pods := make([]corev1.Pod, n)
		for i := range pods {
			pods[i] = podWith(corev1.PodRunning, nil, container(fmt.Sprintf("%dm", 100+i%10), "128Mi"), container("50m", "32Mi"))
		}
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				usage.SumPods(pods)
			}
		})
	}
}
