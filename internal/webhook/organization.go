package webhook

import (
	"context"
	"fmt"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/inventory"
	"github.com/orgoperator/org-operator/internal/podcache"
	"github.com/orgoperator/org-operator/internal/subscription"
	"github.com/orgoperator/org-operator/internal/tenancy"
	"github.com/orgoperator/org-operator/internal/validation"
)

var (
	organizationKind      = tenancyv1alpha1.GroupVersion.WithKind("Organization").GroupKind()
	organizationsResource = tenancyv1alpha1.GroupVersion.WithResource("organizations").GroupResource()
)

// The API server calls the defaulting webhook only for a subscription without a startDate, the one case Default
// changes (its matchConditions).
//
// +kubebuilder:webhook:path=/mutate-tenancy-orgoperator-io-v1alpha1-organization,mutating=true,failurePolicy=fail,sideEffects=None,groups=tenancy.orgoperator.io,resources=organizations,verbs=create;update,versions=v1alpha1,name=morganization.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system,patch=`{"matchConditions":[{"name":"start-date-missing","expression":"has(object.spec) && type(object.spec) == map && has(object.spec.subscription) && type(object.spec.subscription) == map && !has(object.spec.subscription.startDate)"}]}`

// OrganizationDefaulter fills in what an organization leaves out.
type OrganizationDefaulter struct {
	Clock clock.PassiveClock
}

// Default sets subscription.startDate to the time of creation when a subscription omits it, and
// keeps the start date an update leaves out.
func (d *OrganizationDefaulter) Default(ctx context.Context, org *tenancyv1alpha1.Organization) error {
	sub := org.Spec.Subscription
	if sub == nil || sub.StartDate != nil {
		return nil
	}
	if req, err := admission.RequestFromContext(ctx); err == nil && req.Operation == admissionv1.Update {
		old := &tenancyv1alpha1.Organization{}
		if err := decodeOld(req, old); err == nil && old.Spec.Subscription != nil && old.Spec.Subscription.StartDate != nil {
			sub.StartDate = old.Spec.Subscription.StartDate.DeepCopy()
			return nil
		}
	}
	now := metav1.NewTime(d.Clock.Now().UTC().Truncate(1e9))
	sub.StartDate = &now
	return nil
}

// Its matchConditions skip the updates ValidateUpdate lets through unjudged: the spec unchanged,
// or the organization being deleted.
//
// +kubebuilder:webhook:path=/validate-tenancy-orgoperator-io-v1alpha1-organization,mutating=false,failurePolicy=fail,sideEffects=None,groups=tenancy.orgoperator.io,resources=organizations,verbs=create;update;delete,versions=v1alpha1,name=vorganization.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system,patch=`{"matchConditions":[{"name":"judged-change","expression":"request.operation != 'UPDATE' || (!has(oldObject.metadata.deletionTimestamp) && (!has(object.spec) || !has(oldObject.spec) || object.spec != oldObject.spec))"}]}`
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// OrganizationValidator checks what the CRD schema cannot: the home namespace's name is free,
// and deletionPolicy Block holds while workloads remain.
type OrganizationValidator struct {
	Reader client.Reader
	// Pods lists the pods that keep an organization with deletionPolicy Block.
	Pods podcache.Lister
}

// ValidateCreate rejects a name that is invalid, reserved, or taken by a namespace that is not
// this organization's home.
func (v *OrganizationValidator) ValidateCreate(ctx context.Context, org *tenancyv1alpha1.Organization) (admission.Warnings, error) {
	errs := validation.OrganizationName(org.Name)
	errs = append(errs, validation.Subscription(org.Spec.Subscription)...)
	planErrs, warnings, err := v.planRules(ctx, org)
	if err != nil {
		return nil, err
	}
	errs = append(errs, planErrs...)
	if len(errs) == 0 {
		ns := &corev1.Namespace{}
		err := v.Reader.Get(ctx, types.NamespacedName{Name: org.Name}, ns)
		switch {
		case err == nil && tenancy.HomeOf(ns) != org.Name:
			errs = append(errs, field.Forbidden(field.NewPath("metadata", "name"),
				fmt.Sprintf("namespace %s already exists and is not an organization's home; the organization's home namespace takes its name, so choose another name", org.Name)))
		case err != nil && !apierrors.IsNotFound(err):
			return nil, apierrors.NewInternalError(err)
		}
	}
	return warnings, invalid(organizationKind, org.Name, errs)
}

