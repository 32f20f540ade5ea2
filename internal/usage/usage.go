// Package usage sums what an organization's namespaces hold, from objects already in the cache.
package usage

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/orgoperator/org-operator/internal/resourcelist"
)

// Resources whose requests and limits are summed.
var summed = []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory}

// Counts of namespaced objects, by kind.
type Counts struct {
	Pods, Deployments, StatefulSets, Services, PersistentVolumeClaims int32
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Pods += o.Pods
	c.Deployments += o.Deployments
	c.StatefulSets += o.StatefulSets
	c.Services += o.Services
	c.PersistentVolumeClaims += o.PersistentVolumeClaims
}

// Compute is the usage of one or more namespaces.
type Compute struct {
	// Requests and Limits sum cpu and memory of the counted pods.
	Requests, Limits corev1.ResourceList
}

// Terminal reports whether a pod no longer uses resources (Succeeded or Failed), as
// ResourceQuota decides.
func Terminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

func zero() corev1.ResourceList {
	l := make(corev1.ResourceList, len(summed))
	for _, name := range summed {
		l[name] = resource.Quantity{Format: format(name)}
	}
	return l
}

func format(name corev1.ResourceName) resource.Format {
	if name == corev1.ResourceMemory {
		return resource.BinarySI
	}
	return resource.DecimalSI
}

// selected keeps the summed resources of l.
func selected(l corev1.ResourceList) corev1.ResourceList {
	out := make(corev1.ResourceList, len(summed))
	for _, name := range summed {
		if q, ok := l[name]; ok {
			out[name] = q
		}
	}
	return out
}

// AddCompute returns the sum of a and b; either may be empty.
func AddCompute(a, b Compute) Compute {
	out := Compute{Requests: zero(), Limits: zero()}
	for _, c := range []Compute{a, b} {
		resourcelist.Add(out.Requests, selected(c.Requests))
		resourcelist.Add(out.Limits, selected(c.Limits))
	}
	return out
}
