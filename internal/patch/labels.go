package patch

import "sigs.k8s.io/controller-runtime/pkg/client"

// HasLabels says obj carries every label in want, with its value.
func HasLabels(obj client.Object, want map[string]string) bool {
	have := obj.GetLabels()
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// MergeLabels sets every label in want on obj, keeping the others.
func MergeLabels(obj client.Object, want map[string]string) {
	labels := obj.GetLabels()
	if labels == nil {
		labels = make(map[string]string, len(want))
	}
	for k, v := range want {
		labels[k] = v
	}
	obj.SetLabels(labels)
}
