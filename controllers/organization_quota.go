package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/ledger"
	"github.com/orgoperator/org-operator/internal/quota"
	"github.com/orgoperator/org-operator/internal/resourcelist"
	"github.com/orgoperator/org-operator/internal/subscription"
)

// Names of the objects the operator keeps in every organization namespace.
const (
	// NamespaceQuotaName applies spec.quotas.namespaceQuota.
	NamespaceQuotaName = "org-operator-namespace"
	// OrganizationQuotaName holds the namespace's share of spec.quotas.organizationQuota.
	OrganizationQuotaName = "org-operator-organization"
	// ExpiredQuotaName admits no new pods while the subscription is Expired.
	ExpiredQuotaName = "org-operator-expired"
	// LimitRangeName applies spec.quotas.limitRange.
	LimitRangeName = "org-operator-defaults"
)

// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizationplans,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=resourcequotas;limitranges,verbs=get;list;watch;create;patch;delete

// reconcileSubscription sets status.subscription and SubscriptionActive, emits an event when the
// state changes, and returns when it will next change.
func (r *OrganizationReconciler) reconcileSubscription(ctx context.Context, org *tenancyv1alpha1.Organization) (*tenancyv1alpha1.OrganizationPlan, time.Duration, error) {
	var plan *tenancyv1alpha1.OrganizationPlan
	if org.Spec.Subscription != nil && org.Spec.Subscription.Plan != "" {
		plan = &tenancyv1alpha1.OrganizationPlan{}
		if err := r.Get(ctx, types.NamespacedName{Name: org.Spec.Subscription.Plan}, plan); err != nil {
			if !apierrors.IsNotFound(err) {
				return nil, 0, err
			}
			plan = nil
		}
	}
	now := r.Clock.Now()
	st, next := subscription.Evaluate(org, plan, now)
	previous := org.Status.Subscription
	org.Status.Subscription = &st

	status, msg := metav1.ConditionTrue, fmt.Sprintf("Subscription is %s", st.State)
	switch st.State {
	case tenancyv1alpha1.SubscriptionExpired:
		status, msg = metav1.ConditionFalse, "Subscription expired: the organization's namespaces admit no new pods until it is renewed; nothing was deleted"
	case tenancyv1alpha1.SubscriptionPlanNotFound:
		status, msg = metav1.ConditionFalse, fmt.Sprintf("OrganizationPlan %s does not exist; quotas come from spec.quotas alone", st.Plan)
	case tenancyv1alpha1.SubscriptionGracePeriod:
		msg = fmt.Sprintf("Subscription ended; grace period until %s", st.GracePeriodEndsAt.UTC().Format(time.RFC3339))
	}
	setCondition(&org.Status.Conditions, org.Generation, tenancyv1alpha1.SubscriptionActiveCondition, status, string(st.State), msg)
	if previous == nil || previous.State != st.State {
		eventType := corev1.EventTypeNormal
		if status == metav1.ConditionFalse {
			eventType = corev1.EventTypeWarning
		}
		var related runtime.Object // a nil *OrganizationPlan would not be a nil interface
		if plan != nil {
			related = plan
		}
		r.Recorder.Eventf(org, related, eventType, string(st.State), "Subscription", "%s", msg)
		ctrl.LoggerFrom(ctx).Info("Subscription state", "state", st.State, "plan", st.Plan)
	}
	var after time.Duration
	if !next.IsZero() {
		after = next.Sub(now)
	}
	return plan, after, nil
}

