package webhook

import (
	"context"
	"fmt"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/arbiter"
	"github.com/orgoperator/org-operator/internal/inventory"
	"github.com/orgoperator/org-operator/internal/membership"
	"github.com/orgoperator/org-operator/internal/podcache"
	"github.com/orgoperator/org-operator/internal/validation"
)

var (
	projectKind      = tenancyv1alpha1.GroupVersion.WithKind("OrganizationProject").GroupKind()
	projectsResource = tenancyv1alpha1.GroupVersion.WithResource("organizationprojects").GroupResource()
)

// projectNamespaceField selects projects by spec.namespace on the API server (a selectable
// field of the CRD).
const projectNamespaceField = "spec.namespace"

// The API server calls the defaulting webhook only when spec.namespace is empty, the one case Default changes (its
// matchConditions).
//
// +kubebuilder:webhook:path=/mutate-tenancy-orgoperator-io-v1alpha1-organizationproject,mutating=true,failurePolicy=fail,sideEffects=None,groups=tenancy.orgoperator.io,resources=organizationprojects,verbs=create;update,versions=v1alpha1,name=morganizationproject.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system,patch=`{"matchConditions":[{"name":"namespace-missing","expression":"!has(object.spec) || type(object.spec) != map || !has(object.spec.namespace) || object.spec.namespace == ''"}]}`

// ProjectDefaulter fills in what a project leaves out.
type ProjectDefaulter struct{}

// Default names the project's namespace <home namespace>-<project> when spec.namespace is empty;
// an update that leaves it out keeps the stored one. A default that is no valid namespace name is
// left empty, for the validator to ask for a shorter one.
func (ProjectDefaulter) Default(ctx context.Context, p *tenancyv1alpha1.OrganizationProject) error {
	if p.Spec.Namespace != "" {
		return nil
	}
	if req, err := admission.RequestFromContext(ctx); err == nil && req.Operation == admissionv1.Update {
		old := &tenancyv1alpha1.OrganizationProject{}
		if err := decodeOld(req, old); err == nil && old.Spec.Namespace != "" {
			p.Spec.Namespace = old.Spec.Namespace
			return nil
		}
	}
	p.Spec.Namespace = validation.ProjectNamespace(p.Namespace, p.Name)
	return nil
}

// The webhook records the namespaces it admits on the organization (see internal/arbiter),
// except for dry runs: sideEffects=NoneOnDryRun.
//
// Its matchConditions skip the updates ValidateUpdate lets through unjudged: the spec unchanged,
// or the project being deleted.
//
// +kubebuilder:webhook:path=/validate-tenancy-orgoperator-io-v1alpha1-organizationproject,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups=tenancy.orgoperator.io,resources=organizationprojects,verbs=create;update;delete,versions=v1alpha1,name=vorganizationproject.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system,patch=`{"matchConditions":[{"name":"judged-change","expression":"request.operation != 'UPDATE' || (!has(oldObject.metadata.deletionTimestamp) && (!has(object.spec) || !has(oldObject.spec) || object.spec != oldObject.spec))"}]}`
// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizationprojects,verbs=get;list

// ProjectValidator decides who may change an organization's projects and how: only the
// organization's admins and platform admins may create, change or delete projects; nobody but a
// platform admin grants a role in a project above their own there; a project lives in the home
// namespace of an existing organization and asks for a namespace that is nobody else's, within
// maxNamespaces; with deletionPolicy Block, a project goes only once its namespace holds no
// workloads. Every rule is decided on what the API server stores, through internal/arbiter, on
// the same records as the namespace webhook, so that racing requests cannot pass a rule together.
type ProjectValidator struct {
	Decider
}

// ValidateCreate checks the project's fields, then decides the creation.
func (v *ProjectValidator) ValidateCreate(ctx context.Context, p *tenancyv1alpha1.OrganizationProject) (admission.Warnings, error) {
	if errs := validation.Project(p); len(errs) > 0 {
		return nil, invalid(projectKind, p.Name, errs)
	}
	return v.decide(ctx, nil, p)
}

// ValidateUpdate decides changes of the spec. Changes of metadata alone and changes to a project
// being deleted are not judged: validation judges what a request changes.
func (v *ProjectValidator) ValidateUpdate(ctx context.Context, old, p *tenancyv1alpha1.OrganizationProject) (admission.Warnings, error) {
	if equality.Semantic.DeepEqual(old.Spec, p.Spec) || !old.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	return v.decide(ctx, old, p)
}

// ValidateDelete decides the deletion; one request that deletes a collection is decided project
// by project.
func (v *ProjectValidator) ValidateDelete(ctx context.Context, p *tenancyv1alpha1.OrganizationProject) (admission.Warnings, error) {
	if !p.DeletionTimestamp.IsZero() {
		return nil, nil // deleted already; this only hurries it
	}
	return v.decide(ctx, p, nil)
}

