package ledger

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func quota(name string, hard, used corev1.ResourceList) corev1.ResourceQuota {
	return corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ResourceQuotaSpec{Hard: hard},
		Status:     corev1.ResourceQuotaStatus{Hard: hard, Used: used},
	}
}

func TestCheckNamespaceQuotas(t *testing.T) {
	pod := podWith(list("cpu", "1800m"), nil)
	pod.Spec.Containers[0].Name = "app"
	scoped := quota("best-effort", list("pods", "0"), list("pods", "0"))
	scoped.Spec.Scopes = []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeBestEffort}
	uncomputed := quota("new", list("pods", "1"), nil)
	uncomputed.Status = corev1.ResourceQuotaStatus{}

	for _, tc := range []struct {
		name   string
		quotas []corev1.ResourceQuota
		pod    *corev1.Pod
		usage  corev1.ResourceList
		want   string
	}{
		{"fits", []corev1.ResourceQuota{quota("compute", list("requests.cpu", "2"), list("requests.cpu", "0"))}, pod, PodUsage(pod), ""},
		{"exceeded, in the API server's words", []corev1.ResourceQuota{quota("compute", list("requests.cpu", "1500m", "pods", "10"), list("requests.cpu", "0", "pods", "0"))},
			pod, PodUsage(pod), "exceeded quota: compute, requested: requests.cpu=1800m, used: requests.cpu=0, limited: requests.cpu=1500m"},
		{"bare cpu means requests", []corev1.ResourceQuota{quota("compute", list("cpu", "2"), list("cpu", "1"))},
			pod, PodUsage(pod), "exceeded quota: compute, requested: cpu=1800m, used: cpu=1, limited: cpu=2"},
		{"pods", []corev1.ResourceQuota{quota("no-more-pods", list("pods", "0"), list("pods", "0"))},
			pod, PodUsage(pod), "exceeded quota: no-more-pods, requested: pods=1, used: pods=0, limited: pods=0"},
		{"every container states what a quota limits", []corev1.ResourceQuota{quota("mem", list("limits.memory", "1Gi", "requests.memory", "1Gi"), list("limits.memory", "0", "requests.memory", "0"))},
			pod, PodUsage(pod), "failed quota: mem: must specify limits.memory for: app; requests.memory for: app"},
		{"a resize is checked for what it adds", []corev1.ResourceQuota{quota("compute", list("requests.cpu", "2", "pods", "1"), list("requests.cpu", "1800m", "pods", "1"))},
			pod, list("requests.cpu", "300m"), "exceeded quota: compute, requested: requests.cpu=300m, used: requests.cpu=1800m, limited: requests.cpu=2"},
		{"scoped quotas are left to the API server", []corev1.ResourceQuota{scoped}, pod, PodUsage(pod), ""},
		{"a quota without usage yet is left to the API server", []corev1.ResourceQuota{uncomputed}, pod, PodUsage(pod), ""},
		{"resources the ledger does not know are left to the API server", []corev1.ResourceQuota{quota("gpu", list("requests.nvidia.com/gpu", "0"), list("requests.nvidia.com/gpu", "0"))}, pod, PodUsage(pod), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckNamespaceQuotas(tc.quotas, tc.pod, tc.usage)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("CheckNamespaceQuotas = %v, want nil", err)
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Errorf("CheckNamespaceQuotas = %v, want %q", err, tc.want)
			}
		})
	}
}
