package podcache_test

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/orgoperator/org-operator/internal/podcache"
	"github.com/orgoperator/org-operator/internal/resourcelist"
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

func compact(pods []corev1.Pod) []*podcache.Pod {
	out := make([]*podcache.Pod, len(pods))
	for i := range pods {
		out[i] = podcache.FromPod(&pods[i])
	}
	return out
}

func TestSum(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	sidecar := container("100m", "10Mi")
	sidecar.RestartPolicy = &always
	overhead := podWith(corev1.PodRunning, nil, container("250m", "128Mi"))
	overhead.Spec.Overhead = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("16Mi")}

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
		{"overhead is added", []corev1.Pod{overhead}, 1, "300m", "144Mi"},
		{"containers without requests", []corev1.Pod{podWith(corev1.PodRunning, nil, container("", ""))}, 1, "0", "0"},
		{"an unknown phase counts", []corev1.Pod{podWith("", nil, container("1", ""))}, 1, "1", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, got := podcache.Sum(compact(tt.pods))
			if n != tt.wantCount {
				t.Errorf("count = %d, want %d", n, tt.wantCount)
			}
			for _, l := range []corev1.ResourceList{got.Requests, got.Limits} {
				if cpu := l[corev1.ResourceCPU]; cpu.String() != tt.wantCPU {
					t.Errorf("cpu = %s, want %s", cpu.String(), tt.wantCPU)
				}
				if mem := l[corev1.ResourceMemory]; mem.String() != tt.wantMem {
					t.Errorf("memory = %s, want %s", mem.String(), tt.wantMem)
				}
			}
			if again := resourcelist.Canonical(got.Requests); len(again) != 2 {
				t.Errorf("requests %v should carry exactly cpu and memory", got.Requests)
			}
		})
	}
}

func TestFromPod(t *testing.T) {
	pod := podWith(corev1.PodRunning, nil, container("1500m", "1Gi"))
	pod.Name, pod.Namespace, pod.UID, pod.Generation = "web", "acme", "u-1", 3
	pod.Labels = map[string]string{"app": "web"}
	pod.Spec.Containers[0].Resources.Requests[corev1.ResourceEphemeralStorage] = resource.MustParse("2Gi")
	got := podcache.FromPod(&pod)
	want := podcache.Amounts{CPU: 1500, Memory: 1 << 30, EphemeralStorage: 2 << 30}
	if got.Requests != want || got.Name != "web" || got.Namespace != "acme" || got.UID != "u-1" || got.Generation != 3 || got.Terminal {
		t.Errorf("FromPod = %+v, want requests %+v and the pod's identity", got, want)
	}
	if got.Labels != nil {
		t.Errorf("labels kept: %v; the cache keeps name, namespace, UID and generation only", got.Labels)
	}
	if got.GetObjectKind().GroupVersionKind().Kind != "Pod" {
		t.Error("a compact pod says it is a Pod")
	}
	cp := got.DeepCopyObject().(*podcache.Pod)
	cp.Name = "other"
	if got.Name != "web" {
		t.Error("DeepCopyObject shares the object")
	}
}

// BenchmarkSum sums the pods of a large organization: the work of one usage refresh.
func BenchmarkSum(b *testing.B) {
	for _, n := range []int{30, 3000} {
		pods := make([]corev1.Pod, n)
		for i := range pods {
			pods[i] = podWith(corev1.PodRunning, nil, container(fmt.Sprintf("%dm", 100+i%10), "128Mi"), container("50m", "32Mi"))
		}
		cached := compact(pods)
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				podcache.Sum(cached)
			}
		})
	}
}

// BenchmarkFromPod is the work the informer does per pod event.
func BenchmarkFromPod(b *testing.B) {
	pod := podWith(corev1.PodRunning, nil, container("100m", "128Mi"), container("50m", "32Mi"))
	b.ReportAllocs()
	for b.Loop() {
		podcache.FromPod(&pod)
	}
}

func TestLifetime(t *testing.T) {
	at := func(s int64) metav1.Time { return metav1.Unix(s, 0) }
	scheduled := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: at(100)}
	started := at(110)
	finished := func(s int64) corev1.ContainerStatus {
		return corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: at(s)}}}
	}
	deleting := at(900)
	tests := []struct {
		name       string
		pod        corev1.Pod
		start, end int64
	}{
		{"pending, not bound", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending}}, 0, 0},
		{"bound: from the binding", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{scheduled}}}, 100, 0},
		{"started without a condition", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &started}}, 110, 0},
		{"succeeded: last container to finish", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded, StartTime: &started,
			InitContainerStatuses: []corev1.ContainerStatus{finished(120)}, ContainerStatuses: []corev1.ContainerStatus{finished(500), finished(300)}}}, 110, 500},
		{"failed without container times: last condition", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed,
			Conditions: []corev1.PodCondition{scheduled, {Type: corev1.PodReady, LastTransitionTime: at(400)}}}}, 100, 400},
		{"being deleted: the end of its grace period", corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &deleting},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &started}}, 110, 900},
		{"ended before it started: nothing", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded, StartTime: &started,
			ContainerStatuses: []corev1.ContainerStatus{finished(50)}}}, 110, 110},
	}
	for _, tt := range tests {
		start, end := podcache.Lifetime(&tt.pod)
		if start != tt.start || end != tt.end {
			t.Errorf("%s: lifetime [%d, %d), want [%d, %d)", tt.name, start, end, tt.start, tt.end)
		}
		if c := podcache.FromPod(&tt.pod); c.Start != start || c.End != end {
			t.Errorf("%s: the compact pod keeps [%d, %d)", tt.name, c.Start, c.End)
		}
	}
}
