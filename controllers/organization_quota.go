package controllers

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/conditions"
	"github.com/orgoperator/org-operator/internal/ledger"
	"github.com/orgoperator/org-operator/internal/resourcelist"
)

// Names of the objects the operator keeps in every organization namespace.
const (
	// NamespaceQuotaName applies spec.quotas.namespaceQuota.
	NamespaceQuotaName = "org-operator-namespace"
	// OrganizationQuotaName holds the namespace's share of spec.quotas.organizationQuota.
	OrganizationQuotaName = "org-operator-organization"
	// ExpiredQuotaName admits no new pods while the subscription is Expired, or while the credit
	// allowance is used up on a plan that blocks then.
	ExpiredQuotaName = "org-operator-expired"
	// LimitRangeName applies spec.quotas.limitRange.
	LimitRangeName = "org-operator-defaults"
)

// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizationplans,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=resourcequotas;limitranges,verbs=get;list;watch;create;patch;delete

// quotaOutcome is what the quota phase did, for updateStatus.
type quotaOutcome struct {
	// err is why the quota objects or the ledger could not be brought up to date.
	err error
	// applied is how many namespaces have their quota objects.
	applied int
	// used is what the namespaces use of the organization-wide quota, as their ResourceQuotas count it.
	used corev1.ResourceList
	// ledger is the settled quota ledger; nil when there is none.
	ledger           *tenancyv1alpha1.QuotaLedger
	untilLedgerCheck time.Duration
}

// reconcileQuotas keeps the quota objects of every namespace and settles the quota ledger. While
// the plan is missing, the namespaces keep what they have (see tenancy.EffectiveQuotas): the
// ledger alone is settled, since the webhooks keep charging it.
func (r *OrganizationReconciler) reconcileQuotas(ctx context.Context, s *organizationScope) error {
	out := &quotaOutcome{}
	s.quotas = out
	hard := ledger.Enforced(s.tenant.Quotas.OrganizationQuota)
	if s.tenant.PlanMissing {
		if r.QuotaLedger && s.org.Status.Quotas.LedgerOrNil() != nil {
			out.ledger, out.untilLedgerCheck, out.err = r.settleLedger(ctx, s, hard)
		}
		if out.err != nil {
			return out.err
		}
		return conditions.Stalled(string(tenancyv1alpha1.SubscriptionPlanNotFound), "%s", planMissingMessage(s.subscription.Plan))
	}
	namespaces := s.activeNamespaces()
	nsUsed, err := r.organizationQuotaUsage(ctx, namespaces)
	if err != nil {
		return err
	}
	eff := s.tenant.Quotas
	var usedLists []corev1.ResourceList
	for _, used := range nsUsed {
		usedLists = append(usedLists, used)
	}
	out.used = resourcelist.Restrict(resourcelist.Sum(usedLists...), eff.OrganizationQuota)
	ledgered := r.QuotaLedger && len(hard) > 0
	var errs []error
	for _, ns := range namespaces {
		errs = append(errs, r.ensureQuotaObjects(ctx, s, ns, organizationShare(eff.OrganizationQuota, out.used, nsUsed[ns], ledgered)))
	}
	if ledgered {
		l, after, err := r.settleLedger(ctx, s, hard)
		if err == nil {
			l.Observed = ledger.Covering(l.Observed, hard)
			out.ledger, out.untilLedgerCheck = l, after
		}
		errs = append(errs, err)
	}
	out.err = errors.Join(errs...)
	out.applied = len(namespaces)
	return out.err
}

// organizationShare is a namespace's share of the organization-wide quota. With the ledger, the
// webhook enforces the sum: a share that followed usage would only add writes that race with the
// API server's quota admission. Without it, each namespace may use what the others leave.
func organizationShare(hard, orgUsed, nsUsed corev1.ResourceList, ledgered bool) corev1.ResourceList {
	switch {
	case ledgered:
		return hard
	case len(hard) == 0:
		return nil
	}
	return ledger.NamespaceShare(hard, orgUsed, nsUsed)
}

