package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

// uniqueName returns prefix plus a random suffix, so that specs never share objects.
func uniqueName(prefix string) string { return prefix + "-" + rand.String(6) }

func newOrganization(name string, policy tenancyv1alpha1.DeletionPolicy) *tenancyv1alpha1.Organization {
	return &tenancyv1alpha1.Organization{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: tenancyv1alpha1.OrganizationSpec{
			DisplayName:    "Org " + name,
			DeletionPolicy: policy,
		},
	}
}

func newMember(org, name, email string, admin bool, role tenancyv1alpha1.KubernetesRole) *tenancyv1alpha1.OrganizationMember {
	return &tenancyv1alpha1.OrganizationMember{
		ObjectMeta: metav1.ObjectMeta{Namespace: org, Name: name},
		Spec: tenancyv1alpha1.OrganizationMemberSpec{
			Email: email, Admin: admin, KubernetesRole: role,
		},
	}
}

func labelledNamespace(name, org string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   name,
		Labels: map[string]string{tenancyv1alpha1.OrganizationLabel: org},
	}}
}

func pod(namespace, name, cpu, memory string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "registry.example/app:1",
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory)},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory)},
			},
		}}},
	}
}

// condition returns the condition of type t, or an empty one.
func condition(conds []metav1.Condition, t string) metav1.Condition {
	if c := meta.FindStatusCondition(conds, t); c != nil {
		return *c
	}
	return metav1.Condition{}
}

// getOrg reads an organization through the uncached admin client.
func getOrg(g Gomega, name string) *tenancyv1alpha1.Organization {
	org := &tenancyv1alpha1.Organization{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Name: name}, org)).To(Succeed())
	return org
}

// getOrgQuotas returns the organization's status.quotas, failing the poll (not panicking) while
// the operator has not written them yet.
func getOrgQuotas(g Gomega, name string) *tenancyv1alpha1.QuotaStatus {
	q := getOrg(g, name).Status.Quotas
	g.Expect(q).NotTo(BeNil(), "organization %s has no status.quotas yet", name)
	return q
}

func getMember(g Gomega, namespace, name string) *tenancyv1alpha1.OrganizationMember {
	m := &tenancyv1alpha1.OrganizationMember{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, m)).To(Succeed())
	return m
}

// expectReady waits until the organization is Ready for its current generation.
func expectOrgReady(ctx context.Context, name string) *tenancyv1alpha1.Organization {
	var org *tenancyv1alpha1.Organization
	Eventually(func(g Gomega) {
		org = getOrg(g, name)
		g.Expect(org.Status.ObservedGeneration).To(Equal(org.Generation))
		g.Expect(condition(org.Status.Conditions, tenancyv1alpha1.ReadyCondition).Status).To(Equal(metav1.ConditionTrue),
			"Ready: %+v", condition(org.Status.Conditions, tenancyv1alpha1.ReadyCondition))
	}).WithContext(ctx).Should(Succeed())
	return org
}

func expectMemberReady(ctx context.Context, namespace, name string) *tenancyv1alpha1.OrganizationMember {
	var m *tenancyv1alpha1.OrganizationMember
	Eventually(func(g Gomega) {
		m = getMember(g, namespace, name)
		g.Expect(m.Status.ObservedGeneration).To(Equal(m.Generation))
		g.Expect(condition(m.Status.Conditions, tenancyv1alpha1.ReadyCondition).Status).To(Equal(metav1.ConditionTrue),
			"Ready: %+v", condition(m.Status.Conditions, tenancyv1alpha1.ReadyCondition))
	}).WithContext(ctx).Should(Succeed())
	return m
}

// subjectBindings lists the RoleBindings the operator made for org that name the user subject,
// as namespace/name: clusterRole.
func subjectBindings(g Gomega, org, subject string) map[string]string {
	list := &rbacv1.RoleBindingList{}
	g.Expect(k8s.List(context.Background(), list, client.MatchingLabels{tenancyv1alpha1.OrganizationLabel: org})).To(Succeed())
	out := map[string]string{}
	for _, rb := range list.Items {
		for _, s := range rb.Subjects {
			if s.Kind == rbacv1.UserKind && s.Name == subject {
				out[rb.Namespace+"/"+rb.Name] = rb.RoleRef.Name
			}
		}
	}
	return out
}

type realClock struct{}

func (realClock) Now() time.Time                  { return time.Now() }
func (realClock) Since(t time.Time) time.Duration { return time.Since(t) }
