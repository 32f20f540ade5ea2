// Package subscription computes where an organization's subscription stands at a given moment,
// and when that will next change. It reads only the organization, its plan and the time, so
// that a restarted operator reaches the same answer as the one before it.
package subscription

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

const day = 24 * time.Hour

// Evaluate returns the subscription's status at now and the next moment it changes (zero when
// it never will). plan is nil when the organization names a plan that does not exist; an
// organization that names no plan has an Active subscription without end.
func Evaluate(org *tenancyv1alpha1.Organization, plan *tenancyv1alpha1.OrganizationPlan, now time.Time) (tenancyv1alpha1.SubscriptionStatus, time.Time) {
	sub := org.Spec.Subscription
	if sub == nil {
		sub = &tenancyv1alpha1.Subscription{}
	}
	start := org.CreationTimestamp.Time
	if sub.StartDate != nil {
		start = sub.StartDate.Time
	}
	st := tenancyv1alpha1.SubscriptionStatus{Plan: sub.Plan, StartDate: timePtr(start)}
	if sub.Plan != "" && plan == nil {
		st.State = tenancyv1alpha1.SubscriptionPlanNotFound
		return st, time.Time{}
	}

	var trialEnd, end time.Time
	var grace time.Duration
	if plan != nil {
		if plan.Spec.TrialDays != nil {
			trialEnd = start.Add(time.Duration(*plan.Spec.TrialDays) * day)
			st.TrialExpiresAt = timePtr(trialEnd)
			end = trialEnd
		}
		grace = time.Duration(plan.Spec.GracePeriodDays) * day
	}
	if sub.EndDate != nil {
		end = sub.EndDate.Time
	}

	var next time.Time
	switch {
	case !trialEnd.IsZero() && now.Before(trialEnd):
		st.State = tenancyv1alpha1.SubscriptionTrial
		seconds := int64(trialEnd.Sub(now) / time.Second)
		st.TrialExpirySeconds = &seconds
		next = trialEnd
	case end.IsZero() || now.Before(end):
		st.State = tenancyv1alpha1.SubscriptionActive
		if !end.IsZero() {
			next = end
		}
	case now.Before(end.Add(grace)):
		st.State = tenancyv1alpha1.SubscriptionGracePeriod
		next = end.Add(grace)
	default:
		st.State = tenancyv1alpha1.SubscriptionExpired
	}
	st.HasActiveSubscription = st.State != tenancyv1alpha1.SubscriptionExpired
	if !end.IsZero() {
		st.EndDate = timePtr(end)
		st.GracePeriodEndsAt = timePtr(end.Add(grace))
		if now.Before(end) {
			days, change := daysRemaining(now, end)
			st.DaysRemaining = &days
			if next.IsZero() || change.Before(next) {
				next = change
			}
		} else {
			zero := int32(0)
			st.DaysRemaining = &zero
		}
	}
	return st, next
}

// daysRemaining counts the started days left before end, and when that count next drops.
func daysRemaining(now, end time.Time) (int32, time.Time) {
	left := end.Sub(now)
	days := int32((left + day - 1) / day)
	return days, end.Add(-time.Duration(days-1) * day)
}

func timePtr(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t.UTC().Truncate(time.Second))
	return &mt
}

// CheckPlan checks a subscription against its plan: a free plan's subscription has no end date,
// a paid plan's has one unless the plan's trial ends it. path is the subscription's field.
func CheckPlan(plan *tenancyv1alpha1.OrganizationPlan, sub *tenancyv1alpha1.Subscription, path *field.Path) field.ErrorList {
	endDate := path.Child("endDate")
	switch {
	case plan.Spec.Free && sub.EndDate != nil:
		return field.ErrorList{field.Forbidden(endDate, fmt.Sprintf("plan %s is free and never ends: remove endDate", plan.Name))}
	case !plan.Spec.Free && plan.Spec.TrialDays == nil && sub.EndDate == nil:
		return field.ErrorList{field.Required(endDate, fmt.Sprintf("plan %s is paid: set the date the subscription ends", plan.Name))}
	}
	return nil
}
