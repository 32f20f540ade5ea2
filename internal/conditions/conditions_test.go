package conditions_test

import (
	"errors"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/conditions"
)

type recorded struct{ eventType, reason, note string }

type fakeRecorder struct{ events []recorded }

func (f *fakeRecorder) Eventf(_ runtime.Object, _ runtime.Object, eventType, reason, _ string, note string, args ...any) {
	f.events = append(f.events, recorded{eventType, reason, fmt.Sprintf(note, args...)})
}

func (f *fakeRecorder) AnnotatedEventf(o, related runtime.Object, _ map[string]string, eventType, reason, action, note string, args ...any) {
	f.Eventf(o, related, eventType, reason, action, note, args...)
}

func TestAnnounceEmitsOncePerTransition(t *testing.T) {
	rec := &fakeRecorder{}
	org := &tenancyv1alpha1.Organization{}
	w := conditions.Writer{Object: org, Conditions: &org.Status.Conditions, Generation: 1, Recorder: rec}
	ev := conditions.Event{Type: corev1.EventTypeWarning, Action: "Quota"}

	w.Announce(ev, "QuotaExceeded", metav1.ConditionTrue, "OverQuota", "pods (used 5, hard 4)")
	w.Announce(ev, "QuotaExceeded", metav1.ConditionTrue, "OverQuota", "pods (used 6, hard 4)") // same state, new message
	w.Set("QuotaExceeded", metav1.ConditionFalse, "WithinQuota", "Within all quotas")
	w.Announce(ev, "QuotaExceeded", metav1.ConditionTrue, "OverQuota", "pods (used 5, hard 4)")

	if len(rec.events) != 2 {
		t.Fatalf("events = %v, want one per move to OverQuota", rec.events)
	}
	if c := meta.FindStatusCondition(org.Status.Conditions, "QuotaExceeded"); c.Message != "pods (used 5, hard 4)" {
		t.Fatalf("condition message = %q, want the latest", c.Message)
	}
}

func TestHeldEventsWaitForTheStatusWrite(t *testing.T) {
	rec := &fakeRecorder{}
	org := &tenancyv1alpha1.Organization{}
	var held conditions.Announcements
	w := conditions.Writer{Object: org, Conditions: &org.Status.Conditions, Generation: 1, Recorder: rec, Held: &held}

	w.Announce(conditions.Event{Type: corev1.EventTypeWarning, Action: "Quota"}, "QuotaExceeded", metav1.ConditionTrue, "OverQuota", "pods")
	w.Emit(conditions.Event{Type: corev1.EventTypeNormal, Action: "Bind"}, "RoleBindingsApplied", "bound")
	if len(rec.events) != 0 {
		t.Fatalf("events before the write = %v, want none", rec.events)
	}
	held.Emit()
	held.Emit() // emitted once, then forgotten
	want := []recorded{{corev1.EventTypeWarning, "OverQuota", "pods"}, {corev1.EventTypeNormal, "RoleBindingsApplied", "bound"}}
	if fmt.Sprint(rec.events) != fmt.Sprint(want) {
		t.Fatalf("events after the write = %v, want %v", rec.events, want)
	}
}

func TestSummarize(t *testing.T) {
	deps := []string{"NamespacesReady", "QuotasReady"}
	withDeps := func(quotas metav1.ConditionStatus) []metav1.Condition {
		var conds []metav1.Condition
		conditions.Set(&conds, 1, "NamespacesReady", metav1.ConditionTrue, "Reconciled", "2 namespaces")
		conditions.Set(&conds, 1, "QuotasReady", quotas, "Reconciled", "quotas")
		conditions.Set(&conds, 1, tenancyv1alpha1.StalledCondition, metav1.ConditionTrue, "Old", "left from before")
		return conds
	}
	for _, c := range []struct {
		name          string
		quotas        metav1.ConditionStatus
		err           error
		ready, reason string
		stalled       bool
	}{
		{"all true", metav1.ConditionTrue, nil, "True", tenancyv1alpha1.ReconciledReason, false},
		{"a dependency false", metav1.ConditionFalse, nil, "False", "Reconciled", false},
		{"a transient error", metav1.ConditionTrue, errors.New("listing members: timeout"), "False", tenancyv1alpha1.ReconcileErrorReason, false},
		{"a stalled error, wrapped", metav1.ConditionTrue, fmt.Errorf("home: %w", conditions.Stalled("NameCollision", "Namespace %s exists", "acme")),
			"False", "NameCollision", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			conds := withDeps(c.quotas)
			conditions.Summarize(&conds, 2, c.err, deps...)
			ready := meta.FindStatusCondition(conds, tenancyv1alpha1.ReadyCondition)
			if string(ready.Status) != c.ready || ready.Reason != c.reason || ready.ObservedGeneration != 2 {
				t.Fatalf("Ready = %s/%s (generation %d), want %s/%s (2)", ready.Status, ready.Reason, ready.ObservedGeneration, c.ready, c.reason)
			}
			stalled := meta.FindStatusCondition(conds, tenancyv1alpha1.StalledCondition)
			if (stalled != nil) != c.stalled || (stalled != nil && stalled.Reason != c.reason) {
				t.Fatalf("Stalled = %+v, want present %v with reason %s", stalled, c.stalled, c.reason)
			}
		})
	}
}