// planRules checks the subscription against its plan: a free plan's subscription has no end
// date, a paid plan's has one (a trial ends with its trial). A plan that does not exist yet is
// allowed with a warning, so that GitOps tools may apply organizations before plans.
func (v *OrganizationValidator) planRules(ctx context.Context, org *tenancyv1alpha1.Organization) (field.ErrorList, admission.Warnings, error) {
	sub := org.Spec.Subscription
	if sub == nil || sub.Plan == "" {
		return nil, nil, nil
	}
	tenant, err := tenancy.Resolver{Reader: v.Reader}.Tenant(ctx, org)
	switch {
	case err != nil:
		return nil, nil, apierrors.NewInternalError(err)
	case tenant.PlanMissing:
		return nil, admission.Warnings{fmt.Sprintf("OrganizationPlan %s does not exist yet; the organization will be PlanNotFound until it does", sub.Plan)}, nil
	}
	return subscription.CheckPlan(tenant.Plan, sub, field.NewPath("spec", "subscription")), nil, nil
}

// ValidateUpdate judges only what the update changes, as ratcheting validation does, so that an
// organization whose plan changed under it can still be labelled or deleted: the subscription's
// dates when one of them changes, the plan rules when the plan or the end date changes, and count
// quotas lowered below what the organization already has (unless the force annotation says so).
// An organization being deleted is never refused, so that its finalizer can be removed.
func (v *OrganizationValidator) ValidateUpdate(ctx context.Context, old, org *tenancyv1alpha1.Organization) (admission.Warnings, error) {
	if !org.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	var errs field.ErrorList
	var warnings admission.Warnings
	oldSub, sub := subscriptionOf(old), subscriptionOf(org)
	if !oldSub.StartDate.Equal(sub.StartDate) || !oldSub.EndDate.Equal(sub.EndDate) {
		errs = append(errs, validation.Subscription(org.Spec.Subscription)...)
	}
	if oldSub.Plan != sub.Plan || !oldSub.EndDate.Equal(sub.EndDate) {
		planErrs, planWarnings, err := v.planRules(ctx, org)
		if err != nil {
			return nil, err
		}
		errs = append(errs, planErrs...)
		warnings = planWarnings
	}
	if org.Annotations[tenancyv1alpha1.ForceQuotaAnnotation] != "true" && org.Status.Usage != nil {
		errs = append(errs, belowUsage(old, org)...)
	}
	return warnings, invalid(organizationKind, org.Name, errs)
}

// subscriptionOf is org's subscription, empty when it has none.
func subscriptionOf(org *tenancyv1alpha1.Organization) tenancyv1alpha1.Subscription {
	if org.Spec.Subscription == nil {
		return tenancyv1alpha1.Subscription{}
	}
	return *org.Spec.Subscription
}

// belowUsage refuses to set maxNamespaces or maxMembers below what the organization has now.
func belowUsage(old, org *tenancyv1alpha1.Organization) field.ErrorList {
	var errs field.ErrorList
	q := org.Spec.Quotas
	if q == nil {
		return nil
	}
	quotas := field.NewPath("spec", "quotas")
	check := func(name string, limit, oldLimit *int32, used int32) {
		if limit == nil || *limit >= used || (oldLimit != nil && *oldLimit == *limit) {
			return
		}
		errs = append(errs, field.Invalid(quotas.Child(name), *limit, fmt.Sprintf(
			"the organization has %d already; annotate it %s=true to lower the quota anyway (nothing is removed, new ones are refused)",
			used, tenancyv1alpha1.ForceQuotaAnnotation)))
	}
	var oldQ tenancyv1alpha1.Quotas
	if old.Spec.Quotas != nil {
		oldQ = *old.Spec.Quotas
	}
	check("maxNamespaces", q.MaxNamespaces, oldQ.MaxNamespaces, org.Status.Usage.NamespaceCount)
	check("maxMembers", q.MaxMembers, oldQ.MaxMembers, org.Status.MemberCount)
	return errs
}

// ValidateDelete refuses to delete an organization with deletionPolicy Block while its namespaces
// hold workloads or data, and says what they are. The controller's finalizer holds the same line
// when the webhook is bypassed.
func (v *OrganizationValidator) ValidateDelete(ctx context.Context, org *tenancyv1alpha1.Organization) (admission.Warnings, error) {
	if org.Spec.DeletionPolicy == tenancyv1alpha1.DeletionPolicyCascade || !org.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	namespaces, err := inventory.OrganizationNamespaces(ctx, v.Reader, org.Name)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	names := make([]string, 0, len(namespaces))
	for _, ns := range namespaces {
		names = append(names, ns.Name)
	}
	blocking, err := inventory.Blocking(ctx, v.Reader, v.Pods, names)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if len(blocking) > 0 {
		return nil, apierrors.NewForbidden(organizationsResource, org.Name,
			fmt.Errorf("deletionPolicy is Block and the organization still holds workloads: %s; delete them first, or set spec.deletionPolicy to Cascade to delete its namespaces with it",
				strings.Join(blocking, "; ")))
	}
	return nil, nil
}
