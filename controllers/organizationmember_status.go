package controllers

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/conditions"
	"github.com/orgoperator/org-operator/internal/membership"
)

// updateStatus computes the member's conditions and status fields from what the reconcile found
// and did, and returns the reconcile's error: none when it stalled, since only a watched change
// can help then. The caller writes the status once.
func (r *OrganizationMemberReconciler) updateStatus(s *memberScope, reconcileErr error) error {
	m := s.member
	w := conditions.Writer{Object: m, Conditions: &m.Status.Conditions, Generation: m.Generation, Recorder: r.Recorder}
	if s.applied {
		m.Status.BoundNamespaces = boundNamespaces(s.bound)
		m.Status.Organization = ""
		if s.org != nil {
			m.Status.Organization = s.org.Name
		}
	}
	stalled, isStalled := conditions.AsStalled(reconcileErr)
	switch {
	case isStalled:
		w.Announce(conditions.Event{Type: corev1.EventTypeWarning, Action: "Bind"}, tenancyv1alpha1.RoleBindingsReadyCondition,
			metav1.ConditionFalse, stalled.Reason, stalled.Message)
	case s.applied && reconcileErr == nil:
		w.Set(tenancyv1alpha1.RoleBindingsReadyCondition, metav1.ConditionTrue, tenancyv1alpha1.ReconciledReason, boundMessage(m, len(s.namespaces)))
	}
	conditions.Summarize(w.Conditions, m.Generation, reconcileErr, tenancyv1alpha1.RoleBindingsReadyCondition)
	if reconcileErr != nil && !isStalled {
		return reconcileErr
	}
	m.Status.ObservedGeneration = m.Generation
	if m.Status.JoinedAt == nil && memberReady(m) {
		now := metav1.NewTime(r.Clock.Now())
		m.Status.JoinedAt = &now
	}
	return nil
}

// boundMessage says what the member is bound to.
func boundMessage(m *tenancyv1alpha1.OrganizationMember, namespaces int) string {
	role, _ := membership.ClusterRoleFor(m.Spec.KubernetesRole)
	msg := fmt.Sprintf("Bound to %s in %d namespaces", role, namespaces)
	if m.Spec.KubernetesRole == tenancyv1alpha1.KubernetesRoleNone {
		msg = "No namespace role (kubernetesRole None)"
	}
	if m.Spec.Admin {
		msg += "; organization admin"
	}
	return msg
}

func boundNamespaces(bindings []rbacv1.RoleBinding) []string {
	out := make([]string, 0, len(bindings))
	for _, rb := range bindings {
		out = append(out, rb.Namespace)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) == 0 {
		return nil
	}
	return out
}
