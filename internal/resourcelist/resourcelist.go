// Package resourcelist is the arithmetic of corev1.ResourceList that quotas, usage and the quota
// ledger share: sums, the canonical form the API server stores, and comparisons.
package resourcelist

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Add adds l to into, in place.
func Add(into, l corev1.ResourceList) {
	for name, q := range l {
		s := into[name]
		s.Add(q)
		into[name] = s
	}
}

// Sum returns the canonical sum of lists; never nil.
func Sum(lists ...corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	for _, l := range lists {
		Add(out, l)
	}
	return Canonical(out)
}

// Canonical rewrites every quantity in its canonical form, so that a value computed twice
// compares equal to the one read back from the API server and no write is made for nothing.
// It never returns nil.
func Canonical(l corev1.ResourceList) corev1.ResourceList {
	out := make(corev1.ResourceList, len(l))
	for name, q := range l {
		out[name] = resource.MustParse(q.String())
	}
	return out
}

// CanonicalOrNil is Canonical, but nil for an empty list, as an omitted status field reads back.
func CanonicalOrNil(l corev1.ResourceList) corev1.ResourceList {
	if len(l) == 0 {
		return nil
	}
	return Canonical(l)
}

// Restrict returns l's quantities for the names that names holds, zero where l has none.
func Restrict(l, names corev1.ResourceList) corev1.ResourceList {
	out := make(corev1.ResourceList, len(names))
	for name := range names {
		q, ok := l[name]
		if !ok {
			q = resource.MustParse("0")
		}
		out[name] = q
	}
	return out
}

// Below says whether a is less than b in some resource that b holds.
func Below(a, b corev1.ResourceList) bool {
	for name, y := range b {
		if x := a[name]; x.Cmp(y) < 0 {
			return true
		}
	}
	return false
}

// Format writes l as the API server's quota messages do: name=quantity, sorted, comma-separated.
func Format(l corev1.ResourceList) string {
	parts := make([]string, 0, len(l))
	for name, q := range l {
		parts = append(parts, fmt.Sprintf("%s=%s", name, q.String()))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}
