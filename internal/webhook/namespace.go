package webhook

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/arbiter"
	"github.com/orgoperator/org-operator/internal/ledger"
)

var namespaceKind = corev1.SchemeGroupVersion.WithKind("Namespace").GroupKind()

// The objectSelector sends the webhook only namespaces that carry the organization label before
// or after the change (the API server matches either), so that failing closed can block no
// other namespace, and never system namespaces. The matchCondition sends it only the updates
// that change a tenancy label (tenancyLabels): the others, which it would let through, then
// neither cost a call nor fail while it is down.
//
// +kubebuilder:webhook:path=/validate--v1-namespace,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups="",resources=namespaces,verbs=create;update,versions=v1,name=vnamespace.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system,patch=`{"objectSelector":{"matchExpressions":[{"key":"tenancy.orgoperator.io/organization","operator":"Exists"},{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","default","org-operator-system"]}]},"matchConditions":[{"name":"tenancy-labels-changed","expression":"request.operation != 'UPDATE' || ['tenancy.orgoperator.io/organization', 'tenancy.orgoperator.io/home', 'tenancy.orgoperator.io/project'].exists(k, (has(object.metadata.labels) && k in object.metadata.labels ? object.metadata.labels[k] : '') != (has(oldObject.metadata.labels) && k in oldObject.metadata.labels ? oldObject.metadata.labels[k] : ''))"}]}`
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// NamespaceValidator guards the organization label: only platform admins and admins of the
// organization may add a namespace to it or take one out, tenants may not move a namespace
// between organizations, and only platform admins may touch a home namespace's labels, the
// project label, or the organization label of a namespace that carries it. Joins are
// decided on what the API server stores, through internal/arbiter, so that racing joins cannot
// take an organization past maxNamespaces.
type NamespaceValidator struct {
	Decider
}

// PlatformAuthorizer says whether a user administers the platform.
type PlatformAuthorizer interface {
	IsPlatformAdmin(ctx context.Context, user authenticationv1.UserInfo) (bool, error)
}

// ValidateCreate checks a namespace created with the organization label.
func (v *NamespaceValidator) ValidateCreate(ctx context.Context, ns *corev1.Namespace) (admission.Warnings, error) {
	return v.check(ctx, nil, ns)
}

// ValidateUpdate checks a change of the organization, home or project label.
func (v *NamespaceValidator) ValidateUpdate(ctx context.Context, old, ns *corev1.Namespace) (admission.Warnings, error) {
	return v.check(ctx, old, ns)
}

// ValidateDelete allows deletion: who may delete a namespace is RBAC's business.
func (v *NamespaceValidator) ValidateDelete(context.Context, *corev1.Namespace) (admission.Warnings, error) {
	return nil, nil
}

// tenancyLabels are the labels of a namespace that place it in the tenancy; empty when unset.
type tenancyLabels struct {
	org, home, project string
}

func tenancyLabelsOf(ns *corev1.Namespace) tenancyLabels {
	if ns == nil {
		return tenancyLabels{}
	}
	return tenancyLabels{
		org:     ns.Labels[tenancyv1alpha1.OrganizationLabel],
		home:    ns.Labels[tenancyv1alpha1.HomeNamespaceLabel],
		project: ns.Labels[tenancyv1alpha1.ProjectLabel],
	}
}

func (v *NamespaceValidator) check(ctx context.Context, old, ns *corev1.Namespace) (admission.Warnings, error) {
	before, after := tenancyLabelsOf(old), tenancyLabelsOf(ns)
	if old != nil && before == after {
		return nil, nil
	}
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	admin, err := v.Authorizer.IsPlatformAdmin(ctx, req.UserInfo)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if !admin {
		if err := v.authorize(ctx, req.UserInfo, ns, before, after); err != nil {
			return nil, err
		}
	}
	// The home namespace always belongs to its organization, whatever the quota.
	if after.org == "" || after.org == before.org || after.home == "true" {
		return nil, nil
	}
	return v.admitJoin(ctx, ns, after.org, admin, req.DryRun != nil && *req.DryRun)
}

