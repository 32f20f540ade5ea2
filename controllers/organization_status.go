package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/usage"
)

// observeMembers counts the organization's members and admins and sets MembersReady.
func (r *OrganizationReconciler) observeMembers(ctx context.Context, org *tenancyv1alpha1.Organization) error {
	members := &tenancyv1alpha1.OrganizationMemberList{}
	if org.Status.HomeNamespace != "" {
		if err := r.List(ctx, members, client.InNamespace(org.Status.HomeNamespace)); err != nil {
			return fmt.Errorf("listing members: %w", err)
		}
	}
	var admins, notReady int32
	firstNotReady := ""
	for i := range members.Items {
		m := &members.Items[i]
		if m.Spec.Admin {
			admins++
		}
		if !memberReady(m) {
			notReady++
			if firstNotReady == "" {
				firstNotReady = m.Name
			}
		}
	}
	org.Status.MemberCount = int32(len(members.Items))
	org.Status.AdminCount = admins
	if notReady > 0 {
		setCondition(&org.Status.Conditions, org.Generation, tenancyv1alpha1.MembersReadyCondition, metav1.ConditionFalse,
			tenancyv1alpha1.MembersNotReadyReason, fmt.Sprintf("%d of %d members are not Ready, e.g. %s", notReady, len(members.Items), firstNotReady))
		return nil
	}
	setCondition(&org.Status.Conditions, org.Generation, tenancyv1alpha1.MembersReadyCondition, metav1.ConditionTrue,
		tenancyv1alpha1.ReconciledReason, fmt.Sprintf("%d members, %d admins", len(members.Items), admins))
	return nil
}

// memberReady is true when a member's Ready condition is True for its current generation.
func memberReady(m *tenancyv1alpha1.OrganizationMember) bool {
	c := meta.FindStatusCondition(m.Status.Conditions, tenancyv1alpha1.ReadyCondition)
	return c != nil && c.Status == metav1.ConditionTrue && m.Status.ObservedGeneration == m.Generation
}

// observeUsage sums what the organization's namespaces hold, from the cache.
func (r *OrganizationReconciler) observeUsage(ctx context.Context, org *tenancyv1alpha1.Organization, namespaces []string) error {
	total := usage.Counts{}
	compute := usage.Compute{}
	for _, ns := range namespaces {
		u, err := r.namespaceUsage(ctx, ns)
		if err != nil {
			return err
		}
		total.Add(u.Counts)
		compute = usage.AddCompute(compute, u.Compute)
	}
	if compute.Requests == nil {
		_, compute = usage.SumPods(nil)
	}
	org.Status.Usage = &tenancyv1alpha1.OrganizationUsage{
		Namespaces:             int32(len(namespaces)),
		Members:                org.Status.MemberCount,
		Pods:                   total.Pods,
		Deployments:            total.Deployments,
		StatefulSets:           total.StatefulSets,
		Services:               total.Services,
		PersistentVolumeClaims: total.PersistentVolumeClaims,
		Requests:               usage.Canonical(compute.Requests),
		Limits:                 usage.Canonical(compute.Limits),
	}
	return nil
}

type namespaceUsage struct {
	usage.Counts
	usage.Compute
}

// namespaceUsage counts one namespace's objects from the cache.
func (r *OrganizationReconciler) namespaceUsage(ctx context.Context, namespace string) (namespaceUsage, error) {
	var u namespaceUsage
	pods := &corev1.PodList{}
	if err := r.List(ctx, pods, client.InNamespace(namespace)); err != nil {
		return u, fmt.Errorf("listing pods in %s: %w", namespace, err)
	}
	u.Pods, u.Compute = usage.SumPods(pods.Items)
	counts := []struct {
		into *int32
		list *metav1.PartialObjectMetadataList
	}{
		{&u.Deployments, metadataList(deploymentsGVK)},
		{&u.StatefulSets, metadataList(statefulSetsGVK)},
		{&u.Services, metadataList(servicesGVK)},
		{&u.PersistentVolumeClaims, metadataList(pvcsGVK)},
	}
	for _, c := range counts {
		if err := r.List(ctx, c.list, client.InNamespace(namespace)); err != nil {
			return u, fmt.Errorf("listing %s in %s: %w", c.list.Kind, namespace, err)
		}
		*c.into = int32(len(c.list.Items))
	}
	return u, nil
}

func metadataList(gvk schema.GroupVersionKind) *metav1.PartialObjectMetadataList {
	l := &metav1.PartialObjectMetadataList{}
	l.SetGroupVersionKind(gvk)
	return l
}
