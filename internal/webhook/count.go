package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/orgoperator/org-operator/internal/ledger"
)

// +kubebuilder:webhook:path=/validate-count,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups=apps,resources=deployments;statefulsets,verbs=create,versions=v1,name=vcountapps.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"tenancy.orgoperator.io/organization","operator":"Exists"},{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","default","org-operator-system"]}]}}`
// +kubebuilder:webhook:path=/validate-count,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups="",resources=services,verbs=create,versions=v1,name=vcountservices.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"tenancy.orgoperator.io/organization","operator":"Exists"},{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","default","org-operator-system"]}]}}`

// CountPath serves the webhook that counts objects: only their metadata is read.
const CountPath = "/validate-count"

// CountValidator charges each new object of a counted kind (Deployments, StatefulSets, Services)
// to its organization's count/<resource> quota through the Charger.
type CountValidator struct {
	Charger *ledger.Charger
}

var counted = map[metav1.GroupResource]ledger.Kind{
	{Group: "apps", Resource: "deployments"}:  ledger.Deployments,
	{Group: "apps", Resource: "statefulsets"}: ledger.StatefulSets,
	{Group: "", Resource: "services"}:         ledger.Services,
}

// Handle charges a creation of a counted kind; it lets everything else through.
func (v *CountValidator) Handle(ctx context.Context, req admission.Request) admission.Response {
	kind, ok := counted[metav1.GroupResource{Group: req.Resource.Group, Resource: req.Resource.Resource}]
	if !ok || req.SubResource != "" || req.Operation != "CREATE" {
		return admission.Allowed("")
	}
	obj := &metav1.PartialObjectMetadata{}
	if err := json.Unmarshal(req.Object.Raw, obj); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the %s: %w", kind, err))
	}
	err := v.Charger.Charge(ctx, ledger.Request{Kind: kind, Namespace: req.Namespace, Name: obj.Name,
		Key: obj.UID, Usage: ledger.CountUsage(kind), DryRun: dryRun(req)})
	if err != nil {
		return responseOf(err)
	}
	return admission.Allowed("")
}
