package ledger

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func str(l corev1.ResourceList) map[string]string {
	out := map[string]string{}
	for k, v := range l {
		out[string(k)] = v.String()
	}
	return out
}

func TestNamespaceShare(t *testing.T) {
	tests := []struct {
		name                     string
		orgHard, orgUsed, nsUsed corev1.ResourceList
		want                     map[string]string
	}{
		{"headroom added to what the namespace uses", list("pods", "50"), list("pods", "30"), list("pods", "10"), map[string]string{"pods": "30"}},
		{"nothing used yet", list("pods", "50", "requests.cpu", "4"), nil, nil, map[string]string{"pods": "50", "requests.cpu": "4"}},
		{"at the limit: no growth", list("pods", "50"), list("pods", "50"), list("pods", "20"), map[string]string{"pods": "20"}},
		{"over the limit: no growth, nothing taken", list("pods", "50"), list("pods", "60"), list("pods", "25"), map[string]string{"pods": "25"}},
		{"quantities with units", list("requests.memory", "10Gi"), list("requests.memory", "6Gi"), list("requests.memory", "512Mi"), map[string]string{"requests.memory": "4608Mi"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := str(NamespaceShare(tt.orgHard, tt.orgUsed, tt.nsUsed)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("share = %v, want %v", got, tt.want)
			}
		})
	}
}
