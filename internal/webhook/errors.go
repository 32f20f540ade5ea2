package webhook

import (
	"encoding/json"
	"errors"

	admissionv1 "k8s.io/api/admission/v1"
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

// responseOf answers a request refused with err, as controller-runtime's validators do: an API
// error keeps its status and reason, anything else is an internal error.
func responseOf(err error) admission.Response {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		status = apierrors.NewInternalError(err)
	}
	s := status.Status()
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &s}}
}
