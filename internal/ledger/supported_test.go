package ledger

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// TestSupportedMatchesTheCRDs checks that the CEL rule which refuses unsupported resources in
// organizationQuota, in the CRDs of both kinds that carry quotas, lists exactly the resources
// the ledger charges, and that its message names the same ones.
func TestSupportedMatchesTheCRDs(t *testing.T) {
	var want []string
	for _, name := range Supported() {
		want = append(want, string(name))
	}
	quoted := regexp.MustCompile(`'([^']*)'`)
	for _, file := range []string{"tenancy.orgoperator.io_organizationplans.yaml", "tenancy.orgoperator.io_organizations.yaml"} {
		t.Run(file, func(t *testing.T) {
			field := organizationQuotaSchema(t, filepath.Join("..", "..", "config", "crd", "bases", file))
			var rules []apiextensionsv1.ValidationRule
			for _, r := range field.XValidations {
				if strings.HasPrefix(r.Rule, "self.all(k, k in [") {
					rules = append(rules, r)
				}
			}
			if len(rules) != 1 {
				t.Fatalf("organizationQuota has %d rules on its keys, want 1: %+v", len(rules), field.XValidations)
			}
			var inRule []string
			for _, m := range quoted.FindAllStringSubmatch(rules[0].Rule, -1) {
				inRule = append(inRule, m[1])
			}
			if got := sorted(inRule); !slices.Equal(got, want) {
				t.Errorf("the rule allows %v, the ledger charges %v: change the rule on Quotas.OrganizationQuota "+
					"(api/v1alpha1/organizationplan_types.go) and run make manifests", got, want)
			}

			listed, _, ok := strings.Cut(strings.TrimPrefix(rules[0].Message, "organizationQuota supports only "), ";")
			if !ok || !strings.HasPrefix(rules[0].Message, "organizationQuota supports only ") {
				t.Fatalf("message %q does not read \"organizationQuota supports only ...; ...\"", rules[0].Message)
			}
			inMessage := strings.Split(listed, ", ")
			if got := sorted(inMessage); !slices.Equal(got, want) {
				t.Errorf("the message lists %v, the ledger charges %v", got, want)
			}
			if !slices.Equal(inMessage, inRule) {
				t.Errorf("the message lists %v, the rule %v: keep them in the same order", inMessage, inRule)
			}
		})
	}
}

// organizationQuotaSchema returns the schema of spec.quotas.organizationQuota in the only
// version of the CRD in path.
func organizationQuotaSchema(t *testing.T, path string) apiextensionsv1.JSONSchemaProps {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(data, crd); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Schema == nil {
		t.Fatalf("%s: want one version with a schema", path)
	}
	schema := *crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	for _, p := range []string{"spec", "quotas", "organizationQuota"} {
		next, ok := schema.Properties[p]
		if !ok {
			t.Fatalf("%s: no %s in the schema", path, p)
		}
		schema = next
	}
	return schema
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
