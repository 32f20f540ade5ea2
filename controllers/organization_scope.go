package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/conditions"
	"github.com/orgoperator/org-operator/internal/inventory"
	"github.com/orgoperator/org-operator/internal/subscription"
	"github.com/orgoperator/org-operator/internal/tenancy"
)

// organizationScope is what one reconcile of an organization knows: read once up front, then
// acted on by the phases and turned into status by updateStatus.
type organizationScope struct {
	org    *tenancyv1alpha1.Organization
	tenant tenancy.Tenant
	now    time.Time
	// read says everything below was read; a scope whose reading failed reports only the error.
	read bool

	// home is the home namespace as it is (nil while it does not exist); homeProblem, when set,
	// says why the organization cannot have it.
	home        *corev1.Namespace
	homeProblem *homeProblem
	// namespaces are the organization's namespaces, the home namespace included once it is ours.
	namespaces []corev1.Namespace
	members    []tenancyv1alpha1.OrganizationMember
	// projects are the organization's projects, in its home namespace.
	projects []tenancyv1alpha1.OrganizationProject

	subscription tenancyv1alpha1.SubscriptionStatus
	// nextBoundary is when the subscription next changes state; zero when it never will.
	nextBoundary time.Time

	// Set by the phases.
	usage           *tenancyv1alpha1.OrganizationUsage
	namespaceUsage  map[string]tenancyv1alpha1.WorkloadUsage
	projectOutcomes map[string]projectOutcome
	// announcements are the events of the status's condition changes, emitted once it is written.
	announcements   conditions.Announcements
	quotas          *quotaOutcome
	metering        *meteringOutcome
	deletionBlocked []string
	// owner is the member made for spec.owner, to record in status.owner.
	owner *tenancyv1alpha1.OwnerStatus
	// memberConflict: a member's status write met a newer version; the reconcile runs again soon.
	memberConflict atomic.Bool
	// lookAgainAfter, when set, is when to look again at something no watch reports.
	lookAgainAfter time.Duration
	// homeCreated: this reconcile created the home namespace, whose creation event brings the
	// organization back within a burst delay.
	homeCreated bool
}

// homeProblem is why an organization has no home namespace.
type homeProblem struct {
	reason, message string
	// stalled: only a person can fix it; otherwise it passes by itself.
	stalled bool
}

// newScope reads what the organization's reconcile needs from the cache. The scope it returns
// on an error is marked unread, and updateStatus then reports the error alone.
func (r *OrganizationReconciler) newScope(ctx context.Context, org *tenancyv1alpha1.Organization) (*organizationScope, error) {
	s := &organizationScope{org: org, now: r.Clock.Now()}
	var err error
	if s.tenant, err = (tenancy.Resolver{Reader: r.Client}).Tenant(ctx, org); err != nil {
		return s, err
	}
	s.subscription, s.nextBoundary = subscription.Evaluate(org, s.tenant.Plan, s.now)
	labelled, err := inventory.OrganizationNamespaces(ctx, r.Client, org.Name)
	if err != nil {
		return s, err
	}
	if err := s.findHome(ctx, r.Client); err != nil {
		return s, err
	}
	s.namespaces = s.withHome(labelled)
	if s.homeProblem == nil && s.home != nil && org.DeletionTimestamp.IsZero() {
		members := &tenancyv1alpha1.OrganizationMemberList{}
		if err := r.List(ctx, members, client.InNamespace(s.home.Name)); err != nil {
			return s, fmt.Errorf("listing members: %w", err)
		}
		s.members = members.Items
		projects := &tenancyv1alpha1.OrganizationProjectList{}
		if err := r.List(ctx, projects, client.InNamespace(s.home.Name)); err != nil {
			return s, fmt.Errorf("listing projects: %w", err)
		}
		s.projects = projects.Items
	}
	s.read = true
	return s, nil
}

// findHome reads the namespace named after the organization and says whether it can be its home.
func (s *organizationScope) findHome(ctx context.Context, c client.Reader) error {
	if tenancyv1alpha1.IsReservedName(s.org.Name) {
		s.homeProblem = &homeProblem{reason: tenancyv1alpha1.ReservedNameReason, stalled: true,
			message: fmt.Sprintf("The name %q is reserved for the system; recreate the organization under another name", s.org.Name)}
		return nil
	}
	home := &corev1.Namespace{}
	err := c.Get(ctx, types.NamespacedName{Name: s.org.Name}, home)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return err
	case !tenancy.IsHome(home, s.org):
		s.home = home
		s.homeProblem = &homeProblem{reason: tenancyv1alpha1.NameCollisionReason, stalled: true,
			message: fmt.Sprintf("Namespace %s already exists and is not owned by this organization; delete it or recreate the organization under another name", s.org.Name)}
	case !home.DeletionTimestamp.IsZero():
		s.home = home
		s.homeProblem = &homeProblem{reason: tenancyv1alpha1.ProgressingReason,
			message: fmt.Sprintf("Waiting for the old home namespace %s to finish terminating", s.org.Name)}
	default:
		s.home = home
	}
	return nil
}

// withHome adds the home namespace, once it is the organization's, to the labelled ones; a
// namespace appears once however it belongs.
func (s *organizationScope) withHome(labelled []corev1.Namespace) []corev1.Namespace {
	// The home namespace carries the organization label too: it is added once, below, if it is ours.
	out := slices.DeleteFunc(labelled, func(ns corev1.Namespace) bool { return ns.Name == s.org.Name })
	if s.homeProblem == nil && s.home != nil {
		out = withNamespace(out, *s.home)
	}
	return out
}

// withNamespace adds ns to namespaces, keeping them sorted by name.
func withNamespace(namespaces []corev1.Namespace, ns corev1.Namespace) []corev1.Namespace {
	namespaces = append(namespaces, ns)
	slices.SortFunc(namespaces, func(a, b corev1.Namespace) int { return strings.Compare(a.Name, b.Name) })
	return namespaces
}

// namespaceNames are the names of the organization's namespaces, sorted.
func (s *organizationScope) namespaceNames() []string { return namesOf(s.namespaces, nil) }

// activeNamespaces are the namespaces not being deleted: nothing can be created in the others.
func (s *organizationScope) activeNamespaces() []string { return namesOf(s.namespaces, notTerminating) }

// namesOf returns the names of the namespaces keep accepts, in their order; all when keep is nil.
func namesOf(namespaces []corev1.Namespace, keep func(*corev1.Namespace) bool) []string {
	names := make([]string, 0, len(namespaces))
	for i := range namespaces {
		if keep == nil || keep(&namespaces[i]) {
			names = append(names, namespaces[i].Name)
		}
	}
	return names
}

func notTerminating(ns *corev1.Namespace) bool { return ns.DeletionTimestamp.IsZero() }

// requeueAfter is how long until the reconcile must run again by itself: the subscription's next
// boundary or the quota ledger's next check, whichever comes first.
func (s *organizationScope) requeueAfter() time.Duration {
	var untilBoundary time.Duration
	if !s.nextBoundary.IsZero() {
		untilBoundary = s.nextBoundary.Sub(s.now)
	}
	var untilLedger time.Duration
	if s.quotas != nil {
		untilLedger = s.quotas.untilLedgerCheck
	}
	wait := earliest(earliest(untilBoundary, untilLedger), s.lookAgainAfter)
	if s.memberConflict.Load() {
		wait = earliest(wait, conflictRetry(s.org))
	}
	return wait
}

// earliest returns the shorter of two waits, ignoring zeros (no wait).
func earliest(a, b time.Duration) time.Duration {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}
