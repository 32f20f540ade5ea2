package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// InvitationLabel names, on the token Secret and on the member a redemption created, the
	// OrganizationInvitation they belong to.
	InvitationLabel = "tenancy.orgoperator.io/invitation"

	// InvitationTokenKey is the key of the token in the invitation's Secret.
	InvitationTokenKey = "token"

	// DefaultInvitationLifetime is how long an invitation stays redeemable when spec.expiresAt is
	// not set.
	DefaultInvitationLifetime = 7 * 24 * time.Hour
)

// Expiry is when the invitation's token stops working: spec.expiresAt, or
// DefaultInvitationLifetime after its creation.
func (i *OrganizationInvitation) Expiry() time.Time {
	if i.Spec.ExpiresAt != nil {
		return i.Spec.ExpiresAt.Time
	}
	return i.CreationTimestamp.Add(DefaultInvitationLifetime)
}

// InvitationSecretName names the Secret that holds an invitation's token.
func InvitationSecretName(invitation string) string { return invitation + "-invitation-token" }

// InvitationPhase is where an invitation is in its life.
// +kubebuilder:validation:Enum=Pending;Redeemed;Expired;Revoked
type InvitationPhase string

const (
	// InvitationPending: the token can be redeemed.
	InvitationPending InvitationPhase = "Pending"
	// InvitationRedeemed: a user redeemed the token and is a member (status.member).
	InvitationRedeemed InvitationPhase = "Redeemed"
	// InvitationExpired: spec.expiresAt passed before anyone redeemed the token.
	InvitationExpired InvitationPhase = "Expired"
	// InvitationRevoked: spec.revoked was set before anyone redeemed the token.
	InvitationRevoked InvitationPhase = "Revoked"
)

// Reasons of an invitation's Ready condition.
const (
	// InvitationIssuedReason (Ready=True): the token is in the Secret status.tokenSecret names and
	// waits for its user.
	InvitationIssuedReason = "Issued"
	// InvitationRedeemedReason (Ready=True): the member status.member was created for the user who
	// redeemed the token.
	InvitationRedeemedReason = "Redeemed"
	// InvitationExpiredReason (Ready=False): spec.expiresAt passed; the token no longer works.
	InvitationExpiredReason = "Expired"
	// InvitationRevokedReason (Ready=False): spec.revoked is set; the token no longer works.
	InvitationRevokedReason = "Revoked"
	// InvitationMemberRefusedReason (Ready=False): a redemption was accepted but member admission
	// refused the member (maxMembers, maxAdmins, a duplicate email...); the invitation stays
	// Pending and the token can be redeemed again once the refusal's cause is gone.
	InvitationMemberRefusedReason = "MemberRefused"
	// InvitationRedemptionFailedReason: the event of a refused redemption of the invitation.
	InvitationRedemptionFailedReason = "RedemptionFailed"
)

// OrganizationInvitationSpec is whom an organization admin invites, and with what.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.revoked) || !oldSelf.revoked || (has(self.revoked) && self.revoked)",message="spec.revoked cannot be undone; create a new invitation"
// +kubebuilder:validation:XValidation:rule="self.email == oldSelf.email && self.admin == oldSelf.admin && self.kubernetesRole == oldSelf.kubernetesRole && has(self.expiresAt) == has(oldSelf.expiresAt) && (!has(self.expiresAt) || self.expiresAt == oldSelf.expiresAt)",message="only spec.revoked may change; create a new invitation instead"
type OrganizationInvitationSpec struct {
	// email is the invitee's email address; it becomes the member's spec.email. The invitee may
	// authenticate under another user name: the member is bound to the name the redemption is
	// made as.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9._%+-]+@[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)+$`
	Email string `json:"email"`

	// admin makes the new member an organization admin.
	// +optional
	// +kubebuilder:default=false
	Admin bool `json:"admin"`

	// kubernetesRole is the new member's kubernetesRole: Admin, Edit, View or None. Defaults to View.
	// +optional
	// +kubebuilder:default=View
	KubernetesRole KubernetesRole `json:"kubernetesRole,omitempty"`

	// expiresAt is when the token stops working. Defaults to 7 days after the invitation's
	// creation; it must be in the future when the invitation is created.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// revoked, once true, makes the token stop working at once; it cannot be set back. Deleting
	// the invitation revokes it too.
	// +optional
	Revoked bool `json:"revoked,omitempty"`
}

// InvitationIdentity is a user as the API server authenticated it.
type InvitationIdentity struct {
	// username is the authenticated user name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Username string `json:"username"`

	// groups are the user's groups when it redeemed the token.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	Groups []string `json:"groups,omitempty"`
}