// authorize lets an organization's admins add namespaces to it and take them out, and nothing
// else: the home namespace's labels, the project label, project namespaces joining or leaving and
// moves between organizations are for platform admins.
func (v *NamespaceValidator) authorize(ctx context.Context, user authenticationv1.UserInfo, ns *corev1.Namespace, before, after tenancyLabels) error {
	labels := field.NewPath("metadata", "labels")
	orgLabel := labels.Key(tenancyv1alpha1.OrganizationLabel)
	switch {
	case before.home != after.home || (before.home == "true" && before.org != after.org):
		return v.forbid(ns, field.Forbidden(labels.Key(tenancyv1alpha1.HomeNamespaceLabel),
			"only platform admins may change the labels of an organization's home namespace"))
	case before.project != after.project:
		return v.forbid(ns, field.Forbidden(labels.Key(tenancyv1alpha1.ProjectLabel),
			"only platform admins may set, change or remove the label that makes a namespace a project's"))
	case after.project != "" && after.org != "" && before.org != after.org:
		return v.forbid(ns, field.Forbidden(orgLabel, fmt.Sprintf(
			"namespace %s is labelled as the namespace of project %s: only platform admins may add it to an organization", ns.Name, after.project)))
	case after.project != "" && before.org != after.org:
		return v.forbid(ns, field.Forbidden(orgLabel, fmt.Sprintf(
			"namespace %s is the namespace of project %s of organization %s: delete the project rather than take its namespace out", ns.Name, after.project, before.org)))
	case before.org != "" && after.org != "":
		return v.forbid(ns, field.Forbidden(orgLabel,
			fmt.Sprintf("namespaces cannot be moved between organizations (%s to %s) by tenants; ask a platform admin", before.org, after.org)))
	}
	org := after.org
	verb := "add namespaces to"
	if org == "" {
		org, verb = before.org, "remove namespaces from"
	}
	ok, err := v.isOrganizationAdmin(ctx, org, user)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	if !ok {
		return v.forbid(ns, field.Forbidden(orgLabel,
			fmt.Sprintf("user %q is not an admin of organization %s; only its admins and platform admins may %s it", user.Username, org, verb)))
	}
	return nil
}

func (v *NamespaceValidator) forbid(ns *corev1.Namespace, err *field.Error) error {
	return invalid(namespaceKind, ns.Name, field.ErrorList{err})
}

// isOrganizationAdmin reports whether user, or one of its groups, is bound as an admin member of
// org, as the API server stores the members; an admin being demoted or removed no longer counts.
func (v *NamespaceValidator) isOrganizationAdmin(ctx context.Context, org string, user authenticationv1.UserInfo) (bool, error) {
	o := &tenancyv1alpha1.Organization{}
	if err := v.Live.Get(ctx, types.NamespacedName{Name: org}, o); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	members := &tenancyv1alpha1.OrganizationMemberList{}
	if err := v.Live.List(ctx, members, client.InNamespace(org)); err != nil {
		return false, err
	}
	ms := arbiter.NewMembership(members.Items, o.Status.Admitted, v.Clock.Now())
	return adminOf(user, members.Items, ms) != nil, nil
}

// sarAuthorizer asks the API server, through a SubjectAccessReview, whether a user may update
// organizations cluster-wide: that is what makes someone a platform admin here, and it covers
// cluster-admin and any role a platform team grants. The operator itself, which may not update
// organizations, is trusted by name: it writes what platform admins declared.
type sarAuthorizer struct {
	client client.Client
	// self is the user the operator authenticates as.
	self string
}

