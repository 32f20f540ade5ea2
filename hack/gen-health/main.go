// Command gen-health writes the Argo CD health checks of the chart
// (charts/org-operator/files/health/*.lua) from internal/health/health.lua.tmpl, and the copy of
// them that docs/gitops.md shows as an argocd-cm ConfigMap, between its gen-health markers.
// `make generate` runs it; internal/health and test/packaging fail when the committed files differ.
//
// Usage: go run ./hack/gen-health [-out charts/org-operator/files/health] [-docs docs/gitops.md]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/orgoperator/org-operator/internal/health"
)

// The lines of docs/gitops.md between which gen-health writes the argocd-cm example.
const (
	beginMarker = "<!-- gen-health: begin (make generate writes this block) -->\n"
	endMarker   = "<!-- gen-health: end -->\n"
)

func main() {
	out := flag.String("out", "charts/org-operator/files/health", "directory to write the health checks into")
	docs := flag.String("docs", "docs/gitops.md", "page whose argocd-cm example to rewrite; empty for none")
	flag.Parse()
	if err := run(*out, *docs); err != nil {
		fmt.Fprintln(os.Stderr, "gen-health:", err)
		os.Exit(1)
	}
}

func run(outDir, docsPath string) error {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	var configMap strings.Builder
	configMap.WriteString("```yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: argocd\ndata:\n")
	for _, c := range health.Checks {
		script, err := health.Render(c)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(outDir, c.File()), []byte(script), 0o644); err != nil {
			return err
		}
		configMap.WriteString(health.ConfigEntry(c.Kind, script))
	}
	configMap.WriteString("```\n")
	if docsPath == "" {
		return nil
	}
	return replaceBlock(docsPath, configMap.String())
}

// replaceBlock rewrites what lies between the gen-health markers of the file at path.
func replaceBlock(path, block string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	begin := bytes.Index(b, []byte(beginMarker))
	end := bytes.Index(b, []byte(endMarker))
	if begin < 0 || end < begin {
		return fmt.Errorf("%s has no %q line followed by a %q line", path, strings.TrimSpace(beginMarker), strings.TrimSpace(endMarker))
	}
	var out bytes.Buffer
	out.Write(b[:begin+len(beginMarker)])
	out.WriteString(block)
	out.Write(b[end:])
	if bytes.Equal(out.Bytes(), b) {
		return nil
	}
	return os.WriteFile(path, out.Bytes(), 0o644)
}
