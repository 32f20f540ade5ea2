// Package health writes and runs the Argo CD health checks that the chart ships
// (charts/org-operator/files/health/*.lua). The checks of every kind are rendered from one
// template, health.lua.tmpl, which reads the Ready and Stalled conditions the controllers set;
// hack/gen-health (make generate) writes them. Evaluate runs them the way Argo CD does, so that
// tests can prove what Argo CD will show for Organizations, OrganizationMembers and
// OrganizationPlans at each stage of their lifecycle. The kstatus side (Flux, cli-utils,
// kubectl-style waiters) needs no code of ours: the tests call
// sigs.k8s.io/cli-utils/pkg/kstatus/status directly.
package health

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Argo CD health status codes.
const (
	Healthy     = "Healthy"
	Progressing = "Progressing"
	Degraded    = "Degraded"
	Suspended   = "Suspended"
	Missing     = "Missing"
	Unknown     = "Unknown"
)

// Group is the API group whose kinds have health checks.
const Group = "tenancy.orgoperator.io"

// Check is what one kind's health check differs by.
type Check struct {
	// Kind is the kind the check is for.
	Kind string
	// Noun names an object of the kind in messages ("Waiting for the operator to reconcile the member").
	Noun string
}

// Checks lists the kinds that have a health check.
var Checks = []Check{
	{Kind: "Organization", Noun: "organization"},
	{Kind: "OrganizationMember", Noun: "member"},
	{Kind: "OrganizationPlan", Noun: "plan"},
}

// File is the name of the check's file under the chart's files/health directory.
func (c Check) File() string {
	return strings.ToLower(c.Kind) + ".lua"
}

// Scripts maps each kind to its health check file under the chart's files/health directory.
var Scripts = func() map[string]string {
	m := make(map[string]string, len(Checks))
	for _, c := range Checks {
		m[c.Kind] = c.File()
	}
	return m
}()

//go:embed health.lua.tmpl
var scriptTemplateText string

var scriptTemplate = template.Must(template.New("health.lua.tmpl").Parse(scriptTemplateText))

// Render returns the health check script of c, as the chart must ship it.
func Render(c Check) (string, error) {
	var b bytes.Buffer
	err := scriptTemplate.Execute(&b, struct{ Group, Kind, Noun string }{Group, c.Kind, c.Noun})
	if err != nil {
		return "", fmt.Errorf("rendering the health check of %s: %w", c.Kind, err)
	}
	return b.String(), nil
}

// ConfigKey is the argocd-cm key of a kind's health check.
func ConfigKey(kind string) string {
	return fmt.Sprintf("resource.customizations.health.%s_%s", Group, kind)
}

// ConfigEntry is a kind's health check as an entry of the argocd-cm ConfigMap's data, indented
// for a block under "data:".
func ConfigEntry(kind, script string) string {
	lines := strings.Split(strings.TrimRight(script, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "    " + l
		}
	}
	return "  " + ConfigKey(kind) + ": |\n" + strings.Join(lines, "\n") + "\n"
}

// LoadScripts reads the health checks of every kind from dir (charts/org-operator/files/health).
func LoadScripts(dir string) (map[string]string, error) {
	out := make(map[string]string, len(Scripts))
	for kind, file := range Scripts {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			return nil, fmt.Errorf("reading the health check of %s: %w", kind, err)
		}
		out[kind] = string(b)
	}
	return out, nil
}

// Status is what a health check returned.
type Status struct {
	Status  string
	Message string
}

// ArgoCD returns what Argo CD shows for obj with script as its kind's health check: an object
// being deleted is Progressing ("Pending deletion") without running the script, as gitops-engine
// decides before any health check; otherwise the script's result.
func ArgoCD(script string, obj *unstructured.Unstructured) (Status, error) {
	if obj.GetDeletionTimestamp() != nil {
		return Status{Status: Progressing, Message: "Pending deletion"}, nil
	}
	return Evaluate(script, obj)
}

// Evaluate runs a health check script on obj as Argo CD does: a fresh Lua state with the base,
// table, string and math libraries, the object as the global obj, a one second budget, and the
// returned table's status and message fields. A status that is not an Argo CD code is an error.
func Evaluate(script string, obj *unstructured.Unstructured) (Status, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return Status{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj.Object))
	if err := l.DoString(script); err != nil {
		return Status{}, fmt.Errorf("running the health check: %w", err)
	}
	table, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return Status{}, fmt.Errorf("the health check returned %s, not a table", l.Get(-1).Type())
	}
	st := Status{
		Status:  lua.LVAsString(table.RawGetString("status")),
		Message: lua.LVAsString(table.RawGetString("message")),
	}
	switch st.Status {
	case Healthy, Progressing, Degraded, Suspended, Missing, Unknown:
		return st, nil
	}
	return st, fmt.Errorf("the health check returned status %q, which Argo CD does not know", st.Status)
}

// toLua converts an unstructured value as Argo CD's decodeValue does.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for k, item := range v {
			t.RawSetH(lua.LString(k), toLua(l, item))
		}
		return t
	}
	return lua.LNil
}
