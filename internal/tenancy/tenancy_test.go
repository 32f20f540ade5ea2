package tenancy_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/tenancy"
)

func organization(name string, uid types.UID) *tenancyv1alpha1.Organization {
	return &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: name, UID: uid}}
}

func namespace(name, org string, owner *tenancyv1alpha1.Organization) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	if org != "" {
		ns.Labels[tenancyv1alpha1.OrganizationLabel] = org
	}
	if owner != nil {
		ns.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(owner, tenancyv1alpha1.GroupVersion.WithKind("Organization"))}
	}
	return ns
}

func TestHome(t *testing.T) {
	acme := organization("acme", "uid-1")
	earlier := organization("acme", "uid-0")
	other := organization("other", "uid-2")
	for _, c := range []struct {
		name       string
		ns         *corev1.Namespace
		homeOf     string
		placeHome  bool
		isHomeAcme bool
	}{
		{"the home namespace", namespace("acme", "acme", acme), "acme", true, true},
		{"an earlier organization's home, still terminating", namespace("acme", "acme", earlier), "acme", true, false},
		{"labelled as home but owned by no organization", namespace("acme", "acme", nil), "", false, false},
		{"owned by an organization of another name", namespace("acme", "acme", other), "", false, false},
		{"a namespace that joined by label", namespace("acme-dev", "acme", nil), "", false, false},
		{"the home namespace without its organization label", namespace("acme", "", acme), "acme", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := tenancy.HomeOf(c.ns); got != c.homeOf {
				t.Errorf("HomeOf = %q, want %q", got, c.homeOf)
			}
			if got := tenancy.PlaceOf(c.ns).Home; got != c.placeHome {
				t.Errorf("PlaceOf().Home = %v, want %v", got, c.placeHome)
			}
			if got := tenancy.IsHome(c.ns, acme); got != c.isHomeAcme {
				t.Errorf("IsHome(acme) = %v, want %v", got, c.isHomeAcme)
			}
		})
	}
}

func TestEffectiveQuotasWithAMissingPlan(t *testing.T) {
	one, five := int32(1), int32(5)
	pods := func(n string) corev1.ResourceList {
		return corev1.ResourceList{corev1.ResourcePods: resource.MustParse(n)}
	}
	org := organization("acme", "uid-1")
	org.Spec.Quotas = &tenancyv1alpha1.Quotas{MaxNamespaces: &five}
	plan := &tenancyv1alpha1.OrganizationPlan{Spec: tenancyv1alpha1.OrganizationPlanSpec{Quotas: tenancyv1alpha1.Quotas{
		MaxMembers: &one, OrganizationQuota: pods("10"),
	}}}

	got := tenancy.EffectiveQuotas(org, plan, false)
	if *got.MaxMembers != 1 || *got.MaxNamespaces != 5 || got.OrganizationQuota.Pods().Value() != 10 {
		t.Fatalf("plan found: got %+v, want the plan's quotas overridden by the organization's", got)
	}

	// Never applied: spec.quotas alone.
	got = tenancy.EffectiveQuotas(org, nil, true)
	if got.MaxMembers != nil || *got.MaxNamespaces != 5 || got.OrganizationQuota != nil {
		t.Fatalf("plan missing, nothing applied: got %+v, want spec.quotas alone", got)
	}

	// Applied once: what was applied holds, and spec.quotas does not loosen it.
	org.Status.Quotas = &tenancyv1alpha1.QuotaStatus{MaxMembers: &one, MaxNamespaces: &five, Hard: pods("10"), NamespaceQuota: pods("4")}
	got = tenancy.EffectiveQuotas(org, nil, true)
	if *got.MaxMembers != 1 || *got.MaxNamespaces != 5 || got.OrganizationQuota.Pods().Value() != 10 || got.NamespaceQuota.Pods().Value() != 4 {
		t.Fatalf("plan missing after quotas were applied: got %+v, want status.quotas", got)
	}
	got.OrganizationQuota[corev1.ResourcePods] = resource.MustParse("99")
	if org.Status.Quotas.Hard.Pods().Value() != 10 {
		t.Fatal("EffectiveQuotas shares its lists with the organization's status")
	}
}
