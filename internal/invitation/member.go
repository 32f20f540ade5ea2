package invitation

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

// Member is the member a redemption of inv by username makes: named after the invitation, in its
// namespace, with the invitation's email, admin flag and kubernetesRole, bound to username.
func Member(inv *tenancyv1alpha1.OrganizationInvitation, username string) *tenancyv1alpha1.OrganizationMember {
	return &tenancyv1alpha1.OrganizationMember{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: inv.Namespace,
			Name:      inv.Name,
			Labels: map[string]string{
				tenancyv1alpha1.InvitationLabel: inv.Name,
				tenancyv1alpha1.ManagedByLabel:  tenancyv1alpha1.ManagedByValue,
			},
		},
		Spec: tenancyv1alpha1.OrganizationMemberSpec{
			Email:          inv.Spec.Email,
			Username:       username,
			Admin:          inv.Spec.Admin,
			KubernetesRole: inv.Spec.KubernetesRole,
		},
	}
}

// Phase is the phase an invitation is in at now. Redeemed, Expired and Revoked are final (spec.revoked
// cannot be undone and spec.expiresAt cannot change); an expiry or revocation after an accepted
// redemption (status.claim) does not undo it.
func Phase(inv *tenancyv1alpha1.OrganizationInvitation, now time.Time) tenancyv1alpha1.InvitationPhase {
	switch {
	case inv.Status.Member != "":
		return tenancyv1alpha1.InvitationRedeemed
	case inv.Status.Claim != nil:
		return tenancyv1alpha1.InvitationPending // accepted: becomes Redeemed once its member exists
	case inv.Spec.Revoked:
		return tenancyv1alpha1.InvitationRevoked
	case !now.Before(inv.Expiry()):
		return tenancyv1alpha1.InvitationExpired
	default:
		return tenancyv1alpha1.InvitationPending
	}
}
