package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

// organizationQuotaName is the ResourceQuota that holds a namespace's share of the
// organization-wide quota (controllers.OrganizationQuotaName; not imported, so that the harness
// does not link the controllers).
const organizationQuotaName = "org-operator-organization"

// The charging webhooks, by the names the API server's admission metrics use.
const (
	podWebhook    = "vpod.tenancy.orgoperator.io"
	resizeWebhook = "vpodresize.tenancy.orgoperator.io"
	claimWebhook  = "vpvc.tenancy.orgoperator.io"
	appsWebhook   = "vcountapps.tenancy.orgoperator.io"
)

// Goals of the issue for the charging webhook's latency, as the client sees it.
const (
	latencyGoalAt1   = 50 * time.Millisecond
	latencyGoalAtMax = time.Second
)

// hasOrganizationQuota reports whether the Organization CRD has spec.quotas.organizationQuota.
func (b *bench) hasOrganizationQuota(ctx context.Context) (bool, error) {
	crd := &unstructured.Unstructured{}
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	if err := b.c.clients[agentVerify].Get(ctx, client.ObjectKey{Name: "organizations.tenancy.orgoperator.io"}, crd); err != nil {
		return false, err
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		if vm, ok := v.(map[string]any); ok {
			if _, found, _ := unstructured.NestedMap(vm, "schema", "openAPIV3Schema", "properties", "spec", "properties",
				"quotas", "properties", "organizationQuota"); found {
				return true, nil
			}
		}
	}
	return false, nil
}

// quotaBurst is the quota scenario. For each kind the organization-wide quota charges at creation
// (pods, persistent volume claims, Deployments) it creates one organization limited to
// -quota-limit of them over -quota-namespaces namespaces and fires -quota-burst creations at once:
// exactly the limit must be stored. Then -quota-burst in-place resizes of which exactly
// -quota-limit fit; the charging webhook's latency at concurrency 1; and a probe that deletes a
// pod of a full organization and creates one at once, -quota-probe times. A create refused while
// the organization had room counts against the target of zero, in every measurement.
func (b *bench) quotaBurst(ctx context.Context) error {
	ok, err := b.hasOrganizationQuota(ctx)
	if err != nil {
		return err
	}
	if !ok {
		reason := "not available yet: the Organization API has no org-wide quota (spec.quotas.organizationQuota)"
		logf("Scenario quota skipped: %s", reason)
		b.res.Skipped = append(b.res.Skipped, Skipped{Scenario: "quota", Reason: reason})
		return nil
	}
	cfg := b.cfg
	var errs []error
	refusedWithRoom := map[string]int{}
	measured := false
	skip := func(phase string, err error) {
		reason := "skipped: not supported by this API (" + firstLine(err.Error()) + ")"
		logf("Quota %s %s", phase, reason)
		b.res.Skipped = append(b.res.Skipped, Skipped{Scenario: phase, Reason: reason})
	}
	if cfg.quotaKinds["baseline"] {
		if err := b.quotaBaseline(ctx); err != nil {
			errs = append(errs, fmt.Errorf("quota-baseline: %w", err))
		}
	}
	for _, k := range burstKinds(cfg) {
		if !cfg.quotaKinds[k.key] {
			continue
		}
		r, err := b.quotaKindBurst(ctx, k)
		var unsupported *unsupportedError
		switch {
		case errors.As(err, &unsupported):
			skip(k.phase, unsupported.err)
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", k.phase, err))
			continue
		}
		measured = true
		refusedWithRoom[k.phase] = r.refusedWithRoom
		lat := latencyMs(r.shots, nil)
		b.res.Bars = append(b.res.Bars, Bar{What: fmt.Sprintf("quota-latency-%d-%s", cfg.quotaBurst, k.key),
			Target: fmt.Sprintf("p99 < %v, %s creation charged by the webhook, %d concurrent (client-side)", latencyGoalAtMax, k.unit, cfg.quotaBurst),
			Value:  lat.P99, Unit: "ms p99", Met: lat.P99 < float64(latencyGoalAtMax.Milliseconds())})
	}
	steps := []struct {
		key, phase string
		run        func(context.Context) (int, error)
	}{
		{"resize", "quota-resize", b.quotaResize},
		{"latency", "quota-latency-1", b.quotaLatency},
		{"probe", "quota-probe", b.quotaProbe},
	}
	for _, s := range steps {
		if !cfg.quotaKinds[s.key] {
			continue
		}
		n, err := s.run(ctx)
		var unsupported *unsupportedError
		switch {
		case errors.As(err, &unsupported):
			skip(s.phase, unsupported.err)
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", s.phase, err))
			continue
		}
		measured = true
		refusedWithRoom[s.phase] = n
	}
	if measured {
		total := 0
		for _, n := range refusedWithRoom {
			total += n
		}
		b.res.Bars = append(b.res.Bars, Bar{What: "quota-refused-with-room",
			Target: fmt.Sprintf("0 creations or resizes refused while the organization had room (%s)", formatInts(refusedWithRoom)),
			Value:  float64(total), Unit: "refused", Met: total == 0})
	}
	return errors.Join(errs...)
}

