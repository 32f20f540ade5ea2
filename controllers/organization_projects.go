package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/conditions"
	"github.com/orgoperator/org-operator/internal/inventory"
	"github.com/orgoperator/org-operator/internal/membership"
	"github.com/orgoperator/org-operator/internal/patch"
)

// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizationprojects,verbs=get;list;watch
// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizationprojects/status,verbs=patch

// projectOutcome is where a project stands after reconcileProjects.
type projectOutcome struct {
	// namespace is the project's namespace once it exists, is the project's and is not terminating.
	namespace string
	// problem says why it has none; stalled when only a person can fix it.
	problem *conditions.StalledError
	stalled bool
}

// reconcileProjects creates the namespace of each project that has none, labelled into the
// organization and the project and controlled by the organization, so that the phases after it
// keep its quotas and bindings like any of the organization's namespaces. It deletes the
// namespaces it made for projects that are gone. It never takes a namespace it did not make: a
// platform admin adopts one by labelling it.
func (r *OrganizationReconciler) reconcileProjects(ctx context.Context, s *organizationScope) error {
	s.projectOutcomes = make(map[string]projectOutcome, len(s.projects))
	byName := make(map[string]*corev1.Namespace, len(s.namespaces))
	for i := range s.namespaces {
		byName[s.namespaces[i].Name] = &s.namespaces[i]
	}
	claimed := map[string]string{}
	var toCreate []*tenancyv1alpha1.OrganizationProject
	for i := range s.projects {
		p := &s.projects[i]
		name := p.Spec.Namespace
		if name == "" {
			// The project webhook sets it; a project admitted without the webhook has none.
			s.projectOutcomes[p.Name] = stalledProject(tenancyv1alpha1.NamespaceNotSetReason, "spec.namespace is empty; set it")
			continue
		}
		if other, ok := claimed[name]; ok {
			s.projectOutcomes[p.Name] = stalledProject(tenancyv1alpha1.NameCollisionReason,
				"Namespace %s is the namespace of project %s; delete this project and create it with another spec.namespace", name, other)
			continue
		}
		claimed[name] = p.Name
		ns := byName[name]
		if ns == nil {
			outside := &corev1.Namespace{}
			err := r.Get(ctx, types.NamespacedName{Name: name}, outside)
			switch {
			case apierrors.IsNotFound(err):
				toCreate = append(toCreate, p)
				continue
			case err != nil:
				return fmt.Errorf("reading namespace %s: %w", name, err)
			}
			ns = outside
		}
		s.projectOutcomes[p.Name] = projectNamespaceOutcome(s.org, p, ns)
	}
	if err := r.createProjectNamespaces(ctx, s, toCreate); err != nil {
		return err
	}
	return r.deleteProjectNamespaces(ctx, s, claimed)
}

// projectNamespaceOutcome says whether an existing namespace is the project's.
func projectNamespaceOutcome(org *tenancyv1alpha1.Organization, p *tenancyv1alpha1.OrganizationProject, ns *corev1.Namespace) projectOutcome {
	orgLabel, projectLabel := ns.Labels[tenancyv1alpha1.OrganizationLabel], ns.Labels[tenancyv1alpha1.ProjectLabel]
	switch {
	case orgLabel == org.Name && projectLabel == p.Name && !ns.DeletionTimestamp.IsZero():
		return projectOutcome{problem: &conditions.StalledError{Reason: tenancyv1alpha1.ProgressingReason,
			Message: fmt.Sprintf("Waiting for the old namespace %s to finish terminating", ns.Name)}}
	case orgLabel == org.Name && projectLabel == p.Name:
		return projectOutcome{namespace: ns.Name}
	case orgLabel == org.Name && projectLabel != "":
		return stalledProject(tenancyv1alpha1.NameCollisionReason, "Namespace %s is the namespace of project %s", ns.Name, projectLabel)
	case orgLabel == org.Name:
		return stalledProject(tenancyv1alpha1.NameCollisionReason,
			"Namespace %s is already a namespace of organization %s; a platform admin makes it this project's by labelling it %s=%s",
			ns.Name, org.Name, tenancyv1alpha1.ProjectLabel, p.Name)
	case orgLabel != "":
		return stalledProject(tenancyv1alpha1.NameCollisionReason, "Namespace %s belongs to organization %s", ns.Name, orgLabel)
	default:
		return stalledProject(tenancyv1alpha1.NamespaceNotAdoptedReason,
			"Namespace %s exists outside the organization; a platform admin adopts it by labelling it %s=%s and %s=%s",
			ns.Name, tenancyv1alpha1.OrganizationLabel, org.Name, tenancyv1alpha1.ProjectLabel, p.Name)
	}
}

