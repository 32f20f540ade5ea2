// Package conditions computes the kstatus-style conditions every kind reports (Ready, Stalled and
// the ones Ready summarises), and emits an event when a condition worth telling changes.
package conditions

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

// Set sets a condition for the given generation, keeping its transition time when its status does
// not change. It reports whether the status or reason changed: the transitions worth an event.
func Set(conds *[]metav1.Condition, generation int64, typ string, status metav1.ConditionStatus, reason, msg string) bool {
	old := meta.FindStatusCondition(*conds, typ)
	changed := old == nil || old.Status != status || old.Reason != reason
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: generation,
	})
	return changed
}

// Writer sets the conditions of one object for its current generation.
type Writer struct {
	Object     runtime.Object
	Conditions *[]metav1.Condition
	Generation int64
	Recorder   recorder.EventRecorder
	// Held, when set, keeps the events until the caller has written the status.
	Held *Announcements
}

// Announcements are events held until the status that records their conditions is written: a
// write that conflicts is computed again from fresh state, and would otherwise announce the same
// transition twice.
type Announcements []func()

// Emit emits the held events and forgets them.
func (a *Announcements) Emit() {
	for _, emit := range *a {
		emit()
	}
	*a = nil
}

// Set sets a condition; see the package function.
func (w Writer) Set(typ string, status metav1.ConditionStatus, reason, msg string) bool {
	return Set(w.Conditions, w.Generation, typ, status, reason, msg)
}

// Event describes the event a condition change emits: its type (Normal or Warning), the action
// taken and an optional related object.
type Event struct {
	Type    string
	Action  string
	Related runtime.Object
}

// Announce sets a condition and, when its status or reason changes, emits ev on the object with
// the condition's reason and message, so that the event is emitted once per transition.
func (w Writer) Announce(ev Event, typ string, status metav1.ConditionStatus, reason, msg string) {
	if w.Set(typ, status, reason, msg) {
		w.Emit(ev, reason, msg)
	}
}

// Emit emits ev on the object with reason and message: now, or once the status is written when
// the writer holds its events.
func (w Writer) Emit(ev Event, reason, msg string) {
	emit := func() { w.Recorder.Eventf(w.Object, ev.Related, ev.Type, reason, ev.Action, "%s", msg) }
	if w.Held != nil {
		*w.Held = append(*w.Held, emit)
		return
	}
	emit()
}

// StalledError is a failure no retry can fix: someone must change something. A reconcile that
// meets one reports it in Ready and Stalled and waits for a watched change instead of retrying.
type StalledError struct {
	Reason  string
	Message string
}

func (e *StalledError) Error() string { return e.Message }

// Stalled returns a StalledError.
func Stalled(reason, format string, args ...any) error {
	return &StalledError{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// AsStalled returns the first StalledError in err's tree.
func AsStalled(err error) (*StalledError, bool) {
	var s *StalledError
	return s, errors.As(err, &s)
}

// Summarize sets Ready and Stalled from what a reconcile found. Ready is False with a stalled
// error's reason when there is one, False with ReconcileError for any other error, otherwise the
// first of dependsOn that is not True (Unknown if one is missing), or True. Stalled is True with
// the stalled error's reason, and absent otherwise, as kstatus expects.
func Summarize(conds *[]metav1.Condition, generation int64, err error, dependsOn ...string) {
	stalled, isStalled := AsStalled(err)
	switch {
	case isStalled:
		Set(conds, generation, tenancyv1alpha1.ReadyCondition, metav1.ConditionFalse, stalled.Reason, Truncate(stalled.Message))
		Set(conds, generation, tenancyv1alpha1.StalledCondition, metav1.ConditionTrue, stalled.Reason, Truncate(stalled.Message))
		return
	case err != nil:
		Set(conds, generation, tenancyv1alpha1.ReadyCondition, metav1.ConditionFalse, tenancyv1alpha1.ReconcileErrorReason, Truncate(err.Error()))
	default:
		summarizeReady(conds, generation, dependsOn)
	}
	meta.RemoveStatusCondition(conds, tenancyv1alpha1.StalledCondition)
}

func summarizeReady(conds *[]metav1.Condition, generation int64, dependsOn []string) {
	for _, t := range dependsOn {
		c := meta.FindStatusCondition(*conds, t)
		if c == nil {
			Set(conds, generation, tenancyv1alpha1.ReadyCondition, metav1.ConditionUnknown,
				tenancyv1alpha1.ProgressingReason, fmt.Sprintf("%s not yet determined", t))
			return
		}
		if c.Status != metav1.ConditionTrue {
			Set(conds, generation, tenancyv1alpha1.ReadyCondition, c.Status, c.Reason, c.Message)
			return
		}
	}
	Set(conds, generation, tenancyv1alpha1.ReadyCondition, metav1.ConditionTrue, tenancyv1alpha1.ReconciledReason, "Reconciled")
}

// Truncate bounds a condition message: the API allows 32768 bytes and API server errors can be long.
func Truncate(s string) string {
	const max = 1024
	if len(s) > max {
		return s[:max-3] + "..."
	}
	return s
}
