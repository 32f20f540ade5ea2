package balancer

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// replica serves its name on / and its readiness on /readyz.
func replica(t *testing.T, name string, ready *atomic.Bool) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" && !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	return s
}

func get(t *testing.T, addr string) (string, error) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestForwardsOnlyToReadyBackends(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var aReady, bReady atomic.Bool
	aReady.Store(true)
	a, b := replica(t, "a", &aReady), replica(t, "b", &bReady)
	lb, err := Listen(ctx, "127.0.0.1:0", Options{ProbePeriod: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	addr := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	lb.SetBackends(ctx, Backend{Addr: addr(a), ReadyURL: a.URL + "/readyz"}, Backend{Addr: addr(b), ReadyURL: b.URL + "/readyz"})
	eventually(t, "a ready", func() bool { return len(lb.Ready()) == 1 })

	for range 6 {
		if got, err := get(t, lb.Addr()); err != nil || got != "a" {
			t.Fatalf("got %q, %v; want a: b is not ready", got, err)
		}
	}

	bReady.Store(true)
	eventually(t, "both ready", func() bool { return len(lb.Ready()) == 2 })
	seen := map[string]int{}
	for range 6 {
		got, err := get(t, lb.Addr())
		if err != nil {
			t.Fatal(err)
		}
		seen[got]++
	}
	if seen["a"] != 3 || seen["b"] != 3 {
		t.Fatalf("want connections in turn, got %v", seen)
	}

	a.Close() // a dies: its probe fails, and everything goes to b
	eventually(t, "a out", func() bool { r := lb.Ready(); return len(r) == 1 && r[0] == addr(b) })
	for range 4 {
		if got, err := get(t, lb.Addr()); err != nil || got != "b" {
			t.Fatalf("got %q, %v; want b", got, err)
		}
	}
}

func TestRefusesWhenNoBackendIsReady(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lb, err := Listen(ctx, "127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := get(t, lb.Addr()); err == nil {
		t.Fatal("a request with no backend succeeded")
	}
	if lb.Refused.Load() != 1 {
		t.Fatalf("refused = %d, want 1", lb.Refused.Load())
	}
}
