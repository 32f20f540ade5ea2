package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/inventory"
	"github.com/orgoperator/org-operator/internal/podcache"
	"github.com/orgoperator/org-operator/internal/resourcelist"
	"github.com/orgoperator/org-operator/internal/usage"
)

// observeMembers counts the organization's members and admins, sets MembersReady and returns them.
func (r *OrganizationReconciler) observeMembers(ctx context.Context, org *tenancyv1alpha1.Organization) ([]tenancyv1alpha1.OrganizationMember, error) {
	members := &tenancyv1alpha1.OrganizationMemberList{}
	if org.Status.HomeNamespace != "" {
		if err := r.List(ctx, members, client.InNamespace(org.Status.HomeNamespace)); err != nil {
			return nil, fmt.Errorf("listing members: %w", err)
		}
	}
	var admins, notReady int32
	for i := range members.Items {
		m := &members.Items[i]
		if m.Spec.Admin {
			admins++
		}
		if !memberReady(m) {
			notReady++
		}
	}
	org.Status.MemberCount = int32(len(members.Items))
	org.Status.AdminCount = admins
	if notReady > 0 {
		// No counts or names in the message: they change as each member becomes Ready, and every
		// change would be another status write. The members' own status says which.
		setCondition(&org.Status.Conditions, org.Generation, tenancyv1alpha1.MembersReadyCondition, metav1.ConditionFalse,
			tenancyv1alpha1.MembersNotReadyReason,
			fmt.Sprintf("Waiting for members to become Ready; kubectl get orgmembers -n %s shows which", org.Status.HomeNamespace))
		return members.Items, nil
	}
	setCondition(&org.Status.Conditions, org.Generation, tenancyv1alpha1.MembersReadyCondition, metav1.ConditionTrue,
		tenancyv1alpha1.ReconciledReason, fmt.Sprintf("%d members, %d admins", len(members.Items), admins))
	return members.Items, nil
}

// memberReady is true when a member's Ready condition is True. A member being updated (its new
// generation not yet observed) keeps counting as Ready, so that an organization does not flip to
// not Ready and back on every change of a member: the member's own status shows the update.
func memberReady(m *tenancyv1alpha1.OrganizationMember) bool {
	return meta.IsStatusConditionTrue(m.Status.Conditions, tenancyv1alpha1.ReadyCondition)
}

// maxNamespaceUsages bounds status.usage.namespaces, as the API does.
const maxNamespaceUsages = 500

// observeUsage sums what the organization's namespaces hold, from the cache, in total and per
// namespace.
func (r *OrganizationReconciler) observeUsage(ctx context.Context, org *tenancyv1alpha1.Organization, namespaces []string) error {
	total := usage.Counts{}
	compute := usage.Compute{}
	perNamespace := make([]tenancyv1alpha1.NamespaceUsage, 0, min(len(namespaces), maxNamespaceUsages))
	for _, ns := range namespaces {
		u, err := inventory.NamespaceUsage(ctx, r.Client, r.Pods, ns)
		if err != nil {
			return err
		}
		total.Add(u.Counts)
		compute = usage.AddCompute(compute, u.Compute)
		if len(perNamespace) < maxNamespaceUsages {
			perNamespace = append(perNamespace, tenancyv1alpha1.NamespaceUsage{Name: ns, WorkloadUsage: workloadUsage(u.Counts, u.Compute)})
		}
	}
	if compute.Requests == nil {
		_, compute = podcache.Sum(nil)
	}
	org.Status.Usage = &tenancyv1alpha1.OrganizationUsage{
		NamespaceCount: int32(len(namespaces)),
		Members:        org.Status.MemberCount,
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
