// Package owned keeps the objects a reconciler owns: created with the owner's controller
// reference, repaired when someone changes them, written only when they differ.
package owned

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/orgoperator/org-operator/internal/patch"
)

// Owner keeps objects owned by Object.
type Owner struct {
	Client client.Client
	// Scheme knows Object's kind, for the owner reference.
	Scheme *runtime.Scheme
	Object client.Object
}

// Ensure creates want, controlled by the owner, or patches the existing object when equal says
// its content differs or it lost its labels or controller reference; update copies want's content
// onto it. An object that someone else controls is an error; nothing is written when all is in
// place.
func (o Owner) Ensure(ctx context.Context, want client.Object, equal func(have, want client.Object) bool, update func(have, want client.Object)) error {
	if err := controllerutil.SetControllerReference(o.Object, want, o.Scheme); err != nil {
		return err
	}
	have := want.DeepCopyObject().(client.Object)
	err := o.Client.Get(ctx, client.ObjectKeyFromObject(want), have)
	if apierrors.IsNotFound(err) {
		if err := o.Client.Create(ctx, want); err != nil {
			return fmt.Errorf("creating %T %s: %w", want, want.GetName(), err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	controlled := metav1.IsControlledBy(have, o.Object)
	if !controlled && len(have.GetOwnerReferences()) > 0 {
		return fmt.Errorf("%T %s exists and belongs to someone else", want, want.GetName())
	}
	if controlled && equal(have, want) && patch.HasLabels(have, want.GetLabels()) {
		return nil
	}
	base := have.DeepCopyObject().(client.Object)
	update(have, want)
	have.SetOwnerReferences(want.GetOwnerReferences())
	patch.MergeLabels(have, want.GetLabels())
	if err := o.Client.Patch(ctx, have, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("updating %T %s: %w", want, want.GetName(), err)
	}
	return nil
}

// DeleteIfOwned deletes obj if it exists and the owner controls it.
func (o Owner) DeleteIfOwned(ctx context.Context, obj client.Object) error {
	have := obj.DeepCopyObject().(client.Object)
	if err := o.Client.Get(ctx, client.ObjectKeyFromObject(obj), have); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(have, o.Object) {
		return nil
	}
	uid := have.GetUID()
	return client.IgnoreNotFound(o.Client.Delete(ctx, have, client.Preconditions{UID: &uid}))
}
