package webhook

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// registerDefaulting serves defaulter as the mutating webhook of obj's kind, at the path the
// webhook builder would give it (the path of the kind's +kubebuilder:webhook marker).
//
// The API server calls mutating webhooks before it checks an object against the CRD schema, so
// they may receive a field of the wrong type ("admin": "yes"). Such an object is let through
// unchanged: the schema validation that runs next refuses it with an error that names the field,
// where the defaulter could only answer with the decoder's Go error.
func registerDefaulting[T client.Object](mgr ctrl.Manager, obj T, defaulter admission.Defaulter[T]) error {
	scheme := mgr.GetScheme()
	gvk, err := apiutil.GVKForObject(obj, scheme)
	if err != nil {
		return fmt.Errorf("defaulting webhook: %w", err)
	}
	wh := admission.WithDefaulter(scheme, defaulter)
	wh.Handler = &skipUndecodable{next: wh.Handler, decoder: admission.NewDecoder(scheme), obj: obj}
	path := "/mutate-" + strings.ReplaceAll(gvk.Group, ".", "-") + "-" + gvk.Version + "-" + strings.ToLower(gvk.Kind)
	mgr.GetWebhookServer().Register(path, wh)
	return nil
}

// skipUndecodable allows, without a patch, every request whose object does not decode into obj's
// type, and passes the others to next.
type skipUndecodable struct {
	next    admission.Handler
	decoder admission.Decoder
	obj     runtime.Object
}

func (h *skipUndecodable) Handle(ctx context.Context, req admission.Request) admission.Response {
	if err := h.decoder.Decode(req, h.obj.DeepCopyObject()); err != nil {
		logf.FromContext(ctx).V(1).Info("Letting an object that does not decode through to schema validation", "error", err.Error())
		return admission.Allowed("")
	}
	return h.next.Handle(ctx, req)
}
