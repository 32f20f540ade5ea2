package webhook

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/arbiter"
	"github.com/orgoperator/org-operator/internal/invitation"
	"github.com/orgoperator/org-operator/internal/membership"
	"github.com/orgoperator/org-operator/internal/validation"
)

var (
	invitationKind       = tenancyv1alpha1.GroupVersion.WithKind("OrganizationInvitation").GroupKind()
	invitationsResource  = tenancyv1alpha1.GroupVersion.WithResource("organizationinvitations").GroupResource()
	redemptionKind       = tenancyv1alpha1.GroupVersion.WithKind("OrganizationInvitationRedemption").GroupKind()
	redemptionsResource  = tenancyv1alpha1.GroupVersion.WithResource("organizationinvitationredemptions").GroupResource()
	redemptionTokenField = field.NewPath("spec", "token")
)

// RedemptionFailures and RedemptionWindow bound the failed redemptions of one user: after
// RedemptionFailures in RedemptionWindow, its redemptions are refused until the oldest leaves the
// window.
const (
	RedemptionFailures = 5
	RedemptionWindow   = time.Minute
)

// +kubebuilder:webhook:path=/mutate-tenancy-orgoperator-io-v1alpha1-organizationinvitation,mutating=true,failurePolicy=fail,sideEffects=None,groups=tenancy.orgoperator.io,resources=organizationinvitations,verbs=create,versions=v1alpha1,name=morganizationinvitation.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system

// InvitationDefaulter fills in what an invitation leaves out.
type InvitationDefaulter struct {
	Clock clock.PassiveClock
}

// Default sets kubernetesRole to View and expiresAt to DefaultInvitationLifetime from now when
// they are empty.
func (d InvitationDefaulter) Default(_ context.Context, inv *tenancyv1alpha1.OrganizationInvitation) error {
	if inv.Spec.KubernetesRole == "" {
		inv.Spec.KubernetesRole = tenancyv1alpha1.KubernetesRoleView
	}
	if inv.Spec.ExpiresAt == nil {
		t := metav1.NewTime(d.Clock.Now().Add(tenancyv1alpha1.DefaultInvitationLifetime).Truncate(time.Second))
		inv.Spec.ExpiresAt = &t
	}
	return nil
}

// +kubebuilder:webhook:path=/validate-tenancy-orgoperator-io-v1alpha1-organizationinvitation,mutating=false,failurePolicy=fail,sideEffects=None,groups=tenancy.orgoperator.io,resources=organizationinvitations,verbs=create;update;delete,versions=v1alpha1,name=vorganizationinvitation.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system

// InvitationValidator decides who may invite: only the organization's admins and platform admins
// create, change or delete its invitations, in its home namespace; nobody but a platform admin
// invites with a kubernetesRole above their own; an invitation does not name the email of an
// existing member and does not expire in the past.
type InvitationValidator struct {
	Decider
}

// ValidateCreate decides a new invitation.
func (v *InvitationValidator) ValidateCreate(ctx context.Context, inv *tenancyv1alpha1.OrganizationInvitation) (admission.Warnings, error) {
	return nil, v.decide(ctx, inv, true)
}

// ValidateUpdate decides a change (the schema lets only spec.revoked change).
func (v *InvitationValidator) ValidateUpdate(ctx context.Context, _, inv *tenancyv1alpha1.OrganizationInvitation) (admission.Warnings, error) {
	return nil, v.decide(ctx, inv, false)
}

// ValidateDelete decides a deletion, which revokes the invitation.
func (v *InvitationValidator) ValidateDelete(ctx context.Context, inv *tenancyv1alpha1.OrganizationInvitation) (admission.Warnings, error) {
	return nil, v.decide(ctx, inv, false)
}

