package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/conditions"
	"github.com/orgoperator/org-operator/internal/quota"
	"github.com/orgoperator/org-operator/internal/resourcelist"
)

// updateStatus computes every condition and status field of the organization from what the
// reconcile read and did, and returns the reconcile's error: none when it stalled, since only a
// watched change can help then. The caller writes the status once.
func (r *OrganizationReconciler) updateStatus(ctx context.Context, s *organizationScope, reconcileErr error) error {
	org := s.org
	w := conditions.Writer{Object: org, Conditions: &org.Status.Conditions, Generation: org.Generation, Recorder: r.Recorder, Held: &s.announcements}
	switch {
	case !s.read:
		conditions.Summarize(w.Conditions, org.Generation, reconcileErr)
		return reconcileErr
	case !org.DeletionTimestamp.IsZero():
		setDeletionStatus(s, w)
		return reconcileErr
	}
	setNamespacesStatus(s, w)
	setMembersStatus(s, w)
	if s.owner != nil {
		org.Status.Owner = s.owner
	}
	if s.usage != nil {
		org.Status.Usage = s.usage
	}
	if r.setSubscriptionStatus(s, w) {
		ctrl.LoggerFrom(ctx).Info("Subscription state", "state", s.subscription.State, "plan", s.subscription.Plan)
	}
	setQuotaStatus(s, w)
	setMeteringStatus(s, w)
	conditions.Summarize(w.Conditions, org.Generation, reconcileErr,
		tenancyv1alpha1.NamespacesReadyCondition, tenancyv1alpha1.MembersReadyCondition, tenancyv1alpha1.QuotasReadyCondition)
	if _, stalled := conditions.AsStalled(reconcileErr); reconcileErr != nil && !stalled {
		return reconcileErr
	}
	org.Status.ObservedGeneration = org.Generation
	return nil
}

// setDeletionStatus reports a deletion that deletionPolicy Block holds back; a deletion that
// proceeds changes nothing, so that releasing the organization makes no status write.
func setDeletionStatus(s *organizationScope, w conditions.Writer) {
	if len(s.deletionBlocked) == 0 {
		return
	}
	w.Announce(conditions.Event{Type: corev1.EventTypeWarning, Action: "Delete"}, tenancyv1alpha1.ReadyCondition,
		metav1.ConditionFalse, tenancyv1alpha1.DeletionBlockedReason, deletionBlockedMessage(s.deletionBlocked))
	meta.RemoveStatusCondition(w.Conditions, tenancyv1alpha1.StalledCondition)
	// Deletion bumps the generation; this status describes it.
	s.org.Status.ObservedGeneration = s.org.Generation
}

// setNamespacesStatus sets status.homeNamespace, status.namespaces and NamespacesReady. While the
// home namespace is still to be created (its creation failed), they stay as they were.
func setNamespacesStatus(s *organizationScope, w conditions.Writer) {
	org := s.org
	if p := s.homeProblem; p != nil {
		org.Status.HomeNamespace = ""
		org.Status.Namespaces = s.namespaceNames()
		if p.reason == tenancyv1alpha1.NameCollisionReason {
			w.Announce(conditions.Event{Type: corev1.EventTypeWarning, Action: "Create", Related: s.home},
				tenancyv1alpha1.NamespacesReadyCondition, metav1.ConditionFalse, p.reason, p.message)
			return
		}
		w.Set(tenancyv1alpha1.NamespacesReadyCondition, metav1.ConditionFalse, p.reason, p.message)
		return
	}
	if s.home == nil {
		return
	}
	org.Status.HomeNamespace = s.home.Name
	org.Status.Namespaces = s.namespaceNames()
	w.Set(tenancyv1alpha1.NamespacesReadyCondition, metav1.ConditionTrue, tenancyv1alpha1.ReconciledReason,
		fmt.Sprintf("%d namespaces", len(org.Status.Namespaces)))
}

// setMembersStatus counts the organization's members and admins and sets MembersReady.
func setMembersStatus(s *organizationScope, w conditions.Writer) {
	var admins, notReady int32
	for i := range s.members {
		if s.members[i].Spec.Admin {
			admins++
		}
		if !memberReady(&s.members[i]) {
			notReady++
		}
	}
	s.org.Status.MemberCount = int32(len(s.members))
	s.org.Status.AdminCount = admins
	setAdminMissing(s, w)
	if notReady > 0 {
		// No counts or names in the message: they change as each member becomes Ready, and every
		// change would be another status write. The members' own status says which.
		w.Set(tenancyv1alpha1.MembersReadyCondition, metav1.ConditionFalse, tenancyv1alpha1.MembersNotReadyReason,
			fmt.Sprintf("Waiting for members to become Ready; kubectl get orgmembers -n %s shows which", s.org.Name))
		return
	}
	w.Set(tenancyv1alpha1.MembersReadyCondition, metav1.ConditionTrue, tenancyv1alpha1.ReconciledReason,
		fmt.Sprintf("%d members, %d admins", len(s.members), admins))
}

