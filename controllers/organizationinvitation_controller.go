package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/arbiter"
	"github.com/orgoperator/org-operator/internal/conditions"
	"github.com/orgoperator/org-operator/internal/invitation"
	"github.com/orgoperator/org-operator/internal/patch"
)

// The operator creates the token Secret and deletes it, but never reads, lists or changes a
// Secret; org-operator-guard-secrets confines both writes to invitation Secrets in home namespaces.
//
// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizationinvitations,verbs=get;list;watch
// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizationinvitations/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizationinvitationredemptions,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizationmembers,verbs=create
// +kubebuilder:rbac:groups="",resources=secrets,verbs=create;delete

// OrganizationInvitationReconciler issues an invitation's token, turns the redemption admission
// accepted (status.claim) into a member, and reports the invitation's phase: Pending, Redeemed,
// Expired (at spec.expiresAt exactly) or Revoked. Only a Pending invitation keeps its token Secret.
type OrganizationInvitationReconciler struct {
	client.Client
	// APIReader reads the invitation and its redemption from the API server: a token is issued,
	// and a claim honoured, on what is stored, never on a cache that may lag behind.
	APIReader client.Reader
	Recorder  recorder.EventRecorder
	Clock     clock.PassiveClock
}

// Reconcile runs the phases of one invitation and writes its status once.
func (r *OrganizationInvitationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	inv := &tenancyv1alpha1.OrganizationInvitation{}
	if err := r.APIReader.Get(ctx, req.NamespacedName, inv); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, r.deleteRedemptionsOf(ctx, req.NamespacedName)
		}
		return ctrl.Result{}, err
	}
	if !inv.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // its Secret goes with it, by owner reference
	}
	s := &invitationScope{inv: inv, before: inv.DeepCopy(), now: r.Clock.Now()}
	defer func() {
		r.updateStatus(s, retErr)
		written := patch.StatusIfChanged(ctx, r.Client, s.before, inv, s.before.Status, inv.Status)
		if written == nil {
			s.announcements.Emit() // a write that conflicts is computed again, and would announce twice
		}
		patch.RequeueOnConflict(written, &result, &retErr)
	}()
	for _, phase := range []func(context.Context, *invitationScope) (ctrl.Result, error){
		r.reconcileClaim, r.reconcileToken, r.reconcileSecret,
	} {
		res, err := phase(ctx, s)
		if err != nil {
			return ctrl.Result{}, err
		}
		result = lowestRequeue(result, res)
	}
	return result, nil
}

// invitationScope is what one reconcile of an invitation works on.
type invitationScope struct {
	inv    *tenancyv1alpha1.OrganizationInvitation
	before *tenancyv1alpha1.OrganizationInvitation
	now    time.Time
	// refused is member admission's refusal of the claimed member, if it refused.
	refused error
	// announcements are the status's events, emitted once it is written.
	announcements conditions.Announcements
}

// reconcileClaim creates the member of an accepted redemption, once that redemption is stored,
// then deletes the redemption. A redemption the API server did not store after all (refused after
// admission accepted it) releases the claim after arbiter.Window; a member that member admission
// refuses releases it at once, and the invitation stays Pending.
func (r *OrganizationInvitationReconciler) reconcileClaim(ctx context.Context, s *invitationScope) (ctrl.Result, error) {
	claim := s.inv.Status.Claim
	if claim == nil {
		return ctrl.Result{}, nil
	}
	log := ctrl.LoggerFrom(ctx)
	redemption := &tenancyv1alpha1.OrganizationInvitationRedemption{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Name: claim.Redemption}, redemption)
	if err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	if err != nil || string(redemption.UID) != claim.RedemptionUID {
		if wait := claim.Time.Add(arbiter.Window).Sub(s.now); wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, nil
		}
		log.Info("Released the claim of a redemption that was never stored", "redemption", claim.Redemption)
		s.inv.Status.Claim = nil
		return ctrl.Result{}, nil
	}
	// Not owned by the invitation: the member outlives it. Its label names the invitation.
	member := invitation.Member(s.inv, claim.User.Username)
	err = r.Create(ctx, member)
	switch {
	case err == nil:
		log.Info("Created member", "member", klog.KObj(member), "user", claim.User.Username)
	case apierrors.IsAlreadyExists(err):
		existing := &tenancyv1alpha1.OrganizationMember{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(member), existing); err != nil {
			return ctrl.Result{}, err
		}
		if existing.Labels[tenancyv1alpha1.InvitationLabel] != s.inv.Name || existing.Spec.Username != claim.User.Username {
			s.refused = fmt.Errorf("organization already has a member named %s", member.Name)
		}
		// Otherwise an earlier reconcile created it and did not get to write the status.
	case apierrors.IsForbidden(err) || apierrors.IsInvalid(err):
		s.refused = err
	default:
		return ctrl.Result{}, err
	}
	if err := client.IgnoreNotFound(r.Delete(ctx, redemption, client.Preconditions{UID: &redemption.UID})); err != nil {
		return ctrl.Result{}, err
	}
	s.inv.Status.Claim = nil
	if s.refused == nil {
		s.inv.Status.Member = member.Name
		s.inv.Status.RedeemedBy = claim.User.DeepCopy()
		at := metav1.NewTime(s.now)
		s.inv.Status.RedeemedAt = &at
	}
	return ctrl.Result{}, nil
}

