package webhook

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/orgoperator/org-operator/internal/ledger"
)

// +kubebuilder:webhook:path=/validate--v1-persistentvolumeclaim,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups="",resources=persistentvolumeclaims,verbs=create;update,versions=v1,name=vpvc.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"tenancy.orgoperator.io/organization","operator":"Exists"},{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","default","org-operator-system"]}]}}`

// ClaimValidator charges each new PersistentVolumeClaim, and each expansion, to its
// organization's quota ledger through the Charger: claims and their storage, in total and per
// storage class.
type ClaimValidator struct {
	Charger *ledger.Charger
}

// ValidateCreate charges the claim.
func (v *ClaimValidator) ValidateCreate(ctx context.Context, pvc *corev1.PersistentVolumeClaim) (admission.Warnings, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return nil, v.Charger.Charge(ctx, ledger.Request{Kind: ledger.Claims, Namespace: req.Namespace, Name: pvc.Name,
		Key: pvc.UID, Usage: ledger.ClaimUsage(pvc), DryRun: dryRun(req)})
}

// ValidateUpdate charges an expansion with the storage it adds, as ResourceQuota does; any other
// update adds nothing.
func (v *ClaimValidator) ValidateUpdate(ctx context.Context, old, pvc *corev1.PersistentVolumeClaim) (admission.Warnings, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	added := ledger.ClaimResizeUsage(old, pvc)
	if len(added) == 0 {
		return nil, nil
	}
	return nil, v.Charger.Charge(ctx, ledger.Request{Kind: ledger.Claims, Namespace: req.Namespace, Name: pvc.Name,
		Key: ledger.UpdateKey(pvc.UID, ledger.ClaimVersion(pvc)), Usage: added, DryRun: dryRun(req)})
}

// ValidateDelete allows deletion; the controller takes the claim out of the ledger.
func (v *ClaimValidator) ValidateDelete(context.Context, *corev1.PersistentVolumeClaim) (admission.Warnings, error) {
	return nil, nil
}
