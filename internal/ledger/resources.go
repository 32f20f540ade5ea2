package ledger

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/podcache"
	"github.com/orgoperator/org-operator/internal/resourcelist"
)

// Kind is a kind of object the ledger charges, named as a reservation names it: its resource,
// with its group when it has one (pods, persistentvolumeclaims, deployments.apps, ...).
type Kind string

// The kinds charged. Object counts are kept to the kinds the operator already watches, so that
// enforcing them needs no read access beyond what usage reporting has (not Secrets or ConfigMaps).
const (
	Pods         Kind = "pods"
	Claims       Kind = "persistentvolumeclaims"
	Deployments  Kind = "deployments.apps"
	StatefulSets Kind = "statefulsets.apps"
	Services     Kind = "services"
)

// GroupResource is the kind's resource, for API errors.
func (k Kind) GroupResource() schema.GroupResource {
	return schema.ParseGroupResource(string(k))
}

// GroupVersionKind is the kind the API serves it as.
func (k Kind) GroupVersionKind() schema.GroupVersionKind {
	switch k {
	case Claims:
		return corev1.SchemeGroupVersion.WithKind("PersistentVolumeClaim")
	case Deployments:
		return appsv1.SchemeGroupVersion.WithKind("Deployment")
	case StatefulSets:
		return appsv1.SchemeGroupVersion.WithKind("StatefulSet")
	case Services:
		return corev1.SchemeGroupVersion.WithKind("Service")
	}
	return corev1.SchemeGroupVersion.WithKind("Pod")
}

// KindOf is the kind a reservation charges; pods when it names none (reservations written
// before other kinds were charged).
func KindOf(r tenancyv1alpha1.QuotaReservation) Kind {
	if r.Resource == "" {
		return Pods
	}
	return Kind(r.Resource)
}

// charge is what a quota resource is charged as: the key of the usage it limits, and the kind of
// object that uses it.
type charge struct {
	key  corev1.ResourceName
	kind Kind
}

// charged maps every resource name the ledger enforces, but those per storage class, to the key it
// charges. Quotas may name compute resources bare (cpu) or as requests (requests.cpu), and some
// counts bare (services) or as count/<resource>; both mean the same.
var charged = map[corev1.ResourceName]charge{
	corev1.ResourcePods:                     {corev1.ResourcePods, Pods},
	"count/pods":                            {corev1.ResourcePods, Pods},
	corev1.ResourceCPU:                      {corev1.ResourceRequestsCPU, Pods},
	corev1.ResourceRequestsCPU:              {corev1.ResourceRequestsCPU, Pods},
	corev1.ResourceLimitsCPU:                {corev1.ResourceLimitsCPU, Pods},
	corev1.ResourceMemory:                   {corev1.ResourceRequestsMemory, Pods},
	corev1.ResourceRequestsMemory:           {corev1.ResourceRequestsMemory, Pods},
	corev1.ResourceLimitsMemory:             {corev1.ResourceLimitsMemory, Pods},
	corev1.ResourceEphemeralStorage:         {corev1.ResourceRequestsEphemeralStorage, Pods},
	corev1.ResourceRequestsEphemeralStorage: {corev1.ResourceRequestsEphemeralStorage, Pods},
	corev1.ResourceLimitsEphemeralStorage:   {corev1.ResourceLimitsEphemeralStorage, Pods},

	corev1.ResourcePersistentVolumeClaims: {corev1.ResourcePersistentVolumeClaims, Claims},
	"count/persistentvolumeclaims":        {corev1.ResourcePersistentVolumeClaims, Claims},
	corev1.ResourceRequestsStorage:        {corev1.ResourceRequestsStorage, Claims},

	"count/deployments.apps":  {"count/deployments.apps", Deployments},
	"count/statefulsets.apps": {"count/statefulsets.apps", StatefulSets},
	corev1.ResourceServices:   {"count/services", Services},
	"count/services":          {"count/services", Services},
}

// Per storage class, as ResourceQuota names it: <class>.storageclass.storage.k8s.io/requests.storage
// and .../persistentvolumeclaims. A class is a DNS subdomain.
const storageClassSuffix = ".storageclass.storage.k8s.io/"

