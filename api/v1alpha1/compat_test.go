package v1alpha1_test

import (
	"encoding/json"
	"testing"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

func TestOrganizationUsageReadsEveryVersion(t *testing.T) {
	for _, tc := range []struct {
		name, json     string
		wantCount      int32
		wantNamespaces int
		wantPods       int32
	}{
		{"current", `{"namespaceCount":2,"members":1,"pods":3,"namespaces":[{"name":"a","pods":1},{"name":"b","pods":2}]}`, 2, 2, 3},
		{"before the breakdown: namespaces was the count", `{"namespaces":2,"members":1,"pods":3}`, 0, 0, 3},
		{"no breakdown", `{"namespaceCount":1,"pods":0,"namespaces":null}`, 1, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var org tenancyv1alpha1.Organization
			if err := json.Unmarshal([]byte(`{"status":{"usage":`+tc.json+`}}`), &org); err != nil {
				t.Fatalf("decoding: %v", err)
			}
			u := org.Status.Usage
			if u.NamespaceCount != tc.wantCount || len(u.Namespaces) != tc.wantNamespaces || u.Pods != tc.wantPods {
				t.Errorf("got count %d, %d namespaces, %d pods; want %d, %d, %d", u.NamespaceCount, len(u.Namespaces), u.Pods, tc.wantCount, tc.wantNamespaces, tc.wantPods)
			}
		})
	}
	var bad tenancyv1alpha1.OrganizationUsage
	if err := json.Unmarshal([]byte(`{"pods":"many"}`), &bad); err == nil {
		t.Error("a wrong type elsewhere must still be an error")
	}
}