// decide judges a change from old to p (nil for a creation or deletion) in one organization.
func (v *ProjectValidator) decide(ctx context.Context, old, p *tenancyv1alpha1.OrganizationProject) (admission.Warnings, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	target := p
	if target == nil {
		target = old
	}
	orgName, err := v.homeOf(ctx, target.Namespace)
	if err != nil {
		return nil, err
	}
	platformAdmin, err := v.Authorizer.IsPlatformAdmin(ctx, req.UserInfo)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	dryRun := req.DryRun != nil && *req.DryRun
	now := v.Clock.Now()
	var warnings admission.Warnings
	err = v.Arbiter.Decide(ctx, v.Live, v.Writer, orgName, func(ctx context.Context, live client.Reader, org *tenancyv1alpha1.Organization) (bool, error) {
		warnings = nil
		if orgName == "" || org == nil || !org.DeletionTimestamp.IsZero() {
			if old == nil {
				return false, invalid(projectKind, target.Name, field.ErrorList{field.Forbidden(field.NewPath("metadata", "namespace"),
					fmt.Sprintf("namespace %s is not the home namespace of an existing organization; create projects in the namespace named after their organization", target.Namespace))})
			}
			return false, nil // the organization is going away, and its projects with it
		}
		if !platformAdmin {
			if err := v.authorize(ctx, live, req.UserInfo, org, req.Operation, old, p); err != nil {
				return false, err
			}
		}
		switch {
		case p == nil:
			return false, v.admitDelete(ctx, live, org, old)
		case old != nil:
			return false, nil
		}
		known, err := namespacesOf(ctx, live, org.Name)
		if err != nil {
			return false, err
		}
		if known.hasProject(p.Name) {
			return false, nil // the API server refuses it as AlreadyExists
		}
		if warnings, err = v.admitNamespace(ctx, live, org, known, p, platformAdmin, now); err != nil || dryRun {
			return false, err
		}
		arbiter.RecordNamespace(org, p.Spec.Namespace, now)
		return true, nil
	})
	if err != nil {
		return nil, err // the round may still be writing warnings when a request gives up
	}
	return warnings, nil
}

// authorize lets an admin of the organization change its projects, granting no role in a
// project above the admin's own there, and refuses everyone else.
func (v *ProjectValidator) authorize(ctx context.Context, live client.Reader, user authenticationv1.UserInfo, org *tenancyv1alpha1.Organization, op admissionv1.Operation,
	old, p *tenancyv1alpha1.OrganizationProject) error {
	target := p
	if target == nil {
		target = old
	}
	stored := &tenancyv1alpha1.OrganizationMemberList{}
	if err := live.List(ctx, stored, client.InNamespace(org.Name)); err != nil {
		return apierrors.NewInternalError(err)
	}
	self := adminOf(user, stored.Items, arbiter.NewMembership(stored.Items, org.Status.Admitted, v.Clock.Now()))
	if self == nil {
		return notAdmin(projectsResource, target.Name, user.Username, org.Name, op, "projects")
	}
	if p == nil {
		return nil
	}
	return invalid(projectKind, p.Name, escalations(user.Username, self, old, p))
}

// escalations lists the project roles that p grants above the role the admin self (bound as
// user) has in the project: its entry in the project as stored, or else its kubernetesRole. Only
// entries that are new or raised grant anything: lowering or removing one takes access away.
// Entries may name members that do not exist yet, as a GitOps tool may apply them in any order.
func escalations(user string, self *tenancyv1alpha1.OrganizationMember, old, p *tenancyv1alpha1.OrganizationProject) field.ErrorList {
	own := self.Spec.KubernetesRole
	before := map[string]tenancyv1alpha1.KubernetesRole{}
	if old != nil {
		for _, e := range old.Spec.Members {
			before[e.Name] = e.KubernetesRole
		}
		if role, ok := before[self.Name]; ok {
			own = role
		}
	}
	var errs field.ErrorList
	for i, e := range p.Spec.Members {
		rank := membership.Rank(e.KubernetesRole)
		if was, ok := before[e.Name]; ok && rank <= membership.Rank(was) {
			continue
		}
		if rank > membership.Rank(own) {
			errs = append(errs, field.Forbidden(field.NewPath("spec", "members").Index(i).Child("kubernetesRole"),
				fmt.Sprintf("user %q has role %s in project %s and cannot grant %s, which is above it; ask a platform admin",
					user, own, p.Name, e.KubernetesRole)))
		}
	}
	return errs
}