func (v *InvitationValidator) decide(ctx context.Context, inv *tenancyv1alpha1.OrganizationInvitation, creation bool) error {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	orgName, err := v.homeOf(ctx, inv.Namespace)
	if err != nil {
		return err
	}
	if orgName == "" {
		if !creation {
			return nil // the organization is going away, and its invitations with it
		}
		return invalid(invitationKind, inv.Name, field.ErrorList{field.Forbidden(field.NewPath("metadata", "namespace"),
			fmt.Sprintf("namespace %s is not the home namespace of an existing organization; create invitations in the namespace named after their organization", inv.Namespace))})
	}
	org := &tenancyv1alpha1.Organization{}
	if err := v.Live.Get(ctx, types.NamespacedName{Name: orgName}, org); err != nil {
		return apierrors.NewInternalError(err)
	}
	stored := &tenancyv1alpha1.OrganizationMemberList{}
	if err := v.Live.List(ctx, stored, client.InNamespace(inv.Namespace)); err != nil {
		return apierrors.NewInternalError(err)
	}
	platformAdmin, err := v.Authorizer.IsPlatformAdmin(ctx, req.UserInfo)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	now := v.Clock.Now()
	if !platformAdmin {
		self := adminOf(req.UserInfo, stored.Items, arbiter.NewMembership(stored.Items, org.Status.Admitted, now))
		if self == nil {
			return notAdmin(invitationsResource, inv.Name, req.UserInfo.Username, orgName, req.Operation, "invitations")
		}
		if creation && membership.Rank(inv.Spec.KubernetesRole) > membership.Rank(self.Spec.KubernetesRole) {
			return invalid(invitationKind, inv.Name, field.ErrorList{field.Forbidden(field.NewPath("spec", "kubernetesRole"),
				fmt.Sprintf("user %q has kubernetesRole %s in organization %s and cannot invite with %s, which is above it; ask a platform admin",
					req.UserInfo.Username, self.Spec.KubernetesRole, orgName, inv.Spec.KubernetesRole))})
		}
	}
	if !creation {
		return nil
	}
	var errs field.ErrorList
	if !now.Before(inv.Expiry()) {
		errs = append(errs, field.Invalid(field.NewPath("spec", "expiresAt"), inv.Spec.ExpiresAt,
			"must be in the future; leave it out for 7 days from now"))
	}
	email := validation.NormalizeEmail(inv.Spec.Email)
	for i := range stored.Items {
		if validation.NormalizeEmail(stored.Items[i].Spec.Email) == email {
			errs = append(errs, field.Duplicate(field.NewPath("spec", "email"),
				fmt.Sprintf("%s (already used by member %s)", inv.Spec.Email, stored.Items[i].Name)))
		}
	}
	return invalid(invitationKind, inv.Name, errs)
}

// The webhook writes status.claim of the invitation it accepts a redemption of, except for dry
// runs: sideEffects=NoneOnDryRun. Only creations are judged: the schema makes a redemption's spec
// immutable, and RBAC lets nobody but the operator read, change or delete one.
//
// +kubebuilder:webhook:path=/validate-tenancy-orgoperator-io-v1alpha1-organizationinvitationredemption,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups=tenancy.orgoperator.io,resources=organizationinvitationredemptions,verbs=create,versions=v1alpha1,name=vorganizationinvitationredemption.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=10,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system
// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizationinvitations,verbs=get;list;watch
// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizationinvitations/status,verbs=get;update;patch

// RedemptionValidator accepts the redemption of an invitation's token by the user who makes the
// request, as the API server authenticated it: the token must match the invitation's hash
// (compared in constant time), the invitation be Pending (not expired, revoked, used or being
// used), the user be no system: identity and no member of the organization yet, and member
// admission accept the member the redemption would make (a dry run). It then claims the
// invitation for the user on the API server, with the invitation's resourceVersion as a
// precondition, so that of two redemptions racing exactly one is accepted. Refusals of a token
// count towards the user's RedemptionFailures per RedemptionWindow.
type RedemptionValidator struct {
	Decider
	Limiter  *invitation.Limiter
	Recorder recorder.EventRecorder
}

