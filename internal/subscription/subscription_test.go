package subscription_test

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/subscription"
)

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func org(planName string, end *time.Time) *tenancyv1alpha1.Organization {
	o := &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(start.Add(-time.Hour))}}
	s := metav1.NewTime(start)
	o.Spec.Subscription = &tenancyv1alpha1.Subscription{Plan: planName, StartDate: &s}
	if end != nil {
		e := metav1.NewTime(*end)
		o.Spec.Subscription.EndDate = &e
	}
	return o
}

func plan(trialDays *int32, grace int32) *tenancyv1alpha1.OrganizationPlan {
	return &tenancyv1alpha1.OrganizationPlan{Spec: tenancyv1alpha1.OrganizationPlanSpec{TrialDays: trialDays, GracePeriodDays: grace}}
}

func ptr[T any](v T) *T { return &v }

func TestEvaluate(t *testing.T) {
	end := start.Add(30 * 24 * time.Hour)
	days := 24 * time.Hour
	tests := []struct {
		name      string
		org       *tenancyv1alpha1.Organization
		plan      *tenancyv1alpha1.OrganizationPlan
		at        time.Time
		state     tenancyv1alpha1.SubscriptionState
		active    bool
		next      time.Time
		daysLeft  *int32
		trialSecs *int64
	}{
		{"no plan, no subscription", &tenancyv1alpha1.Organization{}, nil, start, tenancyv1alpha1.SubscriptionActive, true, time.Time{}, nil, nil},
		{"plan missing", org("gold", nil), nil, start, tenancyv1alpha1.SubscriptionPlanNotFound, false, time.Time{}, nil, nil},
		{"free plan never ends", org("free", nil), plan(nil, 0), start.Add(1000 * days), tenancyv1alpha1.SubscriptionActive, true, time.Time{}, nil, nil},
		{"paid, first day", org("business", &end), plan(nil, 7), start, tenancyv1alpha1.SubscriptionActive, true, start.Add(days), ptr(int32(30)), nil},
		{"paid, half a day before the end", org("business", &end), plan(nil, 7), end.Add(-12 * time.Hour), tenancyv1alpha1.SubscriptionActive, true, end, ptr(int32(1)), nil},
		{"paid, at the end: grace", org("business", &end), plan(nil, 7), end, tenancyv1alpha1.SubscriptionGracePeriod, true, end.Add(7 * days), ptr(int32(0)), nil},
		{"paid, one second before grace ends", org("business", &end), plan(nil, 7), end.Add(7*days - time.Second), tenancyv1alpha1.SubscriptionGracePeriod, true, end.Add(7 * days), ptr(int32(0)), nil},
		{"paid, grace over", org("business", &end), plan(nil, 7), end.Add(7 * days), tenancyv1alpha1.SubscriptionExpired, false, time.Time{}, ptr(int32(0)), nil},
		{"paid without grace expires at the end", org("business", &end), plan(nil, 0), end, tenancyv1alpha1.SubscriptionExpired, false, time.Time{}, ptr(int32(0)), nil},
		{"trial, first hour", org("trial", nil), plan(ptr(int32(14)), 3), start.Add(time.Hour), tenancyv1alpha1.SubscriptionTrial, true, start.Add(days), ptr(int32(14)), ptr(int64(14*86400 - 3600))},
		{"trial over: grace", org("trial", nil), plan(ptr(int32(14)), 3), start.Add(14 * days), tenancyv1alpha1.SubscriptionGracePeriod, true, start.Add(17 * days), ptr(int32(0)), nil},
		{"trial then paid until endDate", org("business", &end), plan(ptr(int32(14)), 0), start.Add(20 * days), tenancyv1alpha1.SubscriptionActive, true, start.Add(21 * days), ptr(int32(10)), nil},
		{"trial, expired", org("trial", nil), plan(ptr(int32(14)), 3), start.Add(17 * days), tenancyv1alpha1.SubscriptionExpired, false, time.Time{}, ptr(int32(0)), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, next := subscription.Evaluate(tt.org, tt.plan, tt.at)
			if st.State != tt.state || st.HasActiveSubscription != tt.active {
				t.Errorf("state = %s active=%v, want %s active=%v", st.State, st.HasActiveSubscription, tt.state, tt.active)
			}
			if !next.Equal(tt.next) {
				t.Errorf("next = %v, want %v", next, tt.next)
			}
			if (st.DaysRemaining == nil) != (tt.daysLeft == nil) || (st.DaysRemaining != nil && *st.DaysRemaining != *tt.daysLeft) {
				t.Errorf("daysRemaining = %v, want %v", deref(st.DaysRemaining), deref(tt.daysLeft))
			}
			if (st.TrialExpirySeconds == nil) != (tt.trialSecs == nil) || (st.TrialExpirySeconds != nil && *st.TrialExpirySeconds != *tt.trialSecs) {
				t.Errorf("trialExpirySeconds = %v, want %v", deref(st.TrialExpirySeconds), deref(tt.trialSecs))
			}
		})
	}
}

// TestNextIsABoundary walks a subscription's whole life from boundary to boundary and checks
// that the state only changes at the moments Evaluate announced.
func TestNextIsABoundary(t *testing.T) {
	end := start.Add(10 * 24 * time.Hour)
	o, p := org("business", &end), plan(ptr(int32(3)), 2)
	now := start
	var states []tenancyv1alpha1.SubscriptionState
	for range 100 {
		st, next := subscription.Evaluate(o, p, now)
		if len(states) == 0 || states[len(states)-1] != st.State {
			states = append(states, st.State)
		}
		if next.IsZero() {
			break
		}
		if !next.After(now) {
			t.Fatalf("next %v is not after %v", next, now)
		}
		if before, _ := subscription.Evaluate(o, p, next.Add(-time.Nanosecond)); before.State != st.State {
			t.Fatalf("state changed to %s before the announced boundary %v", before.State, next)
		}
		now = next
	}
	want := []tenancyv1alpha1.SubscriptionState{"Trial", "Active", "GracePeriod", "Expired"}
	if len(states) != len(want) {
		t.Fatalf("states = %v, want %v", states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("states = %v, want %v", states, want)
		}
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