func (a *sarAuthorizer) IsPlatformAdmin(ctx context.Context, user authenticationv1.UserInfo) (bool, error) {
	if user.Username == a.self {
		return true, nil
	}
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

// admitJoin refuses a namespace joining an organization that has, or may have, maxNamespaces
// already, counting the namespaces its projects name that do not exist yet, whoever asks: a
// platform admin raises the quota first. It charges the pods the
// namespace already runs to the organization-wide quota ledger, so that taking a namespace out,
// filling it and labelling it back cannot launder usage: a tenant's join that does not fit is
// refused, a platform admin's is charged anyway, with a warning. It records the joins it admits.
func (v *NamespaceValidator) admitJoin(ctx context.Context, ns *corev1.Namespace, orgName string, platformAdmin, dryRun bool) (admission.Warnings, error) {
	now := v.Clock.Now()
	var warnings admission.Warnings
	err := v.Arbiter.Decide(ctx, v.Live, v.Writer, orgName, func(ctx context.Context, live client.Reader, org *tenancyv1alpha1.Organization) (bool, error) {
		warnings = nil
		if org == nil {
			return false, nil // the organization label names nothing yet; the controller reports it
		}
		q, err := v.quotas(ctx, org)
		if err != nil {
			return false, err
		}
		// Without maxNamespaces there is no count to judge, and listing the organization's
		// projects costs a consistent read that waits for the API server's cache of them.
		if q.MaxNamespaces != nil {
			known, err := namespacesOf(ctx, live, orgName)
			if err != nil {
				return false, err
			}
			have := known.besides(org, ns.Name, now)
			if msg := atLimit("maxNamespaces", orgName, q.MaxNamespaces, have); msg != "" {
				return false, v.forbid(ns, field.Forbidden(field.NewPath("metadata", "labels").Key(tenancyv1alpha1.OrganizationLabel),
					msg+"; ask a platform admin to raise it"))
			}
		}
		charged, excess, err := v.chargeJoin(ctx, live, org, ns, ledger.Enforced(q.OrganizationQuota), now)
		if err != nil {
			return false, err
		}
		if excess != nil && !platformAdmin {
			return false, v.forbid(ns, field.Forbidden(field.NewPath("metadata", "labels").Key(tenancyv1alpha1.OrganizationLabel),
				fmt.Sprintf("what namespace %s holds does not fit in what organization %s has left: %v", ns.Name, orgName, excess)))
		}
		if excess != nil {
			warnings = append(warnings, fmt.Sprintf("namespace %s takes organization %s past its quota: %v", ns.Name, orgName, excess))
		}
		if dryRun || (q.MaxNamespaces == nil && !charged) {
			return false, nil
		}
		if q.MaxNamespaces != nil {
			arbiter.RecordNamespace(org, ns.Name, now)
		}
		return true, nil
	})
	if err != nil {
		return nil, err // the round may still be writing warnings when a request gives up
	}
	return warnings, nil
}

// chargeJoin charges what a joining namespace holds (pods, claims, counted objects) to the
// organization's quota ledger (on org, which the caller writes), as the webhooks charge new
// objects; the operator settles the charges once it sees the objects in the organization. It
// reports whether it charged anything, and what the holdings would take past hard (all of them
// are charged all the same). An organization without a ledger yet has its holdings counted by
// the first charge of a webhook.
func (v *NamespaceValidator) chargeJoin(ctx context.Context, live client.Reader, org *tenancyv1alpha1.Organization, ns *corev1.Namespace, hard corev1.ResourceList,
	now time.Time) (charged bool, excess *ledger.ExceededError, err error) {
	l := org.Status.Quotas.LedgerOrNil()
	if len(hard) == 0 || l == nil {
		return false, nil, nil
	}
	holdings, err := ledger.Stored(ctx, live, []string{ns.Name}, ledger.KindsOf(hard))
	if err != nil {
		return false, nil, apierrors.NewInternalError(err)
	}
	l, excess, charged, err = ledger.Join(org.Name, l, hard, holdings, now)
	if err != nil {
		return false, nil, apierrors.NewForbidden(corev1.Resource("namespaces"), ns.Name, err)
	}
	if charged {
		if org.Status.Quotas == nil {
			org.Status.Quotas = &tenancyv1alpha1.QuotaStatus{}
		}
		org.Status.Quotas.Ledger = l
	}
	return charged, excess, nil
}

// whoAmI asks the API server which user the operator's credentials authenticate as.
func whoAmI(ctx context.Context, c client.Client) (string, error) {
	review := &authenticationv1.SelfSubjectReview{}
	if err := c.Create(ctx, review); err != nil {
		return "", fmt.Errorf("asking the API server who the operator is: %w", err)
	}
	return review.Status.UserInfo.Username, nil
}
