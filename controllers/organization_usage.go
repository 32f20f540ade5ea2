package controllers

import (
	"context"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/inventory"
	"github.com/orgoperator/org-operator/internal/podcache"
	"github.com/orgoperator/org-operator/internal/resourcelist"
	"github.com/orgoperator/org-operator/internal/usage"
)

// maxNamespaceUsages bounds status.usage.namespaces, as the API does.
const maxNamespaceUsages = 500

// observeUsage sums what the organization's namespaces hold, from the cache, in total and per
// namespace.
func (r *OrganizationReconciler) observeUsage(ctx context.Context, s *organizationScope) error {
	namespaces := s.namespaceNames()
	total := usage.Counts{}
	compute := usage.Compute{}
	perNamespace := make([]tenancyv1alpha1.NamespaceUsage, 0, min(len(namespaces), maxNamespaceUsages))
	s.namespaceUsage = make(map[string]tenancyv1alpha1.WorkloadUsage, len(namespaces))
	for _, ns := range namespaces {
		u, err := inventory.NamespaceUsage(ctx, r.Client, r.Pods, ns)
		if err != nil {
			return err
		}
		total.Add(u.Counts)
		compute = usage.AddCompute(compute, u.Compute)
		s.namespaceUsage[ns] = workloadUsage(u.Counts, u.Compute)
		if len(perNamespace) < maxNamespaceUsages {
			perNamespace = append(perNamespace, tenancyv1alpha1.NamespaceUsage{Name: ns, WorkloadUsage: s.namespaceUsage[ns]})
		}
	}
	if compute.Requests == nil {
		_, compute = podcache.Sum(nil)
	}
	s.usage = &tenancyv1alpha1.OrganizationUsage{
		NamespaceCount: int32(len(namespaces)),
		Members:        int32(len(s.members)),
		Namespaces:     perNamespace,
		WorkloadUsage:  workloadUsage(total, compute),
	}
	return nil
}

func workloadUsage(c usage.Counts, compute usage.Compute) tenancyv1alpha1.WorkloadUsage {
	return tenancyv1alpha1.WorkloadUsage{
		Pods:                   c.Pods,
		Deployments:            c.Deployments,
		StatefulSets:           c.StatefulSets,
		Services:               c.Services,
		PersistentVolumeClaims: c.PersistentVolumeClaims,
		Requests:               resourcelist.Canonical(compute.Requests),
		Limits:                 resourcelist.Canonical(compute.Limits),
	}
}
