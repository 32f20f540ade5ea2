package controllers

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/conditions"
)

// setProjectStatus records where a project stands: its namespace and usage once the namespace is
// the project's, or why it is not. A namespace becoming ready is told by the creation's event,
// a problem by its own, held in held until the caller has written the status.
func setProjectStatus(p *tenancyv1alpha1.OrganizationProject, org string, outcome projectOutcome,
	usage map[string]tenancyv1alpha1.WorkloadUsage, rec recorder.EventRecorder, held *conditions.Announcements) {
	p.Status.Organization = org
	p.Status.Namespace = outcome.namespace
	w := conditions.Writer{Object: p, Conditions: &p.Status.Conditions, Generation: p.Generation, Recorder: rec, Held: held}
	var stalled error // an untyped nil when there is none: Summarize tells errors apart
	switch {
	case outcome.namespace != "":
		u := usage[outcome.namespace]
		p.Status.Usage = &u
		w.Set(tenancyv1alpha1.NamespaceReadyCondition, metav1.ConditionTrue, tenancyv1alpha1.ReconciledReason,
			fmt.Sprintf("Namespace %s has the quotas and RoleBindings of organization %s", outcome.namespace, org))
	case outcome.problem != nil:
		p.Status.Usage = nil
		if outcome.stalled {
			stalled = outcome.problem
		}
		eventType := corev1.EventTypeNormal
		if outcome.stalled {
			eventType = corev1.EventTypeWarning
		}
		w.Announce(conditions.Event{Type: eventType, Action: "Create"}, tenancyv1alpha1.NamespaceReadyCondition,
			metav1.ConditionFalse, outcome.problem.Reason, outcome.problem.Message)
	default:
		p.Status.Usage = nil
		w.Set(tenancyv1alpha1.NamespaceReadyCondition, metav1.ConditionFalse, tenancyv1alpha1.ProgressingReason,
			"Creating namespace "+p.Spec.Namespace)
	}
	conditions.Summarize(w.Conditions, p.Generation, stalled, tenancyv1alpha1.NamespaceReadyCondition)
	p.Status.ObservedGeneration = p.Generation
}
