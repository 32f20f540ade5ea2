package controllers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/conditions"
	"github.com/orgoperator/org-operator/internal/metering"
)

// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizationusagereports,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizationusagereports/status,verbs=patch

// Defaults of the metering options.
const (
	DefaultCheckpointInterval = 5 * time.Minute
	DefaultReportRetention    = 13 * 30 * 24 * time.Hour
	// DefaultSettleDelay is how far checkpoints trail the clock.
	DefaultSettleDelay = 30 * time.Second
)

// allowanceLevel is where an organization stands against its plan's credit allowance.
type allowanceLevel int

const (
	allowanceWithin allowanceLevel = iota
	allowanceNearlyUsed
	allowanceExhausted
)

// meteringOutcome is what the metering phase found, for updateStatus and the quota phase.
type meteringOutcome struct {
	status *tenancyv1alpha1.MeteringStatus
	// allowance is the plan's monthlyAllowance; nil when there is none.
	allowance *resource.Quantity
	level     allowanceLevel
	used      *resource.Quantity
	// block: the plan blocks new pods and the allowance is used up.
	block bool
}

// reconcileMetering carries the current period's OrganizationUsageReport forward from its
// checkpoint (see internal/metering), writing it at most once per checkpoint interval and only
// when something ran, finishes the previous period's report, and applies the report retention.
func (r *OrganizationReconciler) reconcileMetering(ctx context.Context, s *organizationScope) error {
	if r.Meter == nil || s.home == nil || s.homeProblem != nil || s.subscription.StartDate == nil {
		return nil
	}
	if !r.Meter.HasSynced() {
		s.lookAgainAfter = earliest(s.lookAgainAfter, time.Second)
		return nil
	}
	start := s.subscription.StartDate.Time
	period := metering.PeriodAt(start, s.now)
	var plan tenancyv1alpha1.PlanMetering
	if s.tenant.Plan != nil && s.tenant.Plan.Spec.Metering != nil {
		plan = *s.tenant.Plan.Spec.Metering
	}
	reports := &tenancyv1alpha1.OrganizationUsageReportList{}
	if err := r.List(ctx, reports, client.InNamespace(s.home.Name), client.MatchingLabels{tenancyv1alpha1.OrganizationLabel: s.org.Name}); err != nil {
		return fmt.Errorf("listing usage reports: %w", err)
	}
	byName := map[string]*tenancyv1alpha1.OrganizationUsageReport{}
	for i := range reports.Items {
		byName[reports.Items[i].Name] = &reports.Items[i]
	}
	namespaces := s.namespaceNames()

	// The previous period's report is finished up to its end, whenever the operator gets to it.
	prev := period.Previous(start)
	if old := byName[metering.ReportName(s.org.Name, prev)]; old != nil && prev.Start.Before(period.Start) && !s.now.Add(-r.settleDelay()).Before(prev.End) &&
		(old.Status.CheckpointTime == nil || old.Status.CheckpointTime.Before(&metav1.Time{Time: prev.End})) {
		adv := metering.AdvanceStatus(&old.Status, prev, namespaces, r.Meter.Pods, s.now.Add(-r.settleDelay()), &plan.Prices)
		if !adv.Delta.IsZero() {
			if err := r.writeReport(ctx, old, adv); err != nil {
				return err
			}
		}
	}

	cur := byName[metering.ReportName(s.org.Name, period)]
	var stored tenancyv1alpha1.OrganizationUsageReportStatus
	if cur != nil {
		stored = cur.Status
	}
	// Checkpoints trail the clock by the settle delay, so that a start or an end the kubelet
	// reports a little late still falls after the checkpoint, not before it.
	cutoff := s.now.Add(-r.settleDelay())
	adv := metering.AdvanceStatus(&stored, period, namespaces, r.Meter.Pods, cutoff, &plan.Prices)
	adv.Status.Allowance = plan.MonthlyAllowance
	interval := r.checkpointInterval()
	// lastWrite is when the report was last written: its checkpoint, or its creation, which is
	// the write of its first interval (a create cannot carry the status).
	var lastWrite *time.Time
	switch {
	case cur == nil:
	case stored.CheckpointTime != nil:
		lastWrite = &stored.CheckpointTime.Time
	default:
		lastWrite = &cur.CreationTimestamp.Time
	}
	due := lastWrite == nil || !cutoff.Before(lastWrite.Add(interval))
	something := !adv.Delta.IsZero() || (cur == nil && adv.Running)
	if something && due {
		if cur == nil {
			created, err := r.createReport(ctx, s, period)
			if err != nil {
				return err
			}
			cur, lastWrite = created, &created.CreationTimestamp.Time
		} else {
			if err := r.writeReport(ctx, cur, adv); err != nil {
				return err
			}
			stored, lastWrite = adv.Status, &adv.Status.CheckpointTime.Time
		}
	}
	if adv.Running || (something && (!due || stored.CheckpointTime == nil)) {
		// Come back exactly when the next checkpoint may be written, or at the period's end.
		next := cutoff.Add(interval)
		if lastWrite != nil {
			next = lastWrite.Add(interval)
		}
		if period.End.Before(next) {
			next = period.End
		}
		s.lookAgainAfter = earliest(s.lookAgainAfter, max(next.Sub(cutoff), time.Second))
	}

	out := &meteringOutcome{allowance: plan.MonthlyAllowance,
		status: &tenancyv1alpha1.MeteringStatus{PeriodStart: metav1.NewTime(period.Start), PeriodEnd: metav1.NewTime(period.End),
			CheckpointTime: stored.CheckpointTime, Total: stored.Total, Allowance: plan.MonthlyAllowance}}
	if cur != nil {
		out.status.Report = cur.Name
	}
	if plan.MonthlyAllowance != nil {
		// The allowance is judged on the usage up to now, not up to the checkpoint.
		live := metering.AdvanceStatus(&stored, period, namespaces, r.Meter.Pods, s.now, &plan.Prices)
		used := metering.Credits(&live.Total, &plan.Prices)
		out.used = used
		out.level = levelOf(used, plan.MonthlyAllowance)
		out.block = plan.BlockWhenExhausted && out.level == allowanceExhausted
		if wait := untilNextLevel(used, plan.MonthlyAllowance, &live.Rate, &plan.Prices); wait > 0 {
			ctrl.LoggerFrom(ctx).V(1).Info("Allowance level changes later", "used", used.String(), "after", wait)
			s.lookAgainAfter = earliest(s.lookAgainAfter, wait)
		}
	}
	s.metering = out
	return r.applyRetention(ctx, s, reports.Items, prev)
}