// admitNamespace checks the namespace a new project asks for: no organization's home, no other
// project's in any organization, none admitted a moment ago by another request, one that exists only if it may become
// the project's, and one more than the organization has within maxNamespaces.
func (v *ProjectValidator) admitNamespace(ctx context.Context, live client.Reader, org *tenancyv1alpha1.Organization, known organizationNamespaces,
	p *tenancyv1alpha1.OrganizationProject, platformAdmin bool, now time.Time) (admission.Warnings, error) {
	name := p.Spec.Namespace
	refuse := func(format string, args ...any) error {
		return invalid(projectKind, p.Name, field.ErrorList{field.Forbidden(field.NewPath("spec", "namespace"), fmt.Sprintf(format, args...))})
	}
	switch err := live.Get(ctx, types.NamespacedName{Name: name}, &tenancyv1alpha1.Organization{}); {
	case err == nil:
		return nil, refuse("%s is the name of organization %s and of its home namespace; choose another name", name, name)
	case !apierrors.IsNotFound(err):
		return nil, apierrors.NewInternalError(err)
	}
	// Any organization's: spec.namespace is unique in the cluster.
	owners := &tenancyv1alpha1.OrganizationProjectList{}
	if err := live.List(ctx, owners, client.MatchingFields{projectNamespaceField: name}); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if len(owners.Items) > 0 {
		other := owners.Items[0]
		return nil, refuse("project %s of organization %s already has namespace %s; choose another name", other.Name, other.Namespace, name)
	}
	if arbiter.NamespacePending(known.names, org.Status.Admitted, name, now) {
		return nil, refuse("namespace %s was admitted into organization %s a moment ago by another request; choose another name, or retry in a minute if that request failed",
			name, org.Name)
	}
	warnings, err := v.existingNamespace(ctx, live, org.Name, p, platformAdmin)
	if err != nil {
		return nil, err
	}
	q, err := v.quotas(ctx, org)
	if err != nil {
		return nil, err
	}
	if msg := atLimit("maxNamespaces", org.Name, q.MaxNamespaces, known.besides(org, name, now)); msg != "" {
		return nil, apierrors.NewForbidden(projectsResource, p.Name, fmt.Errorf("%s; delete a project or namespace first, or ask a platform admin to raise it", msg))
	}
	return warnings, nil
}

// existingNamespace judges the namespace a new project asks for when it exists already. One that
// is labelled as this project's in this organization is the project's; one in no organization
// becomes it only when a platform admin asks, and then labels it.
func (v *ProjectValidator) existingNamespace(ctx context.Context, live client.Reader, org string, p *tenancyv1alpha1.OrganizationProject, platformAdmin bool) (admission.Warnings, error) {
	ns := &corev1.Namespace{}
	if err := live.Get(ctx, types.NamespacedName{Name: p.Spec.Namespace}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, apierrors.NewInternalError(err)
	}
	refuse := func(format string, args ...any) error {
		return invalid(projectKind, p.Name, field.ErrorList{field.Forbidden(field.NewPath("spec", "namespace"), fmt.Sprintf(format, args...))})
	}
	labels := tenancyLabelsOf(ns)
	switch {
	case labels.org != "" && labels.org != org:
		return nil, refuse("namespace %s exists and is in organization %s; choose another name", ns.Name, labels.org)
	case labels.org == org && labels.project == "":
		return nil, refuse("namespace %s is already one of organization %s's namespaces; choose another name", ns.Name, org)
	case labels.org == org && labels.project != p.Name:
		return nil, refuse("namespace %s is already one of organization %s's namespaces, project %s's; choose another name", ns.Name, org, labels.project)
	case !ns.DeletionTimestamp.IsZero():
		return nil, refuse("namespace %s is being deleted; wait until it is gone, or choose another name", ns.Name)
	case labels.org == "" && !platformAdmin:
		return nil, refuse("namespace %s exists already; adopting an existing namespace into a project is for platform admins: ask one, or choose another name", ns.Name)
	case labels.org == "":
		return admission.Warnings{fmt.Sprintf("namespace %s exists and is in no organization: label it %s=%s and %s=%s to make it the project's",
			ns.Name, tenancyv1alpha1.OrganizationLabel, org, tenancyv1alpha1.ProjectLabel, p.Name)}, nil
	}
	return nil, nil
}

// admitDelete refuses to delete a project of an organization with deletionPolicy Block while the
// project's namespace holds workloads or data, and says what they are, as the organization's own
// deletion does. A namespace not labelled as the project's is not the project's to delete.
func (v *ProjectValidator) admitDelete(ctx context.Context, live client.Reader, org *tenancyv1alpha1.Organization, p *tenancyv1alpha1.OrganizationProject) error {
	if org.Spec.DeletionPolicy == tenancyv1alpha1.DeletionPolicyCascade {
		return nil
	}
	ns := &corev1.Namespace{}
	if err := live.Get(ctx, types.NamespacedName{Name: p.Spec.Namespace}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return apierrors.NewInternalError(err)
	}
	if labels := tenancyLabelsOf(ns); labels.org != org.Name || labels.project != p.Name {
		return nil
	}
	blocking, err := inventory.Blocking(ctx, live, podcache.Stored(ctx, live), []string{ns.Name})
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	if len(blocking) > 0 {
		return apierrors.NewForbidden(projectsResource, p.Name, fmt.Errorf(
			"organization %s has deletionPolicy Block and the project's namespace still holds workloads: %s; delete them first, or ask a platform admin to set the organization's spec.deletionPolicy to Cascade",
			org.Name, strings.Join(blocking, "; ")))
	}
	return nil
}