func stalledProject(reason, format string, args ...any) projectOutcome {
	return projectOutcome{problem: &conditions.StalledError{Reason: reason, Message: fmt.Sprintf(format, args...)}, stalled: true}
}

// createProjectNamespaces creates the namespaces of projects that have none, in parallel.
func (r *OrganizationReconciler) createProjectNamespaces(ctx context.Context, s *organizationScope, projects []*tenancyv1alpha1.OrganizationProject) error {
	created := make([]*corev1.Namespace, len(projects))
	outcomes := make([]projectOutcome, len(projects))
	writes := make([]func() error, len(projects))
	for i, p := range projects {
		writes[i] = func() error {
			ns, outcome, err := r.createProjectNamespace(ctx, s.org, p)
			created[i], outcomes[i] = ns, outcome
			return err
		}
	}
	err := runParallel(writes, maxParallelWrites)
	for i, p := range projects {
		if created[i] != nil {
			s.namespaces = withNamespace(s.namespaces, *created[i])
			r.Recorder.Eventf(p, created[i], corev1.EventTypeNormal, tenancyv1alpha1.NamespaceCreatedReason, "Create",
				"Created namespace %s", created[i].Name)
		}
		if outcomes[i] != (projectOutcome{}) {
			s.projectOutcomes[p.Name] = outcomes[i]
		}
	}
	return err
}

// createProjectNamespace creates p's namespace. A namespace of that name the cache has not seen
// yet is read from the API server and judged like any other.
func (r *OrganizationReconciler) createProjectNamespace(ctx context.Context, org *tenancyv1alpha1.Organization,
	p *tenancyv1alpha1.OrganizationProject) (*corev1.Namespace, projectOutcome, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: p.Spec.Namespace, Labels: map[string]string{
		tenancyv1alpha1.OrganizationLabel: org.Name,
		tenancyv1alpha1.ProjectLabel:      p.Name,
		tenancyv1alpha1.ManagedByLabel:    tenancyv1alpha1.ManagedByValue,
	}}}
	// Namespaces are cluster-scoped and cannot be owned by a project: the organization owns it,
	// so that it goes with the organization, and the project label says whose it is.
	_ = controllerutil.SetControllerReference(org, ns, scheme())
	err := r.Create(ctx, ns)
	if apierrors.IsAlreadyExists(err) {
		have := &corev1.Namespace{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(ns), have); err != nil {
			return nil, projectOutcome{}, fmt.Errorf("reading namespace %s: %w", ns.Name, err)
		}
		return nil, projectNamespaceOutcome(org, p, have), nil
	}
	if err != nil {
		return nil, projectOutcome{}, fmt.Errorf("creating namespace %s of project %s: %w", ns.Name, p.Name, err)
	}
	ctrl.LoggerFrom(ctx).Info("Created project namespace", "namespace", klog.KObj(ns), "project", klog.KObj(p))
	return ns, projectOutcome{namespace: ns.Name}, nil
}