func (r *OrganizationReconciler) settleDelay() time.Duration {
	if r.SettleDelay > 0 {
		return r.SettleDelay
	}
	return DefaultSettleDelay
}

func (r *OrganizationReconciler) checkpointInterval() time.Duration {
	if r.CheckpointInterval > 0 {
		return r.CheckpointInterval
	}
	return DefaultCheckpointInterval
}

// createReport creates the period's report, with no status yet: the create is the write of its
// first checkpoint interval.
func (r *OrganizationReconciler) createReport(ctx context.Context, s *organizationScope, period metering.Period) (*tenancyv1alpha1.OrganizationUsageReport, error) {
	report := &tenancyv1alpha1.OrganizationUsageReport{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.home.Name, Name: metering.ReportName(s.org.Name, period),
			Labels: map[string]string{tenancyv1alpha1.OrganizationLabel: s.org.Name, tenancyv1alpha1.ManagedByLabel: tenancyv1alpha1.ManagedByValue,
				tenancyv1alpha1.ReportPeriodLabel: period.Label()}},
		Spec: tenancyv1alpha1.OrganizationUsageReportSpec{Organization: s.org.Name,
			PeriodStart: metav1.NewTime(period.Start), PeriodEnd: metav1.NewTime(period.End)},
	}
	if err := controllerutil.SetControllerReference(s.org, report, scheme()); err != nil {
		return nil, err
	}
	if err := r.Create(ctx, report); err != nil {
		return nil, fmt.Errorf("creating usage report %s: %w", report.Name, err)
	}
	ctrl.LoggerFrom(ctx).Info("Created usage report", "report", report.Name)
	return report, nil
}

// writeReport writes a report's status, then lets the tracker forget the deleted pods the new
// checkpoint holds. The patch is locked to the report's resourceVersion: a checkpoint computed
// from a stale copy conflicts instead of counting twice.
func (r *OrganizationReconciler) writeReport(ctx context.Context, report *tenancyv1alpha1.OrganizationUsageReport, adv metering.Advance) error {
	before := report.DeepCopy()
	report.Status = adv.Status
	if equality.Semantic.DeepEqual(before.Status, report.Status) {
		return nil
	}
	if err := r.Status().Patch(ctx, report, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("writing usage report %s: %w", report.Name, err)
	}
	upTo := adv.Status.CheckpointTime.Unix()
	for _, ns := range adv.Counted {
		r.Meter.Forget(ns, upTo)
	}
	return nil
}

