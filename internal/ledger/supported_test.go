package ledger

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// TestSupportedMatchesTheCRDs checks that the CEL rule which refuses unsupported resources in
// organizationQuota, in the CRDs of both kinds that carry quotas, lists exactly the resources
// the ledger charges (the ones per storage class by a pattern), and that its message names the
// same ones.
func TestSupportedMatchesTheCRDs(t *testing.T) {
	var want, listed []string
	for _, name := range Supported() {
		want = append(want, string(name))
		if !strings.HasPrefix(string(name), "<class>") {
			listed = append(listed, string(name))
		}
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
			names, pattern, _ := strings.Cut(rules[0].Rule, "] || k.matches(")
			var inRule []string
			for _, m := range quoted.FindAllStringSubmatch(names, -1) {
				inRule = append(inRule, m[1])
			}
			if got := sorted(inRule); !slices.Equal(got, listed) {
				t.Errorf("the rule allows %v, the ledger charges %v: change the rule on Quotas.OrganizationQuota "+
					"(api/v1alpha1/organizationplan_types.go) and run make manifests", got, listed)
			}
			// The pattern, as CEL reads it, accepts a class's two resources and nothing the ledger refuses.
			m := quoted.FindStringSubmatch(pattern)
			if m == nil {
				t.Fatalf("no pattern for the storage class resources in %q", rules[0].Rule)
			}
			re := regexp.MustCompile(strings.ReplaceAll(m[1], `\\`, `\`))
			for name, ok := range map[string]bool{
				"gold.storageclass.storage.k8s.io/requests.storage":           true,
				"fast-ssd.storageclass.storage.k8s.io/persistentvolumeclaims": true,
				"gold.storageclass.storage.k8s.io/limits.storage":             false,
				"goldXstorageclass.storage.k8s.io/requests.storage":           false,
				"count/secrets": false,
			} {
				if re.MatchString(name) != ok {
					t.Errorf("the rule's pattern %s matches %s: %v, want %v", re, name, !ok, ok)
				}
				if _, charged := chargeOf(corev1.ResourceName(name)); charged != ok {
					t.Errorf("the ledger charges %s: %v, want %v", name, charged, ok)
				}
			}

			listed, _, ok := strings.Cut(strings.TrimPrefix(rules[0].Message, "organizationQuota supports only "), ";")
			if !ok || !strings.HasPrefix(rules[0].Message, "organizationQuota supports only ") {
				t.Fatalf("message %q does not read \"organizationQuota supports only ...; ...\"", rules[0].Message)
			}
			inMessage := strings.Split(listed, ", ")
			if !slices.Equal(inMessage, want) {
				t.Errorf("the message lists %v, the ledger charges %v, in this order", inMessage, want)
			}
			if !slices.Equal(inMessage[:min(len(inRule), len(inMessage))], inRule) {
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
