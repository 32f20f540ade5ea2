package controllers

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/conditions"
	"github.com/orgoperator/org-operator/internal/invitation"
)

// updateStatus sets the invitation's phase and Ready from what the reconcile found, emitting an
// event on each transition once the status is written; observedGeneration only when the
// reconcile succeeded.
func (r *OrganizationInvitationReconciler) updateStatus(s *invitationScope, err error) {
	inv := s.inv
	inv.Status.Phase = invitation.Phase(inv, s.now)
	w := conditions.Writer{Object: inv, Conditions: &inv.Status.Conditions, Generation: inv.Generation, Recorder: r.Recorder, Held: &s.announcements}
	normal := conditions.Event{Type: corev1.EventTypeNormal, Action: "Reconcile"}
	warning := conditions.Event{Type: corev1.EventTypeWarning, Action: "Reconcile"}
	ready := tenancyv1alpha1.ReadyCondition
	switch {
	case s.refused != nil:
		w.Announce(warning, ready, metav1.ConditionFalse, tenancyv1alpha1.InvitationMemberRefusedReason, conditions.Truncate(fmt.Sprintf(
			"Member admission refused the member for the redemption; the invitation stays Pending: %v", s.refused)))
	case err != nil:
		w.Set(ready, metav1.ConditionFalse, tenancyv1alpha1.ReconcileErrorReason, conditions.Truncate(err.Error()))
		return
	case inv.Status.Phase == tenancyv1alpha1.InvitationRedeemed:
		user := ""
		if inv.Status.RedeemedBy != nil {
			user = inv.Status.RedeemedBy.Username
		}
		w.Announce(normal, ready, metav1.ConditionTrue, tenancyv1alpha1.InvitationRedeemedReason,
			fmt.Sprintf("Redeemed by user %q: member %s", user, inv.Status.Member))
	case inv.Status.Phase == tenancyv1alpha1.InvitationRevoked:
		w.Announce(normal, ready, metav1.ConditionFalse, tenancyv1alpha1.InvitationRevokedReason, "Revoked; the token no longer works")
	case inv.Status.Phase == tenancyv1alpha1.InvitationExpired:
		w.Announce(normal, ready, metav1.ConditionFalse, tenancyv1alpha1.InvitationExpiredReason,
			fmt.Sprintf("Expired at %s; the token no longer works", inv.Expiry().UTC().Format(time.RFC3339)))
	case inv.Status.Claim != nil:
		w.Set(ready, metav1.ConditionUnknown, tenancyv1alpha1.ProgressingReason,
			fmt.Sprintf("Redemption by user %q accepted; creating the member", inv.Status.Claim.User.Username))
	case isReason(inv.Status.Conditions, ready, tenancyv1alpha1.InvitationMemberRefusedReason):
		// The refusal stays reported until the next redemption.
	default:
		old := w.Set(ready, metav1.ConditionTrue, tenancyv1alpha1.InvitationIssuedReason, fmt.Sprintf(
			"Token in Secret %s until %s", inv.Status.TokenSecret, inv.Expiry().UTC().Format(time.RFC3339)))
		// Issued after a refused member is a recovery, not worth another event; a first issue is.
		if old && s.before.Status.TokenHash == "" {
			r.Recorder.Eventf(inv, nil, corev1.EventTypeNormal, tenancyv1alpha1.InvitationIssuedReason, "Issue",
				"Issued the token in Secret %s", inv.Status.TokenSecret)
		}
	}
	inv.Status.ObservedGeneration = inv.Generation
}

func isReason(conds []metav1.Condition, typ, reason string) bool {
	c := meta.FindStatusCondition(conds, typ)
	return c != nil && c.Reason == reason
}
