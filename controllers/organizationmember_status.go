package controllers

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/conditions"
	"github.com/orgoperator/org-operator/internal/membership"
)

// A member of an existing organization gets its status from the organization's reconcile, which
// binds it (setMemberBound); the member controller reports only a member without one
// (setMemberStalled).

// The setters hold their events in held until the caller has written the status.

// setMemberBound records that the member is bound as access says, in the organization org.
func setMemberBound(m *tenancyv1alpha1.OrganizationMember, org string, access []tenancyv1alpha1.MemberAccess,
	projects []tenancyv1alpha1.ProjectAccess, now time.Time, rec recorder.EventRecorder, held *conditions.Announcements) {
	m.Status.Organization = org
	m.Status.Subject = membership.SubjectString(membership.Subject(m))
	m.Status.Access = access
	m.Status.Projects = projects
	w := conditions.Writer{Object: m, Conditions: &m.Status.Conditions, Generation: m.Generation, Recorder: rec, Held: held}
	first := len(m.Status.Conditions) == 0
	if w.Set(tenancyv1alpha1.RoleBindingsReadyCondition, metav1.ConditionTrue, tenancyv1alpha1.RoleBindingsAppliedReason, boundMessage(m, org)) && !first {
		// Joining is in the status (joinedAt); what changes afterwards is worth an event.
		w.Emit(conditions.Event{Type: corev1.EventTypeNormal, Action: "Bind"}, tenancyv1alpha1.RoleBindingsAppliedReason, boundMessage(m, org))
	}
	conditions.Summarize(w.Conditions, m.Generation, nil, tenancyv1alpha1.RoleBindingsReadyCondition)
	m.Status.ObservedGeneration = m.Generation
	if m.Status.JoinedAt == nil {
		joined := metav1.NewTime(now)
		m.Status.JoinedAt = &joined
	}
}

// setMemberOutside records that the member, a service account of a namespace outside the
// organization org, is bound nowhere.
func setMemberOutside(m *tenancyv1alpha1.OrganizationMember, org string, rec recorder.EventRecorder, held *conditions.Announcements) {
	sa := m.Spec.ServiceAccount
	setMemberStalled(m, conditions.Stalled(tenancyv1alpha1.ServiceAccountOutsideOrganizationReason,
		"Service account %s/%s is not in a namespace of organization %s, so it is bound nowhere; name one of the organization's namespaces",
		sa.Namespace, sa.Name, org).(*conditions.StalledError), rec, held)
	m.Status.Organization = org
}

// setMemberStalled records that the member is in no organization, and why.
func setMemberStalled(m *tenancyv1alpha1.OrganizationMember, stalled *conditions.StalledError, rec recorder.EventRecorder, held *conditions.Announcements) {
	m.Status.Organization = ""
	m.Status.Subject = membership.SubjectString(membership.Subject(m))
	m.Status.Access = nil
	m.Status.Projects = nil
	w := conditions.Writer{Object: m, Conditions: &m.Status.Conditions, Generation: m.Generation, Recorder: rec, Held: held}
	w.Announce(conditions.Event{Type: corev1.EventTypeWarning, Action: "Bind"}, tenancyv1alpha1.RoleBindingsReadyCondition,
		metav1.ConditionFalse, stalled.Reason, stalled.Message)
	conditions.Summarize(w.Conditions, m.Generation, stalled, tenancyv1alpha1.RoleBindingsReadyCondition)
	m.Status.ObservedGeneration = m.Generation
}

// boundMessage says what the member is bound to. It names no namespaces or counts, so that the
// member's status stays as it is while namespaces join and leave the organization.
func boundMessage(m *tenancyv1alpha1.OrganizationMember, org string) string {
	msg := "No namespace role (kubernetesRole None)"
	if role, ok := membership.ClusterRoleFor(m.Spec.KubernetesRole); ok {
		msg = fmt.Sprintf("Bound to %s in every namespace of organization %s", role, org)
	}
	if len(m.Status.Projects) > 0 {
		msg += fmt.Sprintf("; another role in %d of its projects (status.projects)", len(m.Status.Projects))
	}
	if m.Spec.Admin {
		msg += "; organization admin"
	}
	return msg
}