// ValidateCreate judges a redemption.
func (v *RedemptionValidator) ValidateCreate(ctx context.Context, r *tenancyv1alpha1.OrganizationInvitationRedemption) (admission.Warnings, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	user := req.UserInfo.Username
	if user == "" || strings.HasPrefix(user, "system:") {
		return nil, apierrors.NewForbidden(redemptionsResource, r.Name, fmt.Errorf(
			"user %q is a system: identity; an invitation is redeemed by the person invited, logged in as themselves", user))
	}
	now := v.Clock.Now()
	if ok, wait := v.Limiter.Allowed(user, now); !ok {
		// No Retry-After: clients would retry silently until the window passes, and a person
		// should see why.
		return nil, apierrors.NewTooManyRequests(fmt.Sprintf(
			"user %q failed %d redemptions in the last %s; try again in %s", user, v.Limiter.Max, v.Limiter.Window, wait.Round(time.Second)), 0)
	}
	dryRun := req.DryRun != nil && *req.DryRun
	for attempt := 0; ; attempt++ {
		inv, refusal, tokenFailure, err := v.judge(ctx, req, r, now)
		if err != nil {
			return nil, err
		}
		if refusal != nil {
			if tokenFailure {
				v.Limiter.Fail(user, now)
			}
			if inv != nil {
				v.Recorder.Eventf(inv, nil, corev1.EventTypeWarning, tenancyv1alpha1.InvitationRedemptionFailedReason, "Redeem",
					"Refused redemption %s by user %q: %s", r.Name, user, refusal.Error())
			}
			return nil, refusal
		}
		if dryRun {
			return nil, nil
		}
		before := inv.DeepCopy()
		inv.Status.Claim = &tenancyv1alpha1.InvitationClaim{
			User:          tenancyv1alpha1.InvitationIdentity{Username: user, Groups: req.UserInfo.Groups},
			Redemption:    r.Name,
			RedemptionUID: string(r.UID),
			Time:          metav1.NewTime(now),
		}
		err = v.Writer.Status().Patch(ctx, inv, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		switch {
		case err == nil:
			return nil, nil
		case apierrors.IsConflict(err) && attempt < 10 && ctx.Err() == nil:
			continue // judged on a copy another write replaced: judge again on the new one
		default:
			return nil, apierrors.NewInternalError(fmt.Errorf("claiming invitation %s/%s: %w", inv.Namespace, inv.Name, err))
		}
	}
}

// ValidateUpdate is never called: the webhook judges creations only.
func (v *RedemptionValidator) ValidateUpdate(_ context.Context, _, _ *tenancyv1alpha1.OrganizationInvitationRedemption) (admission.Warnings, error) {
	return nil, nil
}

// ValidateDelete is never called: the webhook judges creations only.
func (v *RedemptionValidator) ValidateDelete(context.Context, *tenancyv1alpha1.OrganizationInvitationRedemption) (admission.Warnings, error) {
	return nil, nil
}

// judge reads the invitation from the API server and judges the redemption against it. It
// returns the invitation when it exists, the refusal if any, and whether the refusal counts as a
// failed attempt at a token.
func (v *RedemptionValidator) judge(ctx context.Context, req admission.Request, r *tenancyv1alpha1.OrganizationInvitationRedemption,
	now time.Time) (inv *tenancyv1alpha1.OrganizationInvitation, refusal error, tokenFailure bool, err error) {
	refuse := func(f *field.Error) error { return invalid(redemptionKind, r.Name, field.ErrorList{f}) }
	user := req.UserInfo.Username
	org, err := v.homeOf(ctx, r.Spec.Organization)
	if err != nil {
		return nil, nil, false, err
	}
	if org == "" || org != r.Spec.Organization {
		return nil, refuse(field.NotFound(field.NewPath("spec", "organization"), r.Spec.Organization)), true, nil
	}
	inv = &tenancyv1alpha1.OrganizationInvitation{}
	if err := v.Live.Get(ctx, types.NamespacedName{Namespace: org, Name: r.Spec.Invitation}, inv); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, refuse(field.NotFound(field.NewPath("spec", "invitation"),
				fmt.Sprintf("%s (no such invitation in organization %s)", r.Spec.Invitation, org))), true, nil
		}
		return nil, nil, false, apierrors.NewInternalError(err)
	}
	// The token first, so that the invitation's state is told only to who holds its token.
	if !invitation.Matches(r.Spec.Token, inv.Status.TokenHash) {
		return inv, refuse(field.Invalid(redemptionTokenField, "(redacted)",
			fmt.Sprintf("does not match the token of invitation %s of organization %s", inv.Name, org))), true, nil
	}
	redeemed := func() error {
		return refuse(field.Forbidden(redemptionTokenField,
			fmt.Sprintf("invitation %s of organization %s was already redeemed; a token works once", inv.Name, org)))
	}
	if inv.Status.Claim != nil || inv.Status.Member != "" {
		return inv, redeemed(), true, nil
	}
	switch invitation.Phase(inv, now) {
	case tenancyv1alpha1.InvitationRevoked:
		return inv, refuse(field.Forbidden(redemptionTokenField,
			fmt.Sprintf("invitation %s of organization %s was revoked; ask its admins for a new one", inv.Name, org))), true, nil
	case tenancyv1alpha1.InvitationExpired:
		return inv, refuse(field.Forbidden(redemptionTokenField,
			fmt.Sprintf("invitation %s of organization %s expired at %s; ask its admins for a new one", inv.Name, org, inv.Expiry().UTC().Format(time.RFC3339)))), true, nil
	}
	if !inv.DeletionTimestamp.IsZero() {
		return inv, refuse(field.Forbidden(redemptionTokenField,
			fmt.Sprintf("invitation %s of organization %s is being deleted", inv.Name, org))), true, nil
	}
	members := &tenancyv1alpha1.OrganizationMemberList{}
	if err := v.Live.List(ctx, members, client.InNamespace(org)); err != nil {
		return nil, nil, false, apierrors.NewInternalError(err)
	}
	for i := range members.Items {
		// Through any member it acts as, a group's included: a member must not raise itself.
		if membership.Matches(membership.Subject(&members.Items[i]), req.UserInfo) {
			return inv, apierrors.NewForbidden(redemptionsResource, r.Name, fmt.Errorf(
				"user %q is already member %s of organization %s; an invitation brings in a new user, and a member's role is changed by its admins",
				user, members.Items[i].Name, org)), false, nil
		}
	}
	// What member admission would say of the member, so that a refusal (maxMembers, maxAdmins, a
	// duplicate email) leaves the invitation unused.
	if err := v.Writer.Create(ctx, invitation.Member(inv, user), client.DryRunAll); err != nil {
		if apierrors.IsAlreadyExists(err) {
			// A racing redemption of this invitation may have made the member since it was read.
			again := &tenancyv1alpha1.OrganizationInvitation{}
			if err := v.Live.Get(ctx, client.ObjectKeyFromObject(inv), again); err == nil && (again.Status.Claim != nil || again.Status.Member != "") {
				return inv, redeemed(), true, nil
			}
			return inv, apierrors.NewForbidden(redemptionsResource, r.Name, fmt.Errorf(
				"organization %s already has a member named %s, the name this invitation gives; ask its admins", org, inv.Name)), false, nil
		}
		if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) {
			return inv, apierrors.NewForbidden(redemptionsResource, r.Name, fmt.Errorf(
				"organization %s cannot take the member this invitation makes: %v", org, err)), false, nil
		}
		return nil, nil, false, apierrors.NewInternalError(err)
	}
	return inv, nil, false, nil
}