// reconcileToken issues the token of a Pending invitation that has none: a fresh token into a new
// Secret owned by the invitation, its hash into status. A Secret whose hash the status write then
// failed to record holds a token that works nowhere, and goes with the invitation.
func (r *OrganizationInvitationReconciler) reconcileToken(ctx context.Context, s *invitationScope) (ctrl.Result, error) {
	inv := s.inv
	if invitation.Phase(inv, s.now) != tenancyv1alpha1.InvitationPending || inv.Status.TokenHash != "" || inv.Status.Claim != nil {
		return ctrl.Result{}, nil
	}
	token, err := invitation.NewToken()
	if err != nil {
		return ctrl.Result{}, err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:    inv.Namespace,
			GenerateName: inv.Name + "-invitation-",
			Labels: map[string]string{
				tenancyv1alpha1.InvitationLabel: inv.Name,
				tenancyv1alpha1.ManagedByLabel:  tenancyv1alpha1.ManagedByValue,
			},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{tenancyv1alpha1.InvitationTokenKey: []byte(token)},
	}
	if err := controllerutil.SetControllerReference(inv, secret, r.Scheme()); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.Create(ctx, secret); err != nil {
		return ctrl.Result{}, fmt.Errorf("creating the token Secret of invitation %s: %w", inv.Name, err)
	}
	ctrl.LoggerFrom(ctx).Info("Issued token", "secret", klog.KObj(secret))
	inv.Status.TokenHash = invitation.Hash(token)
	inv.Status.TokenSecret = secret.Name
	return ctrl.Result{}, nil
}

// reconcileSecret deletes the token Secret of an invitation that is no longer Pending, and waits
// for the expiry of one that is.
func (r *OrganizationInvitationReconciler) reconcileSecret(ctx context.Context, s *invitationScope) (ctrl.Result, error) {
	inv := s.inv
	if invitation.Phase(inv, s.now) == tenancyv1alpha1.InvitationPending {
		if inv.Status.Claim != nil {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{RequeueAfter: inv.Expiry().Sub(s.now)}, nil
	}
	if inv.Status.TokenSecret == "" {
		return ctrl.Result{}, nil
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: inv.Namespace, Name: inv.Status.TokenSecret}}
	if err := r.Delete(ctx, secret); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("deleting the token Secret of invitation %s: %w", inv.Name, err)
	}
	ctrl.LoggerFrom(ctx).Info("Deleted token Secret", "secret", klog.KObj(secret))
	inv.Status.TokenSecret = ""
	return ctrl.Result{}, nil
}

// deleteRedemptionsOf deletes the redemptions of an invitation that is gone: admission accepted
// them, and the invitation was deleted before the member was made.
func (r *OrganizationInvitationReconciler) deleteRedemptionsOf(ctx context.Context, inv types.NamespacedName) error {
	list := &tenancyv1alpha1.OrganizationInvitationRedemptionList{}
	if err := r.List(ctx, list); err != nil {
		return err
	}
	for i := range list.Items {
		red := &list.Items[i]
		if red.Spec.Organization == inv.Namespace && red.Spec.Invitation == inv.Name {
			if err := client.IgnoreNotFound(r.Delete(ctx, red)); err != nil {
				return err
			}
		}
	}
	return nil
}

// lowestRequeue combines two results: the sooner non-zero RequeueAfter.
func lowestRequeue(a, b ctrl.Result) ctrl.Result {
	if a.RequeueAfter == 0 || (b.RequeueAfter > 0 && b.RequeueAfter < a.RequeueAfter) {
		return b
	}
	return a
}

// SetupWithManager registers the controller: invitations (their spec, and the claims admission
// writes on their status) and the redemptions that name them. Secrets are not watched: the
// operator may not read them.
func (r *OrganizationInvitationReconciler) SetupWithManager(mgr ctrl.Manager, opts Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&tenancyv1alpha1.OrganizationInvitation{}, builder.WithPredicates(predicate.Or[client.Object](
			predicate.GenerationChangedPredicate{}, claimChanged()))).
		Watches(&tenancyv1alpha1.OrganizationInvitationRedemption{}, handler.EnqueueRequestsFromMapFunc(
			func(_ context.Context, o client.Object) []reconcile.Request {
				red := o.(*tenancyv1alpha1.OrganizationInvitationRedemption)
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: red.Spec.Organization, Name: red.Spec.Invitation}}}
			})).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles}).
		Named("organizationinvitation").
		Complete(r)
}

// claimChanged passes the updates where admission claimed an invitation for a redemption.
func claimChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, okOld := e.ObjectOld.(*tenancyv1alpha1.OrganizationInvitation)
			n, okNew := e.ObjectNew.(*tenancyv1alpha1.OrganizationInvitation)
			return okOld && okNew && (o.Status.Claim == nil) != (n.Status.Claim == nil)
		},
	}
}
