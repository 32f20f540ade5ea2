package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

func TestSoftMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name, containerLimit, goMemLimit string
		want                             int64
		wantOK                           bool
	}{
		{"90 % of the container's limit", "268435456", "", 241591905, true},
		{"GOMEMLIMIT wins", "268435456", "200MiB", 0, false},
		{"no limit", "", "", 0, false},
		{"not a number", "256Mi", "", 0, false},
		{"zero", "0", "", 0, false},
	} {
		got, ok := softMemoryLimit(tc.containerLimit, tc.goMemLimit)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("%s: softMemoryLimit(%q, %q) = %d, %v; want %d, %v", tc.name, tc.containerLimit, tc.goMemLimit, got, ok, tc.want, tc.wantOK)
		}
	}
}

// A manager started while the API server is away waits for it, however long, rather than exit.
func TestWaitForAPIServerWaitsUntilItAnswers(t *testing.T) {
	var calls atomic.Int32
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, `{"major":"1","minor":"37","gitVersion":"v1.37.2"}`)
	}))
	defer server.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := waitForAPIServer(ctx, &rest.Config{Host: server.URL}); err != nil {
		t.Fatalf("waitForAPIServer: %v", err)
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("the API server was asked %d times, want 4 (three refusals, then the answer)", n)
	}

	cancel()
	server.Close()
	if err := waitForAPIServer(ctx, &rest.Config{Host: server.URL}); err == nil {
		t.Error("waitForAPIServer returned nil after its context ended with no API server")
	}
}

// On SIGTERM the manager is not ready at once, and stops only after the delay.
func TestDrainOnSignal(t *testing.T) {
	signalled, signal := context.WithCancel(context.Background())
	ctx, draining := drainOnSignal(signalled, 200*time.Millisecond)
	if draining.Load() || ctx.Err() != nil {
		t.Fatal("draining before any signal")
	}
	signal()
	start := time.Now()
	for !draining.Load() {
		if time.Since(start) > 5*time.Second {
			t.Fatal("not draining 5 s after the signal")
		}
		time.Sleep(time.Millisecond)
	}
	if ctx.Err() != nil {
		t.Fatal("stopped at once: the delay was skipped")
	}
	<-ctx.Done()
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Errorf("stopped %v after the signal, want about 200ms", waited)
	}
}
