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
	"github.com/orgoperator/org-operator/internal/validation"
)

var (
	organizationKind      = tenancyv1alpha1.GroupVersion.WithKind("Organization").GroupKind()
	organizationsResource = tenancyv1alpha1.GroupVersion.WithResource("organizations").GroupResource()
)

// +kubebuilder:webhook:path=/mutate-tenancy-orgoperator-io-v1alpha1-organization,mutating=true,failurePolicy=fail,sideEffects=None,groups=tenancy.orgoperator.io,resources=organizations,verbs=create;update,versions=v1alpha1,name=morganization.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system

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

// +kubebuilder:webhook:path=/validate-tenancy-orgoperator-io-v1alpha1-organization,mutating=false,failurePolicy=fail,sideEffects=None,groups=tenancy.orgoperator.io,resources=organizations,verbs=create;update;delete,versions=v1alpha1,name=vorganization.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// OrganizationValidator checks what the CRD schema cannot: the home namespace's name is free,
// and deletionPolicy Block holds while workloads remain.
type OrganizationValidator struct {
	Reader client.Reader
}

// ValidateCreate rejects a name that is invalid, reserved, or taken by a namespace that is not
// this organization's home.
func (v *OrganizationValidator) ValidateCreate(ctx context.Context, org *tenancyv1alpha1.Organization) (admission.Warnings, error) {
	errs := validation.OrganizationName(org.Name)
	errs = append(errs, validation.Subscription(org.Spec.Subscription)...)
	if len(errs) == 0 {
		ns := &corev1.Namespace{}
		err := v.Reader.Get(ctx, types.NamespacedName{Name: org.Name}, ns)
		switch {
		case err == nil && !homeOf(ns, org.Name):
			errs = append(errs, field.Forbidden(field.NewPath("metadata", "name"),
				fmt.Sprintf("namespace %s already exists and is not an organization's home; the organization's home namespace takes its name, so choose another name", org.Name)))
		case err != nil && !apierrors.IsNotFound(err):
			return nil, apierrors.NewInternalError(err)
		}
	}
	return nil, invalid(organizationKind, org.Name, errs)
}

// homeOf reports whether ns was created as the home namespace of an organization called name
// (possibly a deleted one of the same name, whose namespace is still terminating).
func homeOf(ns *corev1.Namespace, name string) bool {
	for _, ref := range ns.OwnerReferences {
		if ref.Kind == organizationKind.Kind && ref.Name == name && strings.HasPrefix(ref.APIVersion, organizationKind.Group+"/") {
			return true
		}
	}
	return false
}

// ValidateUpdate checks the subscription dates.
func (v *OrganizationValidator) ValidateUpdate(_ context.Context, _, org *tenancyv1alpha1.Organization) (admission.Warnings, error) {
	return nil, invalid(organizationKind, org.Name, validation.Subscription(org.Spec.Subscription))
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
	blocking, err := inventory.Blocking(ctx, v.Reader, names)
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