// unsupportedError is the API server refusing an organization's quota as invalid: this version of
// the API does not accept the resource in organizationQuota.
type unsupportedError struct{ err error }

func (e *unsupportedError) Error() string { return e.err.Error() }

// quotaOrganization creates an organization limited to hard with -quota-namespaces namespaces (its
// home namespace and the others joined by label), adds it to the world, and waits until every
// namespace's ResourceQuota has a status for every resource of hard (the API server refuses
// objects in a namespace whose quota has no status yet), the organization's status shows hard,
// and the operator is quiet.
func (b *bench) quotaOrganization(ctx context.Context, name string, hard corev1.ResourceList) (*orgModel, error) {
	cfg := b.cfg
	cl := b.c.clients[agentCreate]
	o := &orgModel{name: name, namespaces: []string{name}, members: map[string]*memberModel{}, pods: map[string]podModel{}}
	for j := 1; j < cfg.quotaNamespaces; j++ {
		o.namespaces = append(o.namespaces, fmt.Sprintf("%s-x%d", name, j))
	}
	start := time.Now()
	deadline := start.Add(cfg.phaseTimeout)
	org := newOrganization(name)
	org.Spec.Quotas = &tenancyv1alpha1.Quotas{OrganizationQuota: hard}
	var retries atomic.Int64
	err := cl.Create(ctx, org)
	if apierrors.IsInvalid(err) {
		return nil, &unsupportedError{err: err}
	}
	if err != nil && !apierrors.IsAlreadyExists(err) {
		if err := retry(ctx, deadline, &retries, func() error { return cl.Create(ctx, org.DeepCopy()) }); err != nil {
			return nil, fmt.Errorf("creating organization %s: %w", name, err)
		}
	}
	b.world.mu.Lock()
	o.created = time.Now()
	b.world.orgs[name] = o
	b.world.mu.Unlock()
	for _, ns := range o.namespaces[1:] {
		if err := retry(ctx, deadline, &retries, func() error { return cl.Create(ctx, newNamespace(ns, name)) }); err != nil {
			return nil, fmt.Errorf("creating namespace %s: %w", ns, err)
		}
	}
	for {
		ready, err := b.quotaReady(ctx, name, o.namespaces, hard)
		if err == nil && ready {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("the quotas of %s were not ready within %v (%v)", name, cfg.phaseTimeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	logf("Organization %s has its quota %s in %d namespaces (%.1fs)", name, formatList(hard), len(o.namespaces), time.Since(start).Seconds())
	if _, ok := b.waitQuiet(ctx, settleTimeout); !ok {
		logf("The operator did not go quiet after setting up %s", name)
	}
	return o, nil
}

// quotaReady reports whether every namespace's organization ResourceQuota has been computed by
// kube-controller-manager for every resource of hard, and the organization's status shows hard.
func (b *bench) quotaReady(ctx context.Context, org string, namespaces []string, hard corev1.ResourceList) (bool, error) {
	cl := b.c.clients[agentVerify]
	for _, ns := range namespaces {
		rq := &corev1.ResourceQuota{}
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: organizationQuotaName}, rq); err != nil {
			return false, err
		}
		for r := range hard {
			if _, ok := rq.Status.Hard[r]; !ok {
				return false, nil
			}
			if _, ok := rq.Status.Used[r]; !ok {
				return false, nil
			}
		}
	}
	o := &tenancyv1alpha1.Organization{}
	if err := cl.Get(ctx, client.ObjectKey{Name: org}, o); err != nil {
		return false, err
	}
	if o.Status.Quotas == nil {
		return false, nil
	}
	for r, q := range hard {
		if h, ok := o.Status.Quotas.Hard[r]; !ok || h.Cmp(q) != 0 {
			return false, nil
		}
	}
	return true, nil
}

// waitLedger waits until the organization's status.quotas.used shows want of resource and its
// ledger has no reservations left (every charge settled); it returns what it saw last.
func (b *bench) waitLedger(ctx context.Context, org string, res corev1.ResourceName, want resource.Quantity, deadline time.Time) (used string, reservations int) {
	used, reservations = "(none)", -1
	for {
		cur := &tenancyv1alpha1.Organization{}
		if err := b.c.clients[agentVerify].Get(ctx, client.ObjectKey{Name: org}, cur); err == nil && cur.Status.Quotas != nil {
			used = "(none)"
			if q, ok := cur.Status.Quotas.Used[res]; ok {
				used = q.String()
			}
			reservations = 0
			if l := cur.Status.Quotas.LedgerOrNil(); l != nil {
				reservations = len(l.Reservations)
			}
			if q, ok := cur.Status.Quotas.Used[res]; ok && q.Cmp(want) == 0 && reservations == 0 {
				return used, reservations
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return used, reservations
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// shot is one timed request of a measurement.
type shot struct {
	ns, name string
	took     time.Duration
	err      error
}

// fire prepares n requests, then sends them all at once and times each one.
func fire(n int, prepare func(i int) (ns, name string, send func() error)) []shot {
	shots := make([]shot, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		ns, name, send := prepare(i)
		shots[i].ns, shots[i].name = ns, name
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t := time.Now()
			err := send()
			shots[i].took, shots[i].err = time.Since(t), err
		}()
	}
	close(start)
	wg.Wait()
	return shots
}

// outcome names what became of a request.
func outcome(err error) string {
	if err == nil {
		return "admitted"
	}
	code := 0
	if status, ok := err.(apierrors.APIStatus); ok {
		code = int(status.Status().Code)
	}
	msg := err.Error()
	switch {
	case apierrors.IsForbidden(err) && strings.Contains(msg, "exceeded organization quota"):
		return "refused: 403 exceeded organization quota"
	case apierrors.IsForbidden(err) && strings.Contains(msg, "exceeded quota"):
		return "refused: 403 exceeded namespace quota"
	case apierrors.IsTooManyRequests(err):
		return "refused: 429 TooManyRequests"
	}
	return fmt.Sprintf("refused: %d %s", code, apierrors.ReasonForError(err))
}

// outcomes counts the shots by outcome, with one message of each kind of refusal.
func outcomes(shots []shot) (counts map[string]int, examples map[string]string) {
	counts, examples = map[string]int{}, map[string]string{}
	for _, s := range shots {
		o := outcome(s.err)
		counts[o]++
		if s.err != nil && examples[o] == "" {
			examples[o] = firstLine(s.err.Error())
		}
	}
	return counts, examples
}

// latencyMs is the percentiles, in milliseconds, of the shots keep selects (all when nil).
func latencyMs(shots []shot, keep func(shot) bool) Percentiles {
	var v []float64
	for _, s := range shots {
		if keep == nil || keep(s) {
			v = append(v, float64(s.took.Microseconds())/1000)
		}
	}
	return percentiles(v).round(round1)
}

func admitted(s shot) bool { return s.err == nil }
func refused(s shot) bool  { return s.err != nil }

// auditLatencyMs is the API server's own time for the harness's requests of one kind in the
// phase (audit log, received to response complete), in milliseconds.
func (b *bench) auditLatencyMs(pr *phaseRun, verb, res, sub string) Percentiles {
	_ = b.audit.refresh()
	var v []float64
	for _, r := range b.audit.between(pr.start, time.Now(), isAgent(agentCreate)) {
		if r.Verb == verb && r.Resource == res && r.Subresource == sub {
			v = append(v, float64(r.Latency.Microseconds())/1000)
		}
	}
	return percentiles(v).round(round1)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

func formatList(l corev1.ResourceList) string {
	parts := make([]string, 0, len(l))
	for k, q := range l {
		parts = append(parts, string(k)+": "+q.String())
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ", ") + "}"
}

// statusPatchLatencyMs is the API server's time for the operator's organization status patches
// in the phase (the webhook's ledger writes and the controller's): what each charge waits for.
func statusPatchLatencyMs(p *Phase) Percentiles {
	var v []float64
	for _, r := range p.records {
		if r.Verb == "patch" && r.Resource == "organizations" && r.Subresource == "status" {
			v = append(v, float64(r.Latency.Microseconds())/1000)
		}
	}
	return percentiles(v).round(round1)
}

// quotaMarkdown renders the quota scenario's measurements (the phases' Extra) as a table.
func quotaMarkdown(r *Result) string {
	var b strings.Builder
	for _, p := range r.Phases {
		if !strings.HasPrefix(p.Name, "quota-") || p.Extra == nil {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("\n### Organization-wide quota\n\n| Phase | Outcomes | Stored | Client latency (ms) p50 / p99 / max | API server (ms) p50 / p99 | Webhook (API server histogram) |\n|---|---|---|---|---|---|\n")
		}
		var x map[string]any
		data, _ := json.Marshal(p.Extra)
		_ = json.Unmarshal(data, &x)
		pct := func(v any) string {
			m, ok := v.(map[string]any)
			if !ok || m["n"] == nil || m["n"].(float64) == 0 {
				return "–"
			}
			return fmt.Sprintf("%.1f / %.1f / %.1f (n=%.0f)", m["p50"], m["p99"], m["max"], m["n"])
		}
		sub := func(v any, key string) any {
			if m, ok := v.(map[string]any); ok {
				if _, isPct := m["p50"]; !isPct {
					return m[key]
				}
			}
			return v
		}
		stored := "–"
		switch {
		case x["stored"] != nil:
			stored = fmt.Sprintf("%v of limit %v (overshoot %v, refused with room %v)", x["stored"], x["limit"], x["overshoot"], x["refusedWithRoom"])
		case x["resizedStored"] != nil:
			stored = fmt.Sprintf("%v resized, %v expected (refused with room %v)", x["resizedStored"], x["expected"], x["refusedWithRoom"])
		case x["storedAtEnd"] != nil:
			stored = fmt.Sprintf("%v of limit %v at the end; after a deletion %v; one more when full %v; refused with room %v",
				x["storedAtEnd"], x["limit"], formatAny(x["afterDeletion"]), formatAny(x["oneMoreWhenFull"]), x["refusedWithRoom"])
		case x["refusedWithRoom"] != nil:
			stored = fmt.Sprintf("refused with room %v", x["refusedWithRoom"])
		}
		hook := "–"
		if h, ok := x["webhookAdmission"].(map[string]any); ok && h["n"].(float64) > 0 {
			hook = fmt.Sprintf("%v: n=%v, mean %v ms, p50 %v, p99 %v", h["webhook"], h["n"], h["meanMs"], h["p50"], h["p99"])
		}
		outcome := formatAny(x["outcomes"])
		if p.Name == "quota-baseline" {
			for _, k := range []string{"sequential", "burst"} {
				fmt.Fprintf(&b, "| %s (%s) | %s | – | %s | %s | – |\n", p.Name, k, formatAny(sub(x["outcomes"], k)),
					pct(sub(x["latencyMs"], k)), pct(sub(x["apiServerLatencyMs"], k)))
			}
			for _, k := range []string{"consistent", "resourceVersion=0"} {
				fmt.Fprintf(&b, "| %s (list resourcequotas, %s) | – | – | %s | – | – |\n", p.Name, k, pct(sub(x["listResourceQuotasMs"], k)))
			}
			continue
		}
		if p.Name == "quota-probe" {
			fmt.Fprintf(&b, "| %s | – | %s | after a deletion %s; one more %s | – | – |\n", p.Name, stored,
				pct(sub(x["latencyMs"], "afterDeletion")), pct(sub(x["latencyMs"], "oneMoreWhenFull")))
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", p.Name, outcome, stored, pct(sub(x["latencyMs"], "all")), pct(x["apiServerLatencyMs"]), hook)
	}
	return b.String()
}

// formatAny renders a JSON object of counts as "k: v, ...", sorted.
func formatAny(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Sprint(v)
	}
	parts := make([]string, 0, len(m))
	for k, n := range m {
		parts = append(parts, fmt.Sprintf("%s: %v", k, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