// InvitationClaim is an accepted redemption: the admission webhook writes it, with the
// invitation's resourceVersion as a precondition, so that one token is accepted once.
type InvitationClaim struct {
	// user is who redeemed the token, from the admission request.
	// +required
	User InvitationIdentity `json:"user"`

	// redemption is the OrganizationInvitationRedemption that was accepted.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Redemption string `json:"redemption"`

	// redemptionUID is that redemption's metadata.uid, so that another object of the same name is
	// not taken for it.
	// +required
	// +kubebuilder:validation:MaxLength=64
	RedemptionUID string `json:"redemptionUID"`

	// time is when the redemption was accepted.
	// +required
	Time metav1.Time `json:"time"`
}

// OrganizationInvitationStatus is what became of an invitation.
type OrganizationInvitationStatus struct {
	// observedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready is True while the token waits for its user (reason Issued) and once it
	// was redeemed (Redeemed); False when it expired, was revoked, or the member was refused.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// phase is Pending, Redeemed, Expired or Revoked.
	// +optional
	Phase InvitationPhase `json:"phase,omitempty"`

	// tokenHash is the base64url SHA-256 of the token; the token itself is only in the Secret
	// tokenSecret names.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	TokenHash string `json:"tokenHash,omitempty"`

	// tokenSecret is the Secret, in the invitation's namespace, that holds the token for the
	// inviter to pass on; it is deleted once the invitation is no longer Pending.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	TokenSecret string `json:"tokenSecret,omitempty"`

	// claim is the accepted redemption the operator is turning into a member.
	// +optional
	Claim *InvitationClaim `json:"claim,omitempty"`

	// redeemedBy is the user who redeemed the token.
	// +optional
	RedeemedBy *InvitationIdentity `json:"redeemedBy,omitempty"`

	// redeemedAt is when the member was created.
	// +optional
	RedeemedAt *metav1.Time `json:"redeemedAt,omitempty"`

	// member is the OrganizationMember the redemption created.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Member string `json:"member,omitempty"`
}

// OrganizationInvitation invites a user into an organization. An organization admin creates it in
// the organization's home namespace; the operator puts a one-time token into a Secret there, and
// the user who redeems it (an OrganizationInvitationRedemption) becomes a member bound to the user
// name it authenticated as.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=orginvite;orginvites;orginvitation,categories=tenancy
// +kubebuilder:printcolumn:name="Email",type=string,JSONPath=`.spec.email`
// +kubebuilder:printcolumn:name="Admin",type=boolean,JSONPath=`.spec.admin`
// +kubebuilder:printcolumn:name="Role",type=string,JSONPath=`.spec.kubernetesRole`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.spec.expiresAt`
// +kubebuilder:printcolumn:name="Member",type=string,JSONPath=`.status.member`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`,priority=1
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters: it names the member the invitation creates"
type OrganizationInvitation struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is whom the invitation is for and what it grants.
	// +required
	Spec OrganizationInvitationSpec `json:"spec"`

	// status is what became of the invitation.
	// +optional
	Status OrganizationInvitationStatus `json:"status,omitempty"`
}

// OrganizationInvitationList is a list of OrganizationInvitations.
// +kubebuilder:object:root=true
type OrganizationInvitationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []OrganizationInvitation `json:"items"`
}

// OrganizationInvitationRedemptionSpec names the invitation redeemed and carries its token.
type OrganizationInvitationRedemptionSpec struct {
	// organization is the organization that invited the user.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Organization string `json:"organization"`

	// invitation is the OrganizationInvitation's name, in the organization's home namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Invitation string `json:"invitation"`

	// token is the token of the invitation's Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Token string `json:"token"`
}

// OrganizationInvitationRedemption redeems an invitation as the user who creates it. Any
// authenticated user may create one and nobody but the operator may read one; admission accepts
// it only with the invitation's valid token, and the operator deletes it once the member exists.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=orgredeem;orgredemption,categories=tenancy
// +kubebuilder:printcolumn:name="Organization",type=string,JSONPath=`.spec.organization`
// +kubebuilder:printcolumn:name="Invitation",type=string,JSONPath=`.spec.invitation`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.spec == oldSelf.spec",message="a redemption cannot be changed"
type OrganizationInvitationRedemption struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec names the invitation and carries its token.
	// +required
	Spec OrganizationInvitationRedemptionSpec `json:"spec"`
}

// OrganizationInvitationRedemptionList is a list of OrganizationInvitationRedemptions.
// +kubebuilder:object:root=true
type OrganizationInvitationRedemptionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []OrganizationInvitationRedemption `json:"items"`
}

func init() {
	SchemeBuilder.Register(&OrganizationInvitation{}, &OrganizationInvitationList{},
		&OrganizationInvitationRedemption{}, &OrganizationInvitationRedemptionList{})
}