// setAdminMissing sets AdminMissing: True while no admin member is bound (a service account
// outside the organization is bound nowhere). Losing the last admin is worth a warning; an
// organization that has not had one yet is only reported.
func setAdminMissing(s *organizationScope, w conditions.Writer) {
	for i := range s.members {
		m := &s.members[i]
		if m.Spec.Admin && m.DeletionTimestamp.IsZero() && !s.outside(m) {
			w.Set(tenancyv1alpha1.AdminMissingCondition, metav1.ConditionFalse, tenancyv1alpha1.AdminPresentReason,
				"The organization has an admin member")
			return
		}
	}
	msg := fmt.Sprintf("Organization %s has no admin member: only platform admins can change its members and projects; "+
		"set spec.owner or create an OrganizationMember with admin: true in namespace %s", s.org.Name, s.org.Name)
	if meta.IsStatusConditionFalse(*w.Conditions, tenancyv1alpha1.AdminMissingCondition) {
		w.Announce(conditions.Event{Type: corev1.EventTypeWarning, Action: "Admins"}, tenancyv1alpha1.AdminMissingCondition,
			metav1.ConditionTrue, tenancyv1alpha1.NoAdminReason, msg)
		return
	}
	w.Set(tenancyv1alpha1.AdminMissingCondition, metav1.ConditionTrue, tenancyv1alpha1.NoAdminReason, msg)
}

// memberReady is true when a member's Ready condition is True. A member being updated (its new
// generation not yet observed) keeps counting as Ready, so that an organization does not flip to
// not Ready and back on every change of a member: the member's own status shows the update.
func memberReady(m *tenancyv1alpha1.OrganizationMember) bool {
	return meta.IsStatusConditionTrue(m.Status.Conditions, tenancyv1alpha1.ReadyCondition)
}

// setQuotaStatus sets status.quotas, QuotasReady and QuotaExceeded from the quota phase, if it ran.
func setQuotaStatus(s *organizationScope, w conditions.Writer) {
	org, q := s.org, s.quotas
	switch {
	case q == nil:
		return
	case s.tenant.PlanMissing:
		w.Set(tenancyv1alpha1.QuotasReadyCondition, metav1.ConditionFalse, string(tenancyv1alpha1.SubscriptionPlanNotFound),
			planMissingMessage(s.subscription.Plan))
		if q.ledger != nil {
			org.Status.Quotas.Ledger = q.ledger // the ledger exists, so status.quotas does
		}
		return
	case q.err != nil:
		w.Set(tenancyv1alpha1.QuotasReadyCondition, metav1.ConditionFalse, tenancyv1alpha1.ReconcileErrorReason, conditions.Truncate(q.err.Error()))
		return
	}
	w.Set(tenancyv1alpha1.QuotasReadyCondition, metav1.ConditionTrue, tenancyv1alpha1.ReconciledReason,
		fmt.Sprintf("Quotas applied to %d namespaces", q.applied))
	eff := s.tenant.Quotas
	counts := quota.Counts{Namespaces: int32(q.applied), Members: org.Status.MemberCount, Admins: org.Status.AdminCount}
	exceeded := quota.Exceeded(eff, counts, q.used)
	org.Status.Quotas = &tenancyv1alpha1.QuotaStatus{
		MaxNamespaces: eff.MaxNamespaces, MaxMembers: eff.MaxMembers, MaxAdmins: eff.MaxAdmins,
		NamespaceQuota: resourcelist.CanonicalOrNil(eff.NamespaceQuota), Hard: resourcelist.CanonicalOrNil(eff.OrganizationQuota),
		Used:     resourcelist.CanonicalOrNil(q.used),
		Exceeded: exceeded, Ledger: q.ledger,
	}
	if len(exceeded) == 0 {
		w.Set(tenancyv1alpha1.QuotaExceededCondition, metav1.ConditionFalse, tenancyv1alpha1.WithinQuotaReason, "Within all quotas")
		return
	}
	parts := make([]string, 0, len(exceeded))
	for _, e := range exceeded {
		parts = append(parts, fmt.Sprintf("%s (used %s, hard %s)", e.Name, e.Used, e.Hard))
	}
	w.Announce(conditions.Event{Type: corev1.EventTypeWarning, Action: "Quota"}, tenancyv1alpha1.QuotaExceededCondition,
		metav1.ConditionTrue, tenancyv1alpha1.OverQuotaReason,
		"Over quota: "+strings.Join(parts, ", ")+"; nothing is removed, new objects of these kinds are refused")
}
