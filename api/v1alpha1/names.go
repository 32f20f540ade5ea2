package v1alpha1

import "strings"

// reservedNames cannot name an organization: its home namespace would take over a system namespace.
var reservedNames = map[string]bool{
	"default": true, "openshift": true, "kube-system": true, "kube-public": true, "kube-node-lease": true, "org-operator-system": true,
}

// reservedPrefixes start namespace names that belong to the platform.
var reservedPrefixes = []string{"kube-", "openshift-"}

// IsReservedName reports whether name is kept for the system. The CRD's CEL rule on
// metadata.name says the same, so that the API server rejects such organizations at admission.
func IsReservedName(name string) bool {
	if reservedNames[name] {
		return true
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
