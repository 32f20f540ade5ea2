package packaging_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/orgoperator/org-operator/internal/health"
)

// expectSameTree fails when the files under got and want differ, naming the command that fixes it.
func expectSameTree(got, want, fix string) {
	GinkgoHelper()
	read := func(dir string) map[string]string {
		files := map[string]string{}
		Expect(filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			rel, _ := filepath.Rel(dir, path)
			files[rel] = string(b)
			return err
		})).To(Succeed())
		return files
	}
	g, w := read(got), read(want)
	for name := range w {
		_, ok := g[name]
		Expect(ok).To(BeTrue(), "%s is stale: run %s", filepath.Join(want, name), fix)
	}
	for name, content := range g {
		_, ok := w[name]
		Expect(ok).To(BeTrue(), "%s is missing: run %s", filepath.Join(want, name), fix)
		Expect(w[name] == content).To(BeTrue(), "%s differs from what %s writes: run it", filepath.Join(want, name), fix)
	}
}

var _ = Describe("Generated files", func() {
	It("the chart's copies of the CRDs, the RBAC and the webhooks of config/ are up to date (make chart-sync)", func() {
		tmp := GinkgoT().TempDir()
		command{name: "bash", args: []string{"hack/sync-chart.sh", tmp}}.mustRun()
		for _, dir := range []string{"crds", "rbac", "webhook"} {
			expectSameTree(filepath.Join(tmp, dir), filepath.Join(root, chart, "files", dir), "make chart-sync")
		}
	})

	It("the CRD reference pages are up to date (make docs)", func() {
		tmp := GinkgoT().TempDir()
		command{name: "go", args: []string{"run", "./hack/gen-docs", "-out", tmp}}.mustRun()
		expectSameTree(tmp, filepath.Join(root, "docs", "reference"), "make docs")
		Expect(readFile("docs/reference/organization.md")).To(ContainSubstring("`spec.subscription.plan`"))
	})

	It("docs/gitops.md shows every Argo CD health check as the chart ships it", func() {
		doc := readFile("docs/gitops.md")
		for kind, file := range health.Scripts {
			script := readFile(filepath.Join(chart, "files", "health", file))
			Expect(doc).To(ContainSubstring(health.ConfigEntry(kind, script)),
				"docs/gitops.md does not show %s verbatim under %s", file, health.ConfigKey(kind))
		}
	})

	It("the Grafana dashboard is valid JSON built on documented metrics", func() {
		raw := readFile(filepath.Join(chart, "files", "dashboards", "org-operator.json"))
		var dashboard struct {
			UID    string `json:"uid"`
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		Expect(json.Unmarshal([]byte(raw), &dashboard)).To(Succeed())
		Expect(dashboard.UID).To(Equal("org-operator"))
		metricsDoc := readFile("docs/metrics.md")
		ours := regexp.MustCompile(`\borgoperator_[a-z_]+`)
		exprs := 0
		for _, p := range dashboard.Panels {
			for _, t := range p.Targets {
				exprs++
				for _, m := range ours.FindAllString(t.Expr, -1) {
					Expect(metricsDoc).To(ContainSubstring("`"+m+"`"), "panel %q uses %s, which docs/metrics.md does not describe", p.Title, m)
				}
			}
		}
		Expect(exprs).To(BeNumerically(">", 5))
	})
})
