// Package controllers reconciles Organizations and OrganizationMembers.
package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/inventory"
	"github.com/orgoperator/org-operator/internal/metering"
	"github.com/orgoperator/org-operator/internal/podcache"
	"github.com/orgoperator/org-operator/internal/tenancy"
)

// Field indexes on the cache.
const (
	// roleBindingOrganizationIndex indexes the operator's RoleBindings by organization.
	roleBindingOrganizationIndex = "rolebinding.organization"
	// organizationPlanIndex indexes organizations by the plan they subscribe to.
	organizationPlanIndex = "organization.plan"
)

// Options tune the controllers.
type Options struct {
	// MaxConcurrentReconciles per controller; 1 if zero.
	MaxConcurrentReconciles int
	// Clock tells the time; the real clock if nil. Tests inject a fake one.
	Clock clock.PassiveClock
	// QuotaLedger says the admission webhook charges pods to each organization's quota ledger
	// (status.quotas.ledger): the controller then settles the ledger, and each namespace's share of
	// the organization-wide quota is the whole quota, since the ledger enforces the sum. Without
	// it, each namespace's share is its usage plus the organization's headroom.
	QuotaLedger bool
	// Pods is the compact pod cache usage and the ledger read; it must be added to the manager.
	Pods *podcache.Cache
	// Meter follows the pods for the usage reports; set by SetupOperator. Without it no
	// reports are written.
	Meter *metering.Tracker
	// CheckpointInterval is the least time between two writes of an organization's usage
	// report; DefaultCheckpointInterval if zero.
	CheckpointInterval time.Duration
	// ReportRetention is how long a usage report is kept after its period ends;
	// DefaultReportRetention if zero.
	ReportRetention time.Duration
	// SettleDelay is how far a usage report's checkpoints trail the clock, so that pod starts
	// and ends reported late still fall after them; DefaultSettleDelay if zero.
	SettleDelay time.Duration
}

// CacheOptions keep the informer caches small: RBAC objects are cached only when the operator
// made them. Pods are not in this cache at all but in the compact podcache.
func CacheOptions() cache.Options {
	managed, err := labels.NewRequirement(tenancyv1alpha1.ManagedByLabel, selection.Equals, []string{tenancyv1alpha1.ManagedByValue})
	if err != nil {
		panic(err) // constant label key and value: cannot fail
	}
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&rbacv1.RoleBinding{}:        {Label: labels.NewSelector().Add(*managed)},
			&rbacv1.ClusterRole{}:        {Label: labels.NewSelector().Add(*managed)},
			&rbacv1.ClusterRoleBinding{}: {Label: labels.NewSelector().Add(*managed)},
			&corev1.ResourceQuota{}:      {Label: labels.NewSelector().Add(*managed)},
			&corev1.LimitRange{}:         {Label: labels.NewSelector().Add(*managed)},
		},
	}
}

// SetupWithManager registers the indexes and both controllers.
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	if opts.MaxConcurrentReconciles == 0 {
		opts.MaxConcurrentReconciles = 1
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Pods == nil {
		return fmt.Errorf("controllers need the pod cache (Options.Pods)")
	}
	ctx := context.Background()
	indexer := mgr.GetFieldIndexer()
	if err := inventory.IndexNamespaces(ctx, indexer); err != nil {
		return fmt.Errorf("indexing namespaces by organization: %w", err)
	}
	if err := indexer.IndexField(ctx, &rbacv1.RoleBinding{}, roleBindingOrganizationIndex, func(o client.Object) []string {
		if org := o.GetLabels()[tenancyv1alpha1.OrganizationLabel]; org != "" {
			return []string{org}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing rolebindings by organization: %w", err)
	}

	if err := indexer.IndexField(ctx, &tenancyv1alpha1.Organization{}, organizationPlanIndex, func(o client.Object) []string {
		if plan := tenancy.PlanName(o.(*tenancyv1alpha1.Organization)); plan != "" {
			return []string{plan}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing organizations by plan: %w", err)
	}

	if err := (&OrganizationReconciler{
		Client:             mgr.GetClient(),
		APIReader:          mgr.GetAPIReader(),
		Pods:               opts.Pods,
		Meter:              opts.Meter,
		CheckpointInterval: opts.CheckpointInterval,
		ReportRetention:    opts.ReportRetention,
		SettleDelay:        opts.SettleDelay,
		Recorder:           mgr.GetEventRecorder("organization-controller"),
		Clock:              opts.Clock,
		QuotaLedger:        opts.QuotaLedger,
	}).SetupWithManager(mgr, opts); err != nil {
		return fmt.Errorf("setting up the organization controller: %w", err)
	}
	if err := (&OrganizationMemberReconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("organizationmember-controller"),
	}).SetupWithManager(mgr, opts); err != nil {
		return fmt.Errorf("setting up the organization member controller: %w", err)
	}
	if err := (&OrganizationInvitationReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("organizationinvitation-controller"),
		Clock:     opts.Clock,
	}).SetupWithManager(mgr, opts); err != nil {
		return fmt.Errorf("setting up the organization invitation controller: %w", err)
	}
	if err := (&OrganizationPlanReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr, opts); err != nil {
		return fmt.Errorf("setting up the organization plan controller: %w", err)
	}
	return nil
}