// organizationQuotaUsage reads what each namespace's ResourceQuota counts of the
// organization-wide quota.
func (r *OrganizationReconciler) organizationQuotaUsage(ctx context.Context, namespaces []string) (map[string]corev1.ResourceList, error) {
	used := make(map[string]corev1.ResourceList, len(namespaces))
	for _, ns := range namespaces {
		rq := &corev1.ResourceQuota{}
		err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: OrganizationQuotaName}, rq)
		switch {
		case err == nil:
			used[ns] = rq.Status.Used
		case !apierrors.IsNotFound(err):
			return nil, err
		}
	}
	return used, nil
}

// ensureQuotaObjects keeps one namespace's ResourceQuotas and LimitRange.
func (r *OrganizationReconciler) ensureQuotaObjects(ctx context.Context, s *organizationScope, ns string, share corev1.ResourceList) error {
	eff := s.tenant.Quotas
	return errors.Join(
		r.ensureQuota(ctx, s.org, ns, NamespaceQuotaName, eff.NamespaceQuota),
		r.ensureQuota(ctx, s.org, ns, OrganizationQuotaName, share),
		r.ensureQuota(ctx, s.org, ns, ExpiredQuotaName, expiredHard(s)),
		r.ensureLimitRange(ctx, s.org, ns, eff.LimitRange),
	)
}

// settleLedger settles the organization's quota ledger (see ledger.Settle) against hard, what
// the ledger enforces.
func (r *OrganizationReconciler) settleLedger(ctx context.Context, s *organizationScope, hard corev1.ResourceList) (*tenancyv1alpha1.QuotaLedger, time.Duration, error) {
	return ledger.Settle(ctx, ledger.Holdings{Pods: r.Pods, Reader: r.Client}, r.APIReader,
		s.org.Status.Quotas.LedgerOrNil(), s.namespaceNames(), hard, r.Clock.Now())
}

func managedLabels(org string) map[string]string {
	return map[string]string{
		tenancyv1alpha1.OrganizationLabel: org,
		tenancyv1alpha1.ManagedByLabel:    tenancyv1alpha1.ManagedByValue,
	}
}

// ensureQuota keeps the named ResourceQuota with hard, or deletes it when hard is empty.
func (r *OrganizationReconciler) ensureQuota(ctx context.Context, org *tenancyv1alpha1.Organization, ns, name string, hard corev1.ResourceList) error {
	want := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: managedLabels(org.Name)},
		Spec:       corev1.ResourceQuotaSpec{Hard: hard},
	}
	if len(hard) == 0 {
		return r.owner(org).DeleteIfOwned(ctx, want)
	}
	return r.owner(org).Ensure(ctx, want, func(have, want client.Object) bool {
		return equality.Semantic.DeepEqual(have.(*corev1.ResourceQuota).Spec.Hard, want.(*corev1.ResourceQuota).Spec.Hard)
	}, func(have, want client.Object) { have.(*corev1.ResourceQuota).Spec = want.(*corev1.ResourceQuota).Spec })
}

// ensureLimitRange keeps the container defaults, or deletes them when there are none.
func (r *OrganizationReconciler) ensureLimitRange(ctx context.Context, org *tenancyv1alpha1.Organization, ns string, d *tenancyv1alpha1.LimitRangeDefaults) error {
	want := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: LimitRangeName, Labels: managedLabels(org.Name)}}
	if d == nil || (len(d.Default) == 0 && len(d.DefaultRequest) == 0) {
		return r.owner(org).DeleteIfOwned(ctx, want)
	}
	want.Spec.Limits = []corev1.LimitRangeItem{{Type: corev1.LimitTypeContainer, Default: d.Default, DefaultRequest: d.DefaultRequest}}
	return r.owner(org).Ensure(ctx, want, func(have, want client.Object) bool {
		return equality.Semantic.DeepEqual(have.(*corev1.LimitRange).Spec, want.(*corev1.LimitRange).Spec)
	}, func(have, want client.Object) { have.(*corev1.LimitRange).Spec = want.(*corev1.LimitRange).Spec })
}
