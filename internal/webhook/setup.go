// Package webhook holds the admission webhooks: defaulting and validation of organizations,
// members and projects, the guard on namespaces' organization and project labels, and the
// adapters that charge every new pod, claim and counted object in an organization namespace to
// its quota ledger (internal/ledger).
//
// +kubebuilder:webhookconfiguration:mutating=true,name=org-operator-mutating-webhook-configuration
// +kubebuilder:webhookconfiguration:mutating=false,name=org-operator-validating-webhook-configuration
package webhook

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/arbiter"
	"github.com/orgoperator/org-operator/internal/invitation"
	"github.com/orgoperator/org-operator/internal/ledger"
	"github.com/orgoperator/org-operator/internal/podcache"
)

// Options configure the webhooks.
type Options struct {
	// Clock tells the time for defaults; the real clock if nil.
	Clock clock.PassiveClock
	// Pods is the compact pod cache the controllers also read.
	Pods podcache.Lister
}

// SetupWithManager registers every webhook on the manager's webhook server. They read from the
// manager's cache, with the indexes the controllers register.
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Pods == nil {
		return fmt.Errorf("webhooks need the pod cache (Options.Pods)")
	}
	if err := registerDefaulting(mgr, &tenancyv1alpha1.Organization{}, &OrganizationDefaulter{Clock: opts.Clock}); err != nil {
		return fmt.Errorf("organization webhooks: %w", err)
	}
	if err := registerDefaulting(mgr, &tenancyv1alpha1.OrganizationMember{}, &MemberDefaulter{}); err != nil {
		return fmt.Errorf("organization member webhooks: %w", err)
	}
	if err := registerDefaulting(mgr, &tenancyv1alpha1.OrganizationProject{}, &ProjectDefaulter{}); err != nil {
		return fmt.Errorf("organization project webhooks: %w", err)
	}
	if err := registerDefaulting(mgr, &tenancyv1alpha1.OrganizationInvitation{}, &InvitationDefaulter{Clock: opts.Clock}); err != nil {
		return fmt.Errorf("organization invitation webhooks: %w", err)
	}
	c := mgr.GetClient()
	// Who may do what, and the rules that must hold under concurrency, are decided on what the API
	// server stores, never on the cache.
	live := mgr.GetAPIReader()
	self, err := whoAmI(context.Background(), c)
	if err != nil {
		return err
	}
	platform := newCachedAuthorizer(&sarAuthorizer{client: c, self: self}, opts.Clock)
	// Members, projects and namespaces of one organization are decided one at a time, on one arbiter.
	decider := Decider{Reader: c, Live: live, Writer: c, Authorizer: platform, Clock: opts.Clock, Arbiter: &arbiter.Arbiter{}}
	if err := ctrl.NewWebhookManagedBy(mgr, &tenancyv1alpha1.Organization{}).
		WithValidator(&OrganizationValidator{Reader: c, Pods: opts.Pods}).
		Complete(); err != nil {
		return fmt.Errorf("organization webhooks: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &tenancyv1alpha1.OrganizationMember{}).
		WithValidator(&MemberValidator{Decider: decider}).
		Complete(); err != nil {
		return fmt.Errorf("organization member webhooks: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &tenancyv1alpha1.OrganizationProject{}).
		WithValidator(&ProjectValidator{Decider: decider}).
		Complete(); err != nil {
		return fmt.Errorf("organization project webhooks: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &tenancyv1alpha1.OrganizationInvitation{}).
		WithValidator(&InvitationValidator{Decider: decider}).
		Complete(); err != nil {
		return fmt.Errorf("organization invitation webhooks: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &tenancyv1alpha1.OrganizationInvitationRedemption{}).
		WithValidator(&RedemptionValidator{Decider: decider, Limiter: invitation.NewLimiter(RedemptionFailures, RedemptionWindow),
			Recorder: mgr.GetEventRecorder("organizationinvitation-webhook")}).
		Complete(); err != nil {
		return fmt.Errorf("organization invitation redemption webhook: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &corev1.Namespace{}).
		WithValidator(&NamespaceValidator{Decider: decider}).
		Complete(); err != nil {
		return fmt.Errorf("namespace webhook: %w", err)
	}
	// Pods, claims and counted objects are charged to one ledger per organization, through one
	// Charger.
	charger := ledger.NewCharger(c, live, c, opts.Pods, opts.Clock)
	if err := ctrl.NewWebhookManagedBy(mgr, &corev1.Pod{}).
		WithValidator(&PodValidator{Charger: charger}).
		Complete(); err != nil {
		return fmt.Errorf("pod webhook: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &corev1.PersistentVolumeClaim{}).
		WithValidator(&ClaimValidator{Charger: charger}).
		Complete(); err != nil {
		return fmt.Errorf("persistentvolumeclaim webhook: %w", err)
	}
	mgr.GetWebhookServer().Register(CountPath, &admission.Webhook{Handler: &CountValidator{Charger: charger}})
	return nil
}
