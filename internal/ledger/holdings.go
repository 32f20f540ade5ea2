package ledger

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/podcache"
)

// Holdings lists what an organization's namespaces hold of the kinds a quota charges, from the
// operator's caches: pods from the compact pod cache, claims from the manager's cache, and the
// counted kinds from the metadata the manager watches.
type Holdings struct {
	Pods podcache.Lister
	// Reader is the manager's cache.
	Reader client.Reader
}

// List returns the holdings of the given kinds in namespaces.
func (h Holdings) List(ctx context.Context, namespaces []string, kinds []Kind) ([]Holding, error) {
	return holdings(ctx, h.Reader, namespaces, kinds, func() ([]*podcache.Pod, error) {
		return podcache.InNamespaces(h.Pods, namespaces)
	})
}

// Stored lists the same holdings as Holdings.List from the API server, for a ledger the caches
// may not have caught up with.
func Stored(ctx context.Context, apiReader client.Reader, namespaces []string, kinds []Kind) ([]Holding, error) {
	return holdings(ctx, apiReader, namespaces, kinds, func() ([]*podcache.Pod, error) {
		return podcache.InNamespaces(podcache.Stored(ctx, apiReader), namespaces)
	})
}

// holdings lists the kinds from r, but pods from pods: the compact cache or the API server.
func holdings(ctx context.Context, r client.Reader, namespaces []string, kinds []Kind, pods func() ([]*podcache.Pod, error)) ([]Holding, error) {
	var out []Holding
	for _, k := range kinds {
		if k != Pods {
			more, err := listKind(ctx, r, namespaces, k)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
			continue
		}
		listed, err := pods()
		if err != nil {
			return nil, err
		}
		for _, p := range listed {
			out = append(out, compactHolding(p))
		}
	}
	return out, nil
}

func compactHolding(p *podcache.Pod) Holding {
	h := Holding{Kind: Pods, Namespace: p.Namespace, Name: p.Name, UID: p.UID, Version: p.Generation}
	if !p.Terminal {
		h.Usage = CompactUsage(p)
	}
	return h
}

// listKind reads claims whole and the counted kinds as metadata, from r.
func listKind(ctx context.Context, r client.Reader, namespaces []string, k Kind) ([]Holding, error) {
	var out []Holding
	for _, ns := range namespaces {
		if k == Claims {
			claims := &corev1.PersistentVolumeClaimList{}
			if err := r.List(ctx, claims, client.InNamespace(ns)); err != nil {
				return nil, fmt.Errorf("listing persistentvolumeclaims in %s: %w", ns, err)
			}
			for i := range claims.Items {
				c := &claims.Items[i]
				out = append(out, Holding{Kind: Claims, Namespace: c.Namespace, Name: c.Name, UID: c.UID, Version: ClaimVersion(c), Usage: ClaimUsage(c)})
			}
			continue
		}
		objects := &metav1.PartialObjectMetadataList{}
		objects.SetGroupVersionKind(k.GroupVersionKind().GroupVersion().WithKind(k.GroupVersionKind().Kind + "List"))
		if err := r.List(ctx, objects, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("listing %s in %s: %w", k, ns, err)
		}
		usage := CountUsage(k)
		for i := range objects.Items {
			o := &objects.Items[i]
			out = append(out, Holding{Kind: k, Namespace: o.Namespace, Name: o.Name, UID: o.UID, Usage: usage})
		}
	}
	return out, nil
}

// storedAsCharged says whether a reservation's object is stored as the reservation charged it:
// the object, and for a resize the version the resize gave it.
func storedAsCharged(ctx context.Context, apiReader client.Reader, res tenancyv1alpha1.QuotaReservation) (bool, error) {
	key := client.ObjectKey{Namespace: res.Namespace, Name: res.Name}
	var stored Holding
	switch kind := KindOf(res); kind {
	case Claims:
		pvc := &corev1.PersistentVolumeClaim{}
		if err := apiReader.Get(ctx, key, pvc); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		stored = Holding{UID: pvc.UID, Version: ClaimVersion(pvc)}
	default:
		obj := &metav1.PartialObjectMetadata{}
		obj.SetGroupVersionKind(kind.GroupVersionKind())
		if err := apiReader.Get(ctx, key, obj); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		stored = Holding{UID: obj.UID}
		if kind == Pods {
			stored.Version = obj.Generation
		}
	}
	return Seen{stored.UID: stored.Version}.Settles(res), nil
}