var perStorageClass = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\.storageclass\.storage\.k8s\.io/(requests\.storage|persistentvolumeclaims)$`)

// chargeOf returns what a quota resource is charged as, and whether the ledger enforces it.
func chargeOf(name corev1.ResourceName) (charge, bool) {
	if c, ok := charged[name]; ok {
		return c, true
	}
	if perStorageClass.MatchString(string(name)) {
		return charge{name, Claims}, true
	}
	return charge{}, false
}

// Supported returns the resource names an organization-wide quota may hold: those the ledger
// charges, sorted, then the two per storage class with <class> for the class. The API refuses
// any other in organizationQuota, by a CEL rule on api/v1alpha1.Quotas that lists the same names
// (a test keeps the two equal).
func Supported() []corev1.ResourceName {
	return append(slices.Sorted(maps.Keys(charged)),
		"<class>"+storageClassSuffix+"requests.storage", "<class>"+storageClassSuffix+"persistentvolumeclaims")
}

// Enforced returns the part of an organization-wide quota that the ledger enforces; nil if none.
func Enforced(hard corev1.ResourceList) corev1.ResourceList {
	var out corev1.ResourceList
	for name, q := range hard {
		if _, ok := chargeOf(name); ok {
			if out == nil {
				out = corev1.ResourceList{}
			}
			out[name] = q
		}
	}
	return out
}

// KindsOf returns, sorted, the kinds of object that use what hard limits: the ones whose
// objects the ledger must count.
func KindsOf(hard corev1.ResourceList) []Kind {
	var out []Kind
	for name := range hard {
		if c, ok := chargeOf(name); ok && !slices.Contains(out, c.kind) {
			out = append(out, c.kind)
		}
	}
	slices.Sort(out)
	return out
}

// Limits says whether hard limits something that usage adds: a charge that adds nothing limited
// is not worth writing.
func Limits(hard, usage corev1.ResourceList) bool {
	for name := range hard {
		if c, ok := chargeOf(name); ok {
			if q, used := usage[c.key]; used && !q.IsZero() {
				return true
			}
		}
	}
	return false
}

// PodUsage is what a pod uses of the resources the ledger enforces, computed as ResourceQuota
// and the scheduler do (init containers, sidecars, overhead and pod-level resources included).
// Only non-zero entries are kept.
func PodUsage(pod *corev1.Pod) corev1.ResourceList {
	return CompactUsage(podcache.FromPod(pod))
}

// CompactUsage is PodUsage of a cached pod: the webhook and the controller charge the same.
func CompactUsage(p *podcache.Pod) corev1.ResourceList {
	out := corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")}
	for _, e := range []struct {
		name  corev1.ResourceName
		value int64
		milli bool
	}{
		{corev1.ResourceRequestsCPU, p.Requests.CPU, true},
		{corev1.ResourceRequestsMemory, p.Requests.Memory, false},
		{corev1.ResourceRequestsEphemeralStorage, p.Requests.EphemeralStorage, false},
		{corev1.ResourceLimitsCPU, p.Limits.CPU, true},
		{corev1.ResourceLimitsMemory, p.Limits.Memory, false},
		{corev1.ResourceLimitsEphemeralStorage, p.Limits.EphemeralStorage, false},
	} {
		switch {
		case e.value == 0:
		case e.milli:
			out[e.name] = resource.MustParse(resource.NewMilliQuantity(e.value, resource.DecimalSI).String())
		default:
			out[e.name] = resource.MustParse(resource.NewQuantity(e.value, resource.BinarySI).String())
		}
	}
	return out
}

// ResizeUsage is what resizing a pod from old to new adds to its usage: the increases only, as
// ResourceQuota charges a resize. A decrease frees room once the operator sees the resized pod.
func ResizeUsage(old, new *corev1.Pod) corev1.ResourceList {
	return increases(PodUsage(old), PodUsage(new))
}

// ClaimUsage is what a PersistentVolumeClaim uses, as ResourceQuota counts it: one claim and its
// storage (the larger of what it requests and what was allocated), in total and for its class.
func ClaimUsage(pvc *corev1.PersistentVolumeClaim) corev1.ResourceList {
	one := resource.MustParse("1")
	out := corev1.ResourceList{corev1.ResourcePersistentVolumeClaims: one}
	storage := claimStorage(pvc)
	if !storage.IsZero() {
		out[corev1.ResourceRequestsStorage] = storage
	}
	if class := claimClass(pvc); class != "" {
		out[corev1.ResourceName(class+storageClassSuffix+"persistentvolumeclaims")] = one
		if !storage.IsZero() {
			out[corev1.ResourceName(class+storageClassSuffix+"requests.storage")] = storage
		}
	}
	return resourcelist.Canonical(out)
}

// ClaimResizeUsage is what expanding a claim from old to new adds: the storage increase only.
func ClaimResizeUsage(old, new *corev1.PersistentVolumeClaim) corev1.ResourceList {
	return increases(ClaimUsage(old), ClaimUsage(new))
}

// ClaimVersion is the version of a claim that a reservation waits for: its storage in bytes,
// which only grows (claims cannot shrink).
func ClaimVersion(pvc *corev1.PersistentVolumeClaim) int64 {
	s := claimStorage(pvc)
	return s.Value()
}

func claimStorage(pvc *corev1.PersistentVolumeClaim) resource.Quantity {
	s := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if allocated, ok := pvc.Status.AllocatedResources[corev1.ResourceStorage]; ok && allocated.Cmp(s) > 0 {
		s = allocated
	}
	return s
}

// claimClass is the claim's storage class: the beta annotation wins, as in ResourceQuota.
func claimClass(pvc *corev1.PersistentVolumeClaim) string {
	if class, ok := pvc.Annotations[corev1.BetaStorageClassAnnotation]; ok {
		return class
	}
	if pvc.Spec.StorageClassName != nil {
		return *pvc.Spec.StorageClassName
	}
	return ""
}

// CountUsage is what one object of a counted kind uses: itself.
func CountUsage(k Kind) corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceName("count/" + string(k)): resource.MustParse("1")}
}

func increases(before, after corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	for name, q := range after {
		if name == corev1.ResourcePods || name == corev1.ResourcePersistentVolumeClaims ||
			strings.HasSuffix(string(name), "/persistentvolumeclaims") {
			continue
		}
		if prev := before[name]; q.Cmp(prev) > 0 {
			q.Sub(prev)
			out[name] = q
		}
	}
	return resourcelist.Canonical(out)
}

// UpdateKey is the key a resize is charged under: the object's UID and the version the resize
// gives it (a pod's generation, a claim's storage in bytes). A creation is charged under the UID
// alone.
func UpdateKey(uid types.UID, version int64) types.UID {
	return types.UID(fmt.Sprintf("%s/%d", uid, version))
}

// Reserved returns the UID of a reservation's object and, for a resize, the version the resize
// gives it (0 for a creation).
func Reserved(r tenancyv1alpha1.QuotaReservation) (types.UID, int64) {
	uid, version, ok := strings.Cut(string(r.UID), "/")
	if !ok {
		return r.UID, 0
	}
	v, err := strconv.ParseInt(version, 10, 64)
	if err != nil {
		return r.UID, 0
	}
	return types.UID(uid), v
}
