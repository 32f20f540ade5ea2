// Package inventory reads which namespaces belong to an organization and what they hold: from the
// manager's cache, and pods from the compact pod cache. The organization controller and the
// admission webhooks share it.
package inventory

import (
	"context"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/podcache"
	"github.com/orgoperator/org-operator/internal/usage"
)

// NamespaceOrganizationIndex indexes namespaces by their organization label.
const NamespaceOrganizationIndex = "namespace.organization"

// IndexNamespaces registers NamespaceOrganizationIndex on the cache.
func IndexNamespaces(ctx context.Context, indexer client.FieldIndexer) error {
	return indexer.IndexField(ctx, &corev1.Namespace{}, NamespaceOrganizationIndex, func(o client.Object) []string {
		if org := o.GetLabels()[tenancyv1alpha1.OrganizationLabel]; org != "" {
			return []string{org}
		}
		return nil
	})
}

// OrganizationNamespaces lists the namespaces labelled into an organization, sorted by name.
func OrganizationNamespaces(ctx context.Context, r client.Reader, org string) ([]corev1.Namespace, error) {
	list := &corev1.NamespaceList{}
	if err := r.List(ctx, list, client.MatchingFields{NamespaceOrganizationIndex: org}); err != nil {
		return nil, fmt.Errorf("listing namespaces of organization %s: %w", org, err)
	}
	slices.SortFunc(list.Items, func(a, b corev1.Namespace) int { return strings.Compare(a.Name, b.Name) })
	return list.Items, nil
}

// Kinds counted by name only; the manager watches them as metadata. Claims are watched whole
// (the quota ledger charges their storage) and counted from that cache.
var (
	DeploymentsGVK  = appsv1.SchemeGroupVersion.WithKind("DeploymentList")
	StatefulSetsGVK = appsv1.SchemeGroupVersion.WithKind("StatefulSetList")
	ServicesGVK     = corev1.SchemeGroupVersion.WithKind("ServiceList")
	JobsGVK         = batchv1.SchemeGroupVersion.WithKind("JobList")
	CronJobsGVK     = batchv1.SchemeGroupVersion.WithKind("CronJobList")
)

// Usage is what one namespace holds.
type Usage struct {
	usage.Counts
	usage.Compute
}

// NamespaceUsage counts one namespace's objects and sums its pods' resources.
func NamespaceUsage(ctx context.Context, r client.Reader, pods podcache.Lister, namespace string) (Usage, error) {
	var u Usage
	list, err := pods.InNamespace(namespace)
	if err != nil {
		return u, fmt.Errorf("listing pods in %s: %w", namespace, err)
	}
	u.Pods, u.Compute = podcache.Sum(list)
	for _, c := range []struct {
		into *int32
		gvk  schema.GroupVersionKind
	}{
		{&u.Deployments, DeploymentsGVK},
		{&u.StatefulSets, StatefulSetsGVK},
		{&u.Services, ServicesGVK},
	} {
		if *c.into, err = count(ctx, r, c.gvk, namespace); err != nil {
			return u, err
		}
	}
	claims := &corev1.PersistentVolumeClaimList{}
	if err := r.List(ctx, claims, client.InNamespace(namespace)); err != nil {
		return u, fmt.Errorf("listing persistentvolumeclaims in %s: %w", namespace, err)
	}
	u.PersistentVolumeClaims = int32(len(claims.Items))
	return u, nil
}

// count counts the objects of a kind in a namespace, by their metadata.
func count(ctx context.Context, r client.Reader, gvk schema.GroupVersionKind, namespace string) (int32, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(gvk)
	if err := r.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return 0, fmt.Errorf("listing %s in %s: %w", gvk.Kind, namespace, err)
	}
	return int32(len(list.Items)), nil
}

// +kubebuilder:rbac:groups=batch,resources=jobs;cronjobs,verbs=get;list;watch

// Blocking describes, per namespace, the workloads and data that keep an organization with
// deletionPolicy Block, or a project of one: pods that are not finished, Deployments,
// StatefulSets, Jobs, CronJobs and PersistentVolumeClaims. It is empty when nothing blocks.
func Blocking(ctx context.Context, r client.Reader, pods podcache.Lister, namespaces []string) ([]string, error) {
	var out []string
	for _, ns := range namespaces {
		u, err := NamespaceUsage(ctx, r, pods, ns)
		if err != nil {
			return nil, err
		}
		jobs, err := count(ctx, r, JobsGVK, ns)
		if err != nil {
			return nil, err
		}
		cronJobs, err := count(ctx, r, CronJobsGVK, ns)
		if err != nil {
			return nil, err
		}
		var parts []string
		for _, c := range []struct {
			n    int32
			kind string
		}{
			{u.Pods, "pods"}, {u.Deployments, "deployments"}, {u.StatefulSets, "statefulsets"},
			{jobs, "jobs"}, {cronJobs, "cronjobs"}, {u.PersistentVolumeClaims, "persistentvolumeclaims"},
		} {
			if c.n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", c.n, c.kind))
			}
		}
		if len(parts) > 0 {
			out = append(out, fmt.Sprintf("namespace %s has %s", ns, strings.Join(parts, ", ")))
		}
	}
	return out, nil
}
