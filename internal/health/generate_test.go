package health_test

import (
	"path/filepath"
	"testing"

	"github.com/orgoperator/org-operator/internal/health"
)

// The chart's health checks are rendered from health.lua.tmpl; an edit made to a .lua file by
// hand would be lost at the next make generate.
func TestChartScriptsAreGenerated(t *testing.T) {
	dir := filepath.Join("..", "..", "charts", "org-operator", "files", "health")
	shipped, err := health.LoadScripts(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range health.Checks {
		want, err := health.Render(c)
		if err != nil {
			t.Fatal(err)
		}
		if shipped[c.Kind] != want {
			t.Errorf("%s differs from what internal/health/health.lua.tmpl renders: edit the template and run make generate",
				filepath.Join(dir, c.File()))
		}
	}
}