// reconcileQuotas keeps the quota objects of every namespace and sets status.quotas,
// QuotasReady and QuotaExceeded.
// It returns when the quota ledger next needs a look, if it does.
func (r *OrganizationReconciler) reconcileQuotas(ctx context.Context, org *tenancyv1alpha1.Organization, plan *tenancyv1alpha1.OrganizationPlan, allNamespaces []string) (time.Duration, error) {
	if org.Status.Subscription != nil && org.Status.Subscription.State == tenancyv1alpha1.SubscriptionPlanNotFound {
		// Without the plan the effective quotas are unknown: keep what the namespaces have.
		setCondition(&org.Status.Conditions, org.Generation, tenancyv1alpha1.QuotasReadyCondition, metav1.ConditionFalse,
			string(tenancyv1alpha1.SubscriptionPlanNotFound),
			fmt.Sprintf("OrganizationPlan %s does not exist; the namespaces keep their current quotas until it does", org.Status.Subscription.Plan))
		if !r.QuotaLedger || org.Status.Quotas.LedgerOrNil() == nil {
			return 0, nil
		}
		// The webhooks may still charge against spec.quotas: keep settling what they charge.
		var own corev1.ResourceList
		if org.Spec.Quotas != nil {
			own = org.Spec.Quotas.OrganizationQuota
		}
		settled, after, err := r.settleLedger(ctx, org, allNamespaces, ledger.Enforced(own))
		if err == nil {
			org.Status.Quotas.Ledger = settled
		}
		return after, err
	}
	var planQuotas *tenancyv1alpha1.Quotas
	if plan != nil {
		planQuotas = &plan.Spec.Quotas
	}
	eff := quota.Effective(planQuotas, org.Spec.Quotas)
	expired := org.Status.Subscription != nil && org.Status.Subscription.State == tenancyv1alpha1.SubscriptionExpired
	namespaces, err := r.withoutTerminating(ctx, allNamespaces)
	if err != nil {
		return 0, err
	}

	// What each namespace uses of the organization-wide quota, as its ResourceQuota counts it.
	nsUsed := make(map[string]corev1.ResourceList, len(namespaces))
	var usedLists []corev1.ResourceList
	for _, ns := range namespaces {
		rq := &corev1.ResourceQuota{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: OrganizationQuotaName}, rq); err == nil {
			nsUsed[ns] = rq.Status.Used
			usedLists = append(usedLists, rq.Status.Used)
		} else if !apierrors.IsNotFound(err) {
			return 0, err
		}
	}
	orgUsed := resourcelist.Restrict(resourcelist.Sum(usedLists...), eff.OrganizationQuota)
	ledgered := r.QuotaLedger && len(ledger.Enforced(eff.OrganizationQuota)) > 0
	share := func(ns string) corev1.ResourceList {
		if ledgered {
			// The webhook enforces the sum; a share that follows usage would only add writes
			// that race with the API server's quota admission.
			return eff.OrganizationQuota
		}
		if len(eff.OrganizationQuota) == 0 {
			return nil
		}
		return ledger.NamespaceShare(eff.OrganizationQuota, orgUsed, nsUsed[ns])
	}

	var errs []error
	for _, ns := range namespaces {
		errs = append(errs,
			r.ensureQuota(ctx, org, ns, NamespaceQuotaName, eff.NamespaceQuota),
			r.ensureQuota(ctx, org, ns, OrganizationQuotaName, share(ns)),
			r.ensureQuota(ctx, org, ns, ExpiredQuotaName, expiredHard(expired)),
			r.ensureLimitRange(ctx, org, ns, eff.LimitRange),
		)
	}
	var quotaLedger *tenancyv1alpha1.QuotaLedger
	var untilLedgerCheck time.Duration
	if ledgered {
		var err error
		quotaLedger, untilLedgerCheck, err = r.settleLedger(ctx, org, allNamespaces, ledger.Enforced(eff.OrganizationQuota))
		if err == nil {
			quotaLedger.Observed = ledger.Covering(quotaLedger.Observed, ledger.Enforced(eff.OrganizationQuota))
		}
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		setCondition(&org.Status.Conditions, org.Generation, tenancyv1alpha1.QuotasReadyCondition, metav1.ConditionFalse,
			tenancyv1alpha1.ReconcileErrorReason, truncate(err.Error()))
		return 0, err
	}
	setCondition(&org.Status.Conditions, org.Generation, tenancyv1alpha1.QuotasReadyCondition, metav1.ConditionTrue,
		tenancyv1alpha1.ReconciledReason, fmt.Sprintf("Quotas applied to %d namespaces", len(namespaces)))

	counts := quota.Counts{Namespaces: int32(len(namespaces)), Members: org.Status.MemberCount, Admins: org.Status.AdminCount}
	exceeded := quota.Exceeded(eff, counts, orgUsed)
	org.Status.Quotas = &tenancyv1alpha1.QuotaStatus{
		MaxNamespaces: eff.MaxNamespaces, MaxMembers: eff.MaxMembers, MaxAdmins: eff.MaxAdmins,
		NamespaceQuota: resourcelist.CanonicalOrNil(eff.NamespaceQuota), Hard: resourcelist.CanonicalOrNil(eff.OrganizationQuota),
		Used:     resourcelist.CanonicalOrNil(orgUsed),
		Exceeded: exceeded, Ledger: quotaLedger,
	}
	if len(exceeded) == 0 {
		setCondition(&org.Status.Conditions, org.Generation, tenancyv1alpha1.QuotaExceededCondition, metav1.ConditionFalse,
			tenancyv1alpha1.WithinQuotaReason, "Within all quotas")
		return untilLedgerCheck, nil
	}
	parts := make([]string, 0, len(exceeded))
	for _, e := range exceeded {
		parts = append(parts, fmt.Sprintf("%s (used %s, hard %s)", e.Name, e.Used, e.Hard))
	}
	msg := "Over quota: " + strings.Join(parts, ", ") + "; nothing is removed, new objects of these kinds are refused"
	if !isTrue(org.Status.Conditions, tenancyv1alpha1.QuotaExceededCondition) {
		r.Recorder.Eventf(org, nil, corev1.EventTypeWarning, tenancyv1alpha1.OverQuotaReason, "Quota", "%s", msg)
	}
	setCondition(&org.Status.Conditions, org.Generation, tenancyv1alpha1.QuotaExceededCondition, metav1.ConditionTrue,
		tenancyv1alpha1.OverQuotaReason, msg)
	return untilLedgerCheck, nil
}

