// Package quota merges plan and organization quotas, reports what is exceeded, and splits an
// organization-wide quota among its namespaces.
package quota

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

// Effective returns the plan's quotas overridden by the organization's: each count the
// organization sets wins, and each resource it lists replaces the plan's value for that resource.
func Effective(plan, override *tenancyv1alpha1.Quotas) tenancyv1alpha1.Quotas {
	var out tenancyv1alpha1.Quotas
	if plan != nil {
		out = *plan.DeepCopy()
	}
	if override == nil {
		return out
	}
	o := override.DeepCopy()
	if o.MaxNamespaces != nil {
		out.MaxNamespaces = o.MaxNamespaces
	}
	if o.MaxMembers != nil {
		out.MaxMembers = o.MaxMembers
	}
	if o.MaxAdmins != nil {
		out.MaxAdmins = o.MaxAdmins
	}
	out.NamespaceQuota = mergeLists(out.NamespaceQuota, o.NamespaceQuota)
	out.OrganizationQuota = mergeLists(out.OrganizationQuota, o.OrganizationQuota)
	if o.LimitRange != nil {
		if out.LimitRange == nil {
			out.LimitRange = &tenancyv1alpha1.LimitRangeDefaults{}
		}
		out.LimitRange.DefaultRequest = mergeLists(out.LimitRange.DefaultRequest, o.LimitRange.DefaultRequest)
		out.LimitRange.Default = mergeLists(out.LimitRange.Default, o.LimitRange.Default)
	}
	return out
}

func mergeLists(base, override corev1.ResourceList) corev1.ResourceList {
	if len(override) == 0 {
		return base
	}
	out := make(corev1.ResourceList, len(base)+len(override))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range override {
		out[k] = v
	}
	return out
}

// Counts are the organization's objects that count quotas limit.
type Counts struct {
	Namespaces, Members, Admins int32
}

// Exceeded lists, sorted by name, every quota the organization is over.
func Exceeded(q tenancyv1alpha1.Quotas, counts Counts, used corev1.ResourceList) []tenancyv1alpha1.QuotaExcess {
	var out []tenancyv1alpha1.QuotaExcess
	for _, c := range []struct {
		name  string
		limit *int32
		n     int32
	}{{"maxAdmins", q.MaxAdmins, counts.Admins}, {"maxMembers", q.MaxMembers, counts.Members}, {"maxNamespaces", q.MaxNamespaces, counts.Namespaces}} {
		if c.limit != nil && c.n > *c.limit {
			out = append(out, tenancyv1alpha1.QuotaExcess{Name: c.name, Hard: fmt.Sprint(*c.limit), Used: fmt.Sprint(c.n)})
		}
	}
	for name, hard := range q.OrganizationQuota {
		if u, ok := used[name]; ok && u.Cmp(hard) > 0 {
			out = append(out, tenancyv1alpha1.QuotaExcess{Name: string(name), Hard: hard.String(), Used: u.String()})
		}
	}
	slices.SortFunc(out, func(a, b tenancyv1alpha1.QuotaExcess) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}