// deleteProjectNamespaces deletes the namespaces the operator made for projects that are gone
// (claimed maps the namespaces of the projects there are to them). With deletionPolicy Block, a
// namespace that still holds workloads (put there after the project's deletion was admitted)
// is kept, and reported, until they are gone.
func (r *OrganizationReconciler) deleteProjectNamespaces(ctx context.Context, s *organizationScope, claimed map[string]string) error {
	for i := range s.namespaces {
		ns := &s.namespaces[i]
		project := ns.Labels[tenancyv1alpha1.ProjectLabel]
		if project == "" || claimed[ns.Name] == project || !ns.DeletionTimestamp.IsZero() || !metav1.IsControlledBy(ns, s.org) {
			continue
		}
		if s.org.Spec.DeletionPolicy != tenancyv1alpha1.DeletionPolicyCascade {
			blocking, err := inventory.Blocking(ctx, r.Client, r.Pods, []string{ns.Name})
			if err != nil {
				return err
			}
			if len(blocking) > 0 {
				r.Recorder.Eventf(s.org, ns, corev1.EventTypeWarning, tenancyv1alpha1.DeletionBlockedReason, "Delete",
					"Kept the namespace of deleted project %s by deletionPolicy Block: %s", project, blocking[0])
				continue
			}
		}
		if err := r.deleteNamespace(ctx, s.org, ns); err != nil {
			return err
		}
		// Terminating from now on: the phases after this one leave it alone.
		ns.DeletionTimestamp = &metav1.Time{Time: s.now}
	}
	return nil
}

// projectRoles are the roles a project gives members by name.
func projectRoles(p *tenancyv1alpha1.OrganizationProject) map[string]tenancyv1alpha1.KubernetesRole {
	if len(p.Spec.Members) == 0 {
		return nil
	}
	roles := make(map[string]tenancyv1alpha1.KubernetesRole, len(p.Spec.Members))
	for _, m := range p.Spec.Members {
		roles[m.Name] = m.KubernetesRole
	}
	return roles
}

// projectAccess is one project's own access: the roles it gives and the bindings they make in
// its namespace.
type projectAccess struct {
	project   *tenancyv1alpha1.OrganizationProject
	namespace string
	roles     map[string]tenancyv1alpha1.KubernetesRole
	access    membership.Access
}

// projectsOf returns, for each member, the projects where it holds a role other than its
// kubernetesRole and what is bound there, sorted by project.
func projectsOf(m *tenancyv1alpha1.OrganizationMember, projects []projectAccess) []tenancyv1alpha1.ProjectAccess {
	var out []tenancyv1alpha1.ProjectAccess
	for _, pa := range projects {
		role := membership.RoleIn(m, pa.roles)
		if membership.Rank(role) == membership.Rank(m.Spec.KubernetesRole) {
			continue
		}
		out = append(out, tenancyv1alpha1.ProjectAccess{Project: pa.project.Name, Namespace: pa.namespace,
			KubernetesRole: role, RoleBinding: pa.access.BindingOf(m, role)})
	}
	slices.SortFunc(out, func(a, b tenancyv1alpha1.ProjectAccess) int { return strings.Compare(a.Project, b.Project) })
	return out
}

// reportProjects writes the status of each project whose namespace, usage or conditions changed.
func (r *OrganizationReconciler) reportProjects(ctx context.Context, s *organizationScope) error {
	var writes []func() error
	for i := range s.projects {
		p := &s.projects[i]
		before := p.DeepCopy()
		var held conditions.Announcements
		setProjectStatus(p, s.org.Name, s.projectOutcomes[p.Name], s.namespaceUsage, r.Recorder, &held)
		if equality.Semantic.DeepEqual(before.Status, p.Status) {
			continue
		}
		writes = append(writes, func() error {
			err := patch.StatusIfChanged(ctx, r.Client, before, p, before.Status, p.Status)
			if err == nil {
				held.Emit()
			}
			if apierrors.IsConflict(err) {
				s.memberConflict.Store(true) // written from a stale copy: the reconcile comes back soon
				return nil
			}
			return client.IgnoreNotFound(err)
		})
	}
	return runParallel(writes, maxParallelWrites)
}
