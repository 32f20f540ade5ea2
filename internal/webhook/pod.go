package webhook

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/orgoperator/org-operator/internal/ledger"
	"github.com/orgoperator/org-operator/internal/usage"
)

// The organization-quota webhooks reach only organization namespaces (never system namespaces),
// so that failing closed blocks nothing else. Dry runs are checked without a charge. Creations
// and in-place resizes are charged; resizes have their own webhook so that the other updates of
// pods (labels, finalizers, owner references) never wait for the operator.
//
// +kubebuilder:webhook:path=/validate--v1-pod,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups="",resources=pods,verbs=create,versions=v1,name=vpod.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"tenancy.orgoperator.io/organization","operator":"Exists"},{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","default","org-operator-system"]}]}}`
// +kubebuilder:webhook:path=/validate--v1-pod,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups="",resources=pods/resize,verbs=update,versions=v1,name=vpodresize.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"tenancy.orgoperator.io/organization","operator":"Exists"},{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","default","org-operator-system"]}]}}`

// PodValidator charges each new pod, and each in-place resize, to its organization's quota
// ledger through the Charger.
type PodValidator struct {
	Charger *ledger.Charger
}

// ValidateCreate charges the pod.
func (v *PodValidator) ValidateCreate(ctx context.Context, pod *corev1.Pod) (admission.Warnings, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if usage.Terminal(pod) {
		return nil, nil
	}
	return nil, v.Charger.Charge(ctx, ledger.Request{Kind: ledger.Pods, Namespace: req.Namespace, Name: pod.Name,
		Key: pod.UID, Usage: ledger.PodUsage(pod), Pod: pod, DryRun: dryRun(req)})
}

// ValidateUpdate charges an in-place resize (the pods/resize subresource) with what it adds to
// the pod's usage, as ResourceQuota does; a decrease frees room once the controller sees the
// resized pod. Other updates cannot change what a pod uses.
func (v *PodValidator) ValidateUpdate(ctx context.Context, old, pod *corev1.Pod) (admission.Warnings, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if req.SubResource != "resize" || usage.Terminal(pod) {
		return nil, nil
	}
	added := ledger.ResizeUsage(old, pod)
	if len(added) == 0 {
		return nil, nil
	}
	return nil, v.Charger.Charge(ctx, ledger.Request{Kind: ledger.Pods, Namespace: req.Namespace, Name: pod.Name,
		Key: ledger.UpdateKey(pod.UID, pod.Generation), Usage: added, Pod: pod, DryRun: dryRun(req)})
}

// ValidateDelete allows deletion; the controller takes the pod out of the ledger.
func (v *PodValidator) ValidateDelete(context.Context, *corev1.Pod) (admission.Warnings, error) {
	return nil, nil
}

func dryRun(req admission.Request) bool {
	return req.DryRun != nil && *req.DryRun
}
