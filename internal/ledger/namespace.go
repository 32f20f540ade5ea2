package ledger

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/orgoperator/org-operator/internal/resourcelist"
)

// requiredPerContainer are the quota resources that, when a quota limits them, every container
// must state (the API server's ResourceQuota admission refuses the pod otherwise).
var requiredPerContainer = map[corev1.ResourceName]func(corev1.ResourceRequirements) bool{
	corev1.ResourceCPU:            func(r corev1.ResourceRequirements) bool { return has(r.Requests, corev1.ResourceCPU) },
	corev1.ResourceRequestsCPU:    func(r corev1.ResourceRequirements) bool { return has(r.Requests, corev1.ResourceCPU) },
	corev1.ResourceMemory:         func(r corev1.ResourceRequirements) bool { return has(r.Requests, corev1.ResourceMemory) },
	corev1.ResourceRequestsMemory: func(r corev1.ResourceRequirements) bool { return has(r.Requests, corev1.ResourceMemory) },
	corev1.ResourceLimitsCPU:      func(r corev1.ResourceRequirements) bool { return has(r.Limits, corev1.ResourceCPU) },
	corev1.ResourceLimitsMemory:   func(r corev1.ResourceRequirements) bool { return has(r.Limits, corev1.ResourceMemory) },
}

func has(l corev1.ResourceList, name corev1.ResourceName) bool {
	_, ok := l[name]
	return ok
}

// CheckNamespaceQuotas returns the error that the API server's ResourceQuota admission, which runs
// after the webhook, would give an object that adds usage (what it uses on creation, what a
// resize adds) in a namespace with quotas; nil if it would not refuse it, as far as the webhook
// can tell. The webhook refuses such an object itself rather than charge the organization for an
// object that will not exist. pod is the object when it is a pod, for the rule that each container
// states what a quota limits; nil otherwise.
//
// Only the quotas without scopes are judged (they apply to every object), on the resources the
// ledger knows, with the API server's own messages. A quota whose usage is not computed yet is
// left to the API server, which refuses the object.
func CheckNamespaceQuotas(quotas []corev1.ResourceQuota, pod *corev1.Pod, usage corev1.ResourceList) error {
	for i := range quotas {
		q := &quotas[i]
		if len(q.Spec.Scopes) > 0 || q.Spec.ScopeSelector != nil {
			continue
		}
		var restricted []corev1.ResourceName
		for name := range q.Status.Hard {
			if _, ok := chargeOf(name); ok {
				restricted = append(restricted, name)
			}
		}
		slices.Sort(restricted)
		if pod != nil {
			if err := containerConstraints(restricted, pod); err != nil {
				return fmt.Errorf("failed quota: %s: %w", q.Name, err)
			}
		}
		e := &ExceededError{Requested: corev1.ResourceList{}, Used: corev1.ResourceList{}, Limited: corev1.ResourceList{}}
		for _, name := range restricted {
			c, _ := chargeOf(name)
			need, ok := usage[c.key]
			used, known := q.Status.Used[name]
			if !ok || need.IsZero() || !known {
				continue
			}
			after := used.DeepCopy()
			after.Add(need)
			if after.Cmp(q.Status.Hard[name]) > 0 {
				e.Requested[name], e.Used[name], e.Limited[name] = need, used, q.Status.Hard[name]
			}
		}
		if len(e.Limited) > 0 {
			return fmt.Errorf("exceeded quota: %s, requested: %s, used: %s, limited: %s",
				q.Name, resourcelist.Format(e.Requested), resourcelist.Format(e.Used), resourcelist.Format(e.Limited))
		}
	}
	return nil
}

// containerConstraints is the API server's rule that each container states the cpu and memory
// requests and limits a quota limits, unless the pod states them at pod level.
func containerConstraints(restricted []corev1.ResourceName, pod *corev1.Pod) error {
	if resourcehelper.IsPodLevelResourcesSet(pod) {
		return nil
	}
	missing := map[corev1.ResourceName][]string{}
	for _, name := range restricted {
		stated, ok := requiredPerContainer[name]
		if !ok {
			continue
		}
		for _, containers := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
			for _, c := range containers {
				if !stated(c.Resources) {
					missing[name] = append(missing[name], c.Name)
				}
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	parts := make([]string, 0, len(missing))
	for name, containers := range missing {
		slices.Sort(containers)
		parts = append(parts, fmt.Sprintf("%s for: %s", name, strings.Join(slices.Compact(containers), ",")))
	}
	slices.Sort(parts)
	return fmt.Errorf("must specify %s", strings.Join(parts, "; "))
}
