package fence

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type reconcileKey struct{}

func TestFencesReconcilesAndEventsOnceTheLeaseLapsed(t *testing.T) {
	var got []string
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.Path)
	}))
	defer server.Close()
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := New("org-operator-system", "lock", 10*time.Second)
	f.now = func() time.Time { return clock }
	f.fromReconcile = func(ctx context.Context) bool { return ctx.Value(reconcileKey{}) != nil }
	client := &http.Client{Transport: f.Wrap(http.DefaultTransport)}
	reconcile := context.WithValue(context.Background(), reconcileKey{}, true)
	send := func(ctx context.Context, method, path string) error {
		req, _ := http.NewRequestWithContext(ctx, method, server.URL+path, strings.NewReader("{}"))
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	const lease = "/apis/coordination.k8s.io/v1/namespaces/org-operator-system/leases/lock"
	const patch = "/apis/tenancy.orgoperator.io/v1alpha1/organizations/acme"
	const event = "/api/v1/namespaces/default/events"

	// A replica that never led is not fenced, however old.
	clock = clock.Add(time.Hour)
	if err := send(reconcile, http.MethodPatch, patch); err != nil {
		t.Fatalf("a replica that never led: %v", err)
	}

	if err := send(context.Background(), http.MethodPut, lease); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(9 * time.Second)
	if err := send(reconcile, http.MethodPatch, patch); err != nil {
		t.Fatalf("within the renew deadline: %v", err)
	}

	clock = clock.Add(2 * time.Second) // 11 s since the renewal
	for _, tc := range []struct {
		ctx          context.Context
		method, path string
	}{{reconcile, http.MethodPatch, patch}, {reconcile, http.MethodDelete, patch}, {context.Background(), http.MethodPost, event}} {
		if err := send(tc.ctx, tc.method, tc.path); err == nil || !strings.Contains(err.Error(), "another replica may lead") {
			t.Errorf("%s %s after the lease lapsed: err = %v, want it fenced", tc.method, tc.path, err)
		}
	}
	// Webhooks (no reconcile), reads and the renewal itself go through.
	if err := send(context.Background(), http.MethodPatch, patch); err != nil {
		t.Errorf("a webhook's write: %v", err)
	}
	if err := send(reconcile, http.MethodGet, patch); err != nil {
		t.Errorf("a read: %v", err)
	}
	if err := send(context.Background(), http.MethodPut, lease); err != nil {
		t.Fatal(err)
	}
	if err := send(reconcile, http.MethodPatch, patch); err != nil {
		t.Errorf("after the next renewal: %v", err)
	}
	// Never led, lease, within, webhook, read, lease, after: the three fenced never left.
	if len(got) != 7 {
		t.Errorf("the server got %d requests, want 7: %v", len(got), got)
	}
}
