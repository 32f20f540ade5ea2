package main

import (
	"bytes"
	"flag"
	"slices"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

func TestReplicasHaveTheirOwnPortsAndLeaderElection(t *testing.T) {
	replicas, err := newReplicas(3, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, r := range replicas {
		for _, addr := range []string{r.webhook, r.probes, r.metrics} {
			if other, ok := seen[addr]; ok {
				t.Errorf("%s and %s both use %s", other, r.name, addr)
			}
			seen[addr] = r.name
		}
	}
	if replicas[2].name != "org-operator-2" {
		t.Errorf("third replica is named %q, want org-operator-2", replicas[2].name)
	}

	hooks := envtest.WebhookInstallOptions{LocalServingHost: "127.0.0.1", LocalServingPort: 9443, LocalServingCertDir: "/certs"}
	r := replicas[0]
	args := r.args(hooks, []string{"--zap-log-level=debug"})
	// The manager's flags, parsed as the manager does: the last of a flag wins.
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	got := map[string]*string{}
	for _, name := range []string{"health-probe-bind-address", "metrics-bind-address", "webhook-host", "webhook-port",
		"webhook-cert-dir", "webhook-certs", "leader-elect", "namespace", "zap-log-level"} {
		got[name] = fs.String(name, "", "")
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	_, webhookPort, _ := strings.Cut(r.webhook, "127.0.0.1:")
	for name, want := range map[string]string{
		"health-probe-bind-address": r.probes, "metrics-bind-address": r.metrics, "webhook-host": "127.0.0.1",
		"webhook-port": webhookPort, "webhook-cert-dir": "/certs", "webhook-certs": "external",
		"leader-elect": "true", "namespace": "org-operator-system", "zap-log-level": "debug",
	} {
		if *got[name] != want {
			t.Errorf("--%s=%q, want %q (args %v)", name, *got[name], want, args)
		}
	}
	if hooks.LocalServingPort != 9443 {
		t.Errorf("args changed the caller's webhook options")
	}
}

func TestPrefixWriterWritesWholePrefixedLines(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	a := &prefixWriter{mu: &mu, w: &out, prefix: []byte("[a] ")}
	b := &prefixWriter{mu: &mu, w: &out, prefix: []byte("[b] ")}
	for _, w := range []struct {
		to   *prefixWriter
		text string
	}{{a, "one"}, {b, "two\n"}, {a, " line\nnext\n"}, {b, "unfinished"}} {
		if n, err := w.to.Write([]byte(w.text)); err != nil || n != len(w.text) {
			t.Fatalf("Write(%q) = %d, %v", w.text, n, err)
		}
	}
	want := []string{"[b] two", "[a] one line", "[a] next", ""}
	if got := strings.Split(out.String(), "\n"); !slices.Equal(got, want) {
		t.Errorf("wrote %q, want %q", got, want)
	}
}
