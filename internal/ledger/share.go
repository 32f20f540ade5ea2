package ledger

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// NamespaceShare, for an operator without its webhooks (no ledger), is the hard limit of one namespace's share of an organization-wide quota: what
// the namespace uses plus what is left of the organization's quota. Each namespace may then grow
// by the organization's headroom and no more, so the API server's own quota admission rejects,
// with its usual message, a request that would take the organization past its limit. (Requests
// racing in several namespaces can each take the same headroom: the operator narrows the shares
// again as soon as usage changes.) Where the organization is already over, the share is what the
// namespace uses: nothing new fits.
func NamespaceShare(orgHard, orgUsed, nsUsed corev1.ResourceList) corev1.ResourceList {
	out := make(corev1.ResourceList, len(orgHard))
	for name, hard := range orgHard {
		left := hard.DeepCopy()
		left.Sub(orgUsed[name])
		if left.Sign() < 0 {
			left = resource.Quantity{}
		}
		share := nsUsed[name].DeepCopy()
		share.Add(left)
		out[name] = resource.MustParse(share.String())
	}
	return out
}
