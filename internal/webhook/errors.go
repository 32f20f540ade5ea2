package webhook

import (
	"encoding/json"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// invalid turns field errors into the API's Invalid error, or nil when there are none.
func invalid(kind schema.GroupKind, name string, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(kind, name, errs)
}

// decodeOld decodes the object an update or delete replaces.
func decodeOld(req admission.Request, into any) error {
	return json.Unmarshal(req.OldObject.Raw, into)
}
