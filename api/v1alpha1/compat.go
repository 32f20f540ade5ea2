package v1alpha1

import (
	"bytes"
	"encoding/json"

	sigsjson "sigs.k8s.io/json"
)

// UnmarshalJSON reads status.usage as written by every version of the operator. Before
// status.usage.namespaces held the per-namespace breakdown, it held the number of namespaces;
// an organization last reconciled by such a version still has that number in storage, and
// failing to decode it would stop the operator's cache of every organization. The number is
// dropped: the next reconcile writes namespaceCount and the breakdown.
func (u *OrganizationUsage) UnmarshalJSON(data []byte) error {
	type current OrganizationUsage // without this method
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err == nil {
		if raw, ok := fields["namespaces"]; ok && len(raw) > 0 && !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) &&
			!bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			delete(fields, "namespaces")
			if data, err = json.Marshal(fields); err != nil {
				return err
			}
		}
	}
	// Decode as the API machinery does: field names are case-sensitive.
	return sigsjson.UnmarshalCaseSensitivePreserveInts(data, (*current)(u))
}
