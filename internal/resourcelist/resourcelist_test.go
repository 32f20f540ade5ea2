package resourcelist_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/orgoperator/org-operator/internal/resourcelist"
)

func list(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

func TestSumIsCanonical(t *testing.T) {
	got := resourcelist.Sum(list("cpu", "0.5", "memory", "1048576"), list("cpu", "500m", "memory", "1Mi"), nil)
	want := list("cpu", "1", "memory", "2097152") // the first operand's format, as the API server would store it
	if !equality.Semantic.DeepEqual(got, want) {
		t.Fatalf("Sum = %v, want %v", got, want)
	}
	for name, q := range got {
		w := want[name]
		if q.String() != w.String() {
			t.Errorf("%s = %s, want the canonical %s", name, q.String(), w.String())
		}
	}
	if s := resourcelist.Sum(); s == nil || len(s) != 0 {
		t.Errorf("Sum() = %#v, want an empty list", s)
	}
}

func TestCanonicalOrNil(t *testing.T) {
	if got := resourcelist.CanonicalOrNil(corev1.ResourceList{}); got != nil {
		t.Errorf("CanonicalOrNil(empty) = %#v, want nil", got)
	}
	if got := resourcelist.CanonicalOrNil(list("cpu", "1000m")); got.Cpu().String() != "1" {
		t.Errorf("CanonicalOrNil(1000m) = %v, want 1", got)
	}
}

func TestRestrictAndBelow(t *testing.T) {
	got := resourcelist.Restrict(list("pods", "3", "cpu", "1"), list("pods", "10", "memory", "1Gi"))
	if len(got) != 2 || got.Pods().Value() != 3 || !got.Memory().IsZero() {
		t.Fatalf("Restrict = %v, want pods=3 and memory=0", got)
	}
	if !resourcelist.Below(list("pods", "3"), list("pods", "4")) {
		t.Error("3 pods should be below 4")
	}
	if resourcelist.Below(list("pods", "4", "cpu", "1"), list("pods", "4")) {
		t.Error("4 pods should not be below 4")
	}
	if !resourcelist.Below(list(), list("pods", "1")) {
		t.Error("nothing should be below 1 pod")
	}
}

func TestFormat(t *testing.T) {
	if got := resourcelist.Format(list("pods", "2", "cpu", "1500m")); got != "cpu=1500m,pods=2" {
		t.Errorf("Format = %q", got)
	}
}
