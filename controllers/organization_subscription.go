package controllers

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/conditions"
)

// An organization's subscription is evaluated by internal/subscription (where it stands and when
// that changes, from the organization, its plan and the time); this file turns it into status,
// events and the quota that holds an expired subscription.

// setSubscriptionStatus writes status.subscription and SubscriptionActive, and emits an event when
// the state changes. The first state an organization gets is in its status and makes no event:
// events are writes too, and a new organization's one transition is to Ready.
func (r *OrganizationReconciler) setSubscriptionStatus(s *organizationScope, w conditions.Writer) bool {
	st := s.subscription
	first := s.org.Status.Subscription == nil
	s.org.Status.Subscription = &st
	status, msg := subscriptionCondition(st)
	if !w.Set(tenancyv1alpha1.SubscriptionActiveCondition, status, string(st.State), msg) {
		return false
	}
	if first {
		return true
	}
	eventType := corev1.EventTypeNormal
	if status == metav1.ConditionFalse {
		eventType = corev1.EventTypeWarning
	}
	var related runtime.Object // a nil *OrganizationPlan would not be a nil interface
	if s.tenant.Plan != nil {
		related = s.tenant.Plan
	}
	r.Recorder.Eventf(s.org, related, eventType, string(st.State), "Subscription", "%s", msg)
	return true
}

// subscriptionCondition is what SubscriptionActive says of a subscription.
func subscriptionCondition(st tenancyv1alpha1.SubscriptionStatus) (metav1.ConditionStatus, string) {
	switch st.State {
	case tenancyv1alpha1.SubscriptionExpired:
		return metav1.ConditionFalse, "Subscription expired: the organization's namespaces admit no new pods until it is renewed; nothing was deleted"
	case tenancyv1alpha1.SubscriptionPlanNotFound:
		return metav1.ConditionFalse, planMissingMessage(st.Plan)
	case tenancyv1alpha1.SubscriptionGracePeriod:
		return metav1.ConditionTrue, fmt.Sprintf("Subscription ended; grace period until %s", st.GracePeriodEndsAt.UTC().Format(time.RFC3339))
	}
	return metav1.ConditionTrue, fmt.Sprintf("Subscription is %s", st.State)
}

// planMissingMessage says what holds while the plan is missing (see tenancy.EffectiveQuotas).
func planMissingMessage(plan string) string {
	return fmt.Sprintf("OrganizationPlan %s does not exist; the quotas last applied hold until it does", plan)
}

// expiredHard is the hard limit of ExpiredQuotaName: no new pods while the subscription is
// Expired or, when the plan says so, while the credit allowance is used up; no quota otherwise.
func expiredHard(s *organizationScope) corev1.ResourceList {
	exhausted := s.metering != nil && s.metering.block
	if s.subscription.State != tenancyv1alpha1.SubscriptionExpired && !exhausted {
		return nil
	}
	return corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}
}
