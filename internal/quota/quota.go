// Package quota merges plan and organization quotas, reports what is exceeded, and splits an
// organization-wide quota among its namespaces.
package quota

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

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

// NamespaceShare is the hard limit of one namespace's share of an organization-wide quota: what
// the namespace uses plus what is left of the organization's quota. Each namespace may then grow
// by the organization's headroom and no more, so the API server's own quota admission rejects,
// with its usual message, a request that would take the organization past its limit. (Requests
// racing in several namespaces can each take the same headroom: the operator narrows the shares
// again as soon as usage changes.) Where the organization is already over, the share is what the
// namespace uses: nothing new fits.
func NamespaceShare(orgHard, orgUsed, nsUsed corev1.ResourceList) corev1.ResourceList {
	out := make(corev1.ResourceList, len(orgHard))
	for name, hard := range orgHard {
		left := hard.DeepCopy()
		left.Sub(orgUsed[name])
		if left.Sign() < 0 {
			left = resource.Quantity{}
		}
		share := nsUsed[name].DeepCopy()
		share.Add(left)
		out[name] = resource.MustParse(share.String())
	}
	return out
}

// Sum adds resource lists.
func Sum(lists ...corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	for _, l := range lists {
		for name, q := range l {
			s := out[name]
			s.Add(q)
			out[name] = s
		}
	}
	for name, q := range out {
		out[name] = resource.MustParse(q.String())
	}
	return out
}