// settleLedger settles the organization's quota ledger (see ledger.Settle) against hard, what
// the ledger enforces.
func (r *OrganizationReconciler) settleLedger(ctx context.Context, org *tenancyv1alpha1.Organization, namespaces []string,
	hard corev1.ResourceList) (*tenancyv1alpha1.QuotaLedger, time.Duration, error) {
	return ledger.Settle(ctx, ledger.Holdings{Pods: r.Pods, Reader: r.Client}, r.APIReader,
		org.Status.Quotas.LedgerOrNil(), namespaces, hard, r.Clock.Now())
}

// earliest returns the shorter of two waits, ignoring zeros (no wait).
func earliest(a, b time.Duration) time.Duration {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

func isTrue(conds []metav1.Condition, t string) bool {
	for _, c := range conds {
		if c.Type == t {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}

func expiredHard(expired bool) corev1.ResourceList {
	if !expired {
		return nil
	}
	return corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}
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
		return r.deleteIfOwned(ctx, org, want)
	}
	return r.ensureOwned(ctx, org, want, func(have, want client.Object) bool {
		return equality.Semantic.DeepEqual(have.(*corev1.ResourceQuota).Spec.Hard, want.(*corev1.ResourceQuota).Spec.Hard)
	}, func(have, want client.Object) { have.(*corev1.ResourceQuota).Spec = want.(*corev1.ResourceQuota).Spec })
}

// ensureLimitRange keeps the container defaults, or deletes them when there are none.
func (r *OrganizationReconciler) ensureLimitRange(ctx context.Context, org *tenancyv1alpha1.Organization, ns string, d *tenancyv1alpha1.LimitRangeDefaults) error {
	want := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: LimitRangeName, Labels: managedLabels(org.Name)}}
	if d == nil || (len(d.Default) == 0 && len(d.DefaultRequest) == 0) {
		return r.deleteIfOwned(ctx, org, want)
	}
	want.Spec.Limits = []corev1.LimitRangeItem{{Type: corev1.LimitTypeContainer, Default: d.Default, DefaultRequest: d.DefaultRequest}}
	return r.ensureOwned(ctx, org, want, func(have, want client.Object) bool {
		return equality.Semantic.DeepEqual(have.(*corev1.LimitRange).Spec, want.(*corev1.LimitRange).Spec)
	}, func(have, want client.Object) { have.(*corev1.LimitRange).Spec = want.(*corev1.LimitRange).Spec })
}

// deleteIfOwned deletes obj if it exists and the organization owns it.
func (r *OrganizationReconciler) deleteIfOwned(ctx context.Context, org *tenancyv1alpha1.Organization, obj client.Object) error {
	have := obj.DeepCopyObject().(client.Object)
	if err := r.Get(ctx, client.ObjectKeyFromObject(obj), have); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(have, org) {
		return nil
	}
	uid := have.GetUID()
	return client.IgnoreNotFound(r.Delete(ctx, have, client.Preconditions{UID: &uid}))
}

// withoutTerminating drops namespaces being deleted: nothing can be created in them.
func (r *OrganizationReconciler) withoutTerminating(ctx context.Context, names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, name := range names {
		ns := &corev1.Namespace{}
		if err := r.Get(ctx, types.NamespacedName{Name: name}, ns); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, err
		}
		if ns.DeletionTimestamp.IsZero() {
			out = append(out, name)
		}
	}
	return out, nil
}
