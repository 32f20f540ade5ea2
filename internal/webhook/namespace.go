package webhook

import (
	"context"
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/inventory"
	"github.com/orgoperator/org-operator/internal/membership"
)

var namespaceKind = corev1.SchemeGroupVersion.WithKind("Namespace").GroupKind()

// The objectSelector sends the webhook only namespaces that carry the organization label before
// or after the change (the API server matches either), so that failing closed can block no
// other namespace, and never system namespaces.
//
// +kubebuilder:webhook:path=/validate--v1-namespace,mutating=false,failurePolicy=fail,sideEffects=None,groups="",resources=namespaces,verbs=create;update,versions=v1,name=vnamespace.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system,patch=`{"objectSelector":{"matchExpressions":[{"key":"tenancy.orgoperator.io/organization","operator":"Exists"},{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","default","org-operator-system"]}]}}`
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// NamespaceValidator guards the organization label: only platform admins and admins of the
// organization may add a namespace to it or take one out, tenants may not move a namespace
// between organizations, and only platform admins may touch a home namespace's labels.
type NamespaceValidator struct {
	Reader     client.Reader
	Authorizer PlatformAuthorizer
}

// PlatformAuthorizer says whether a user administers the platform.
type PlatformAuthorizer interface {
	IsPlatformAdmin(ctx context.Context, user authenticationv1.UserInfo) (bool, error)
}

// ValidateCreate checks a namespace created with the organization label.
func (v *NamespaceValidator) ValidateCreate(ctx context.Context, ns *corev1.Namespace) (admission.Warnings, error) {
	return nil, v.check(ctx, nil, ns)
}

// ValidateUpdate checks a change of the organization or home label.
func (v *NamespaceValidator) ValidateUpdate(ctx context.Context, old, ns *corev1.Namespace) (admission.Warnings, error) {
	return nil, v.check(ctx, old, ns)
}

// ValidateDelete allows deletion: who may delete a namespace is RBAC's business.
func (v *NamespaceValidator) ValidateDelete(context.Context, *corev1.Namespace) (admission.Warnings, error) {
	return nil, nil
}

func (v *NamespaceValidator) check(ctx context.Context, old, ns *corev1.Namespace) error {
	var oldOrg, oldHome string
	if old != nil {
		oldOrg, oldHome = old.Labels[tenancyv1alpha1.OrganizationLabel], old.Labels[tenancyv1alpha1.HomeNamespaceLabel]
	}
	newOrg, newHome := ns.Labels[tenancyv1alpha1.OrganizationLabel], ns.Labels[tenancyv1alpha1.HomeNamespaceLabel]
	if old != nil && oldOrg == newOrg && oldHome == newHome {
		return nil
	}
	// The home namespace always belongs to its organization, whatever the quota.
	if newOrg != "" && newOrg != oldOrg && newHome != "true" {
		if err := v.withinNamespaceQuota(ctx, ns, newOrg); err != nil {
			return err
		}
	}
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	admin, err := v.Authorizer.IsPlatformAdmin(ctx, req.UserInfo)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	if admin {
		return nil
	}
	labels := field.NewPath("metadata", "labels")
	orgLabel := labels.Key(tenancyv1alpha1.OrganizationLabel)
	user := req.UserInfo.Username
	switch {
	case oldHome != newHome || (oldHome == "true" && oldOrg != newOrg):
		return v.forbid(ns, field.Forbidden(labels.Key(tenancyv1alpha1.HomeNamespaceLabel),
			"only platform admins may change the labels of an organization's home namespace"))
	case oldOrg != "" && newOrg != "":
		return v.forbid(ns, field.Forbidden(orgLabel,
			fmt.Sprintf("namespaces cannot be moved between organizations (%s to %s) by tenants; ask a platform admin", oldOrg, newOrg)))
	}
	org := newOrg
	verb := "add namespaces to"
	if org == "" {
		org, verb = oldOrg, "remove namespaces from"
	}
	ok, err := v.isOrganizationAdmin(ctx, org, user)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	if !ok {
		return v.forbid(ns, field.Forbidden(orgLabel,
			fmt.Sprintf("user %q is not an admin of organization %s; only its admins and platform admins may %s it", user, org, verb)))
	}
	return nil
}

func (v *NamespaceValidator) forbid(ns *corev1.Namespace, err *field.Error) error {
	return invalid(namespaceKind, ns.Name, field.ErrorList{err})
}

// isOrganizationAdmin reports whether user is bound as an admin member of org.
func (v *NamespaceValidator) isOrganizationAdmin(ctx context.Context, org, user string) (bool, error) {
	members := &tenancyv1alpha1.OrganizationMemberList{}
	if err := v.Reader.List(ctx, members, client.InNamespace(org)); err != nil {
		return false, err
	}
	for i := range members.Items {
		m := &members.Items[i]
		if m.Spec.Admin && m.DeletionTimestamp.IsZero() && membership.Subject(m).Name == user {
			return true, nil
		}
	}
	return false, nil
}

// sarAuthorizer asks the API server, through a SubjectAccessReview, whether a user may update
// organizations cluster-wide: that is what makes someone a platform admin here, and it covers
// cluster-admin, the operator itself and any role a platform team grants.
type sarAuthorizer struct {
	client client.Client
}

func (a *sarAuthorizer) IsPlatformAdmin(ctx context.Context, user authenticationv1.UserInfo) (bool, error) {
	extra := make(map[string]authorizationv1.ExtraValue, len(user.Extra))
	for k, v := range user.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user.Username, Groups: user.Groups, UID: user.UID, Extra: extra,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Group: tenancyv1alpha1.GroupVersion.Group, Resource: "organizations", Verb: "update",
		},
	}}
	if err := a.client.Create(ctx, sar); err != nil {
		return false, fmt.Errorf("asking whether %s is a platform admin: %w", user.Username, err)
	}
	return sar.Status.Allowed, nil
}

// withinNamespaceQuota refuses a namespace joining an organization that has maxNamespaces already,
// whoever asks: a platform admin raises the quota first.
func (v *NamespaceValidator) withinNamespaceQuota(ctx context.Context, ns *corev1.Namespace, orgName string) error {
	org := &tenancyv1alpha1.Organization{}
	if err := v.Reader.Get(ctx, types.NamespacedName{Name: orgName}, org); err != nil {
		if apierrors.IsNotFound(err) {
			return nil // the organization label names nothing yet; the controller reports it
		}
		return apierrors.NewInternalError(err)
	}
	q, err := effectiveQuotas(ctx, v.Reader, org)
	if err != nil {
		return err
	}
	namespaces, err := inventory.OrganizationNamespaces(ctx, v.Reader, orgName)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	have := 0
	for _, n := range namespaces {
		if n.Name != ns.Name {
			have++
		}
	}
	if msg := atLimit("maxNamespaces", orgName, q.MaxNamespaces, have); msg != "" {
		return v.forbid(ns, field.Forbidden(field.NewPath("metadata", "labels").Key(tenancyv1alpha1.OrganizationLabel),
			msg+"; ask a platform admin to raise it"))
	}
	return nil
}
