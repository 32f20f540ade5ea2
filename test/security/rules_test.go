package security_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authorizationv1 "k8s.io/api/authorization/v1"
)

// The rights of every actor, as `kubectl auth can-i --list` shows them, are compared with the
// expectation committed in testdata/rules: a role that widens fails here, until someone reads the
// difference and commits it. UPDATE_RULES=1 rewrites the files.
var _ = Describe("What each actor may do, as kubectl auth can-i --list says", func() {
	for _, who := range []string{alice, adam, dave, bob, nora, carol, mallory, gina, deployer, operator} {
		It("is what testdata/rules says for "+short(who), func(ctx SpecContext) {
			var b strings.Builder
			for _, ns := range []string{"alpha", "alpha-dev", "beta-dev", "outside", "kube-system", "org-operator-system"} {
				review := &authorizationv1.SelfSubjectRulesReview{Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: ns}}
				Expect(as(who).Create(ctx, review)).To(Succeed())
				Expect(review.Status.Incomplete).To(BeFalse(), review.Status.EvaluationError)
				fmt.Fprintf(&b, "# namespace %s\n", ns)
				for _, line := range rulesOf(review.Status) {
					fmt.Fprintln(&b, line)
				}
			}
			path := filepath.Join("testdata", "rules", strings.ReplaceAll(short(who), " ", "-")+".txt")
			if os.Getenv("UPDATE_RULES") == "1" {
				Expect(os.MkdirAll(filepath.Dir(path), 0o755)).To(Succeed())
				Expect(os.WriteFile(path, []byte(b.String()), 0o644)).To(Succeed())
			}
			want, err := os.ReadFile(path)
			Expect(err).NotTo(HaveOccurred(), "run with UPDATE_RULES=1 to write %s", path)
			Expect(b.String()).To(Equal(string(want)), "the rights of %s changed; if that is meant, run with UPDATE_RULES=1 and commit %s", who, path)
		})
	}
})

// rulesOf prints the rules one per resource and verb set, sorted, as can-i --list does.
func rulesOf(s authorizationv1.SubjectRulesReviewStatus) []string {
	var out []string
	for _, r := range s.ResourceRules {
		verbs := slices.Sorted(slices.Values(r.Verbs))
		names := slices.Sorted(slices.Values(r.ResourceNames))
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				out = append(out, fmt.Sprintf("%s %s [%s] [%s]", res, g, strings.Join(names, " "), strings.Join(verbs, " ")))
			}
		}
	}
	for _, r := range s.NonResourceRules {
		out = append(out, fmt.Sprintf("%s [%s]", strings.Join(slices.Sorted(slices.Values(r.NonResourceURLs)), " "), strings.Join(slices.Sorted(slices.Values(r.Verbs)), " ")))
	}
	slices.Sort(out)
	return slices.Compact(out)
}