// applyRetention drops the day buckets of reports older than the previous period and deletes
// reports that ended longer ago than the retention.
func (r *OrganizationReconciler) applyRetention(ctx context.Context, s *organizationScope, reports []tenancyv1alpha1.OrganizationUsageReport, prev metering.Period) error {
	retention := r.ReportRetention
	if retention <= 0 {
		retention = DefaultReportRetention
	}
	var errs []error
	for i := range reports {
		rep := &reports[i]
		end := rep.Spec.PeriodEnd.Time
		switch {
		case !rep.DeletionTimestamp.IsZero():
		case end.Add(retention).Before(s.now):
			err := r.Delete(ctx, rep, client.Preconditions{UID: &rep.UID})
			if client.IgnoreNotFound(err) != nil {
				errs = append(errs, fmt.Errorf("deleting usage report %s: %w", rep.Name, err))
				continue
			}
			ctrl.LoggerFrom(ctx).Info("Deleted usage report past its retention", "report", rep.Name, "retention", retention)
		case !end.After(prev.Start) && len(rep.Status.Days) > 0:
			before := rep.DeepCopy()
			rep.Status.Days = nil
			err := r.Status().Patch(ctx, rep, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
			if err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("compacting usage report %s: %w", rep.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// levelOf is where used stands against allowance.
func levelOf(used, allowance *resource.Quantity) allowanceLevel {
	switch {
	case used.Cmp(*allowance) >= 0:
		return allowanceExhausted
	case used.AsDec().Cmp(nearly(allowance).AsDec()) >= 0:
		return allowanceNearlyUsed
	}
	return allowanceWithin
}

// nearly is 80 % of the allowance, to the milli-credit.
func nearly(allowance *resource.Quantity) *resource.Quantity {
	return resource.NewMilliQuantity(allowance.MilliValue()*8/10, resource.DecimalSI)
}

// untilNextLevel predicts when the running pods take the organization to the next allowance
// level, so that the condition changes then; zero when they never will. The reconcile at that
// moment decides exactly, from the pods.
func untilNextLevel(used, allowance *resource.Quantity, rate *metering.Amount, prices *tenancyv1alpha1.MeteringPrices) time.Duration {
	var target *resource.Quantity
	switch levelOf(used, allowance) {
	case allowanceWithin:
		target = nearly(allowance)
	case allowanceNearlyUsed:
		target = allowance
	default:
		return 0
	}
	// Credits per hour at the current rate, priced exactly, then divided in floating point: the
	// moment is a wake-up time, not an amount.
	perHour := scaled(rate, 3600)
	milliPerHour := metering.Credits(&perHour, prices).MilliValue()
	if milliPerHour <= 0 {
		return 0
	}
	missing := target.MilliValue() - used.MilliValue()
	seconds := math.Ceil(float64(missing) * 3600 / float64(milliPerHour))
	return time.Duration(max(seconds, 1)) * time.Second
}

func scaled(a *metering.Amount, by int64) metering.Amount {
	out := metering.Amount{PodSeconds: a.PodSeconds * by, MilliCPUSeconds: a.MilliCPUSeconds * by, LimitMilliCPUSeconds: a.LimitMilliCPUSeconds * by}
	out.ByteSeconds.Mul(&a.ByteSeconds, big.NewInt(by))
	out.LimitByteSeconds.Mul(&a.LimitByteSeconds, big.NewInt(by))
	return out
}

// setMeteringStatus sets status.metering and CreditsExhausted, with an event at 80 % and 100 %.
func setMeteringStatus(s *organizationScope, w conditions.Writer) {
	m := s.metering
	if m == nil {
		return
	}
	s.org.Status.Metering = m.status
	if m.allowance == nil {
		meta.RemoveStatusCondition(w.Conditions, tenancyv1alpha1.CreditsExhaustedCondition)
		return
	}
	allowance := m.allowance.String()
	switch m.level {
	case allowanceExhausted:
		msg := fmt.Sprintf("Used the whole allowance of %s credits of the period ending %s", allowance, m.status.PeriodEnd.UTC().Format(time.RFC3339))
		if m.block {
			msg += "; the organization's namespaces admit no new pods until then; nothing was deleted"
		}
		w.Announce(conditions.Event{Type: corev1.EventTypeWarning, Action: "Metering"}, tenancyv1alpha1.CreditsExhaustedCondition, metav1.ConditionTrue, tenancyv1alpha1.AllowanceExhaustedReason, msg)
	case allowanceNearlyUsed:
		w.Announce(conditions.Event{Type: corev1.EventTypeWarning, Action: "Metering"}, tenancyv1alpha1.CreditsExhaustedCondition, metav1.ConditionFalse, tenancyv1alpha1.AllowanceNearlyUsedReason,
			fmt.Sprintf("Used 80 %% or more of the allowance of %s credits of the period ending %s", allowance, m.status.PeriodEnd.UTC().Format(time.RFC3339)))
	default:
		w.Set(tenancyv1alpha1.CreditsExhaustedCondition, metav1.ConditionFalse, tenancyv1alpha1.WithinAllowanceReason,
			fmt.Sprintf("Used less than 80 %% of the allowance of %s credits", allowance))
	}
}
