package main

import (
	"context"
	"fmt"
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

// quotaBurst creates one organization whose namespaces share an organization-wide quota of
// -quota-limit pods, fires -quota-burst pod creations at once over its namespaces, and measures
// how many the API server admitted (above the limit is overshoot: the operator splits the quota
// into per-namespace ResourceQuotas, and concurrent creations in several namespaces can each take
// the whole headroom), and how long until status.quotas.used is exact again.
func (b *bench) quotaBurst(ctx context.Context) error {
	ok, err := b.hasOrganizationQuota(ctx)
	if err != nil {
		return err
	}
	if !ok {
		reason := "not available yet: the Organization API has no org-wide quota (spec.quotas.organizationQuota)"
		logf("Scenario quota skipped: %s", reason)
		b.res.Skipped = append(b.res.Skipped, Skipped{Scenario: "quota-burst", Reason: reason})
		return nil
	}
	cfg := b.cfg
	cl := b.c.clients[agentCreate]
	name := "bench-quota"
	o := &orgModel{name: name, namespaces: []string{name}, members: map[string]*memberModel{}, pods: map[string]podModel{}}
	for j := 1; j < cfg.quotaNamespaces; j++ {
		o.namespaces = append(o.namespaces, fmt.Sprintf("%s-x%d", name, j))
	}
	b.world.mu.Lock()
	b.world.orgs[name] = o
	b.world.mu.Unlock()

	// Set up, untimed: the organization with its quota, its namespaces, and every namespace's
	// share of the quota computed by kube-controller-manager (the API server refuses pods in a
	// namespace whose quota has no status yet).
	setupStart := time.Now()
	deadline := setupStart.Add(cfg.phaseTimeout)
	org := newOrganization(name)
	org.Spec.Quotas = &tenancyv1alpha1.Quotas{OrganizationQuota: corev1.ResourceList{corev1.ResourcePods: *resource.NewQuantity(int64(cfg.quotaLimit), resource.DecimalSI)}}
	var retries atomic.Int64
	if err := retry(ctx, deadline, &retries, func() error { return cl.Create(ctx, org) }); err != nil {
		return fmt.Errorf("creating organization %s: %w", name, err)
	}
	for _, ns := range o.namespaces[1:] {
		if err := retry(ctx, deadline, &retries, func() error { return cl.Create(ctx, newNamespace(ns, name)) }); err != nil {
			return fmt.Errorf("creating namespace %s: %w", ns, err)
		}
	}
	for {
		ready, err := b.quotaSharesReady(ctx, o.namespaces)
		if err == nil && ready {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the quota shares of %s were not ready within %v (%v)", name, cfg.phaseTimeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	logf("Organization %s has its quota in %d namespaces (%.1fs)", name, len(o.namespaces), time.Since(setupStart).Seconds())
	if _, ok := b.waitQuiet(ctx, settleTimeout); !ok {
		logf("The operator did not go quiet before the quota burst")
	}

	pr := b.begin("quota-burst", fmt.Sprintf("%d pods created at once over %d namespaces of one organization with an org-wide quota of %d pods",
		cfg.quotaBurst, len(o.namespaces), cfg.quotaLimit), cfg.quotaBurst, "pod")
	var mu sync.Mutex
	outcomes := map[string]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range cfg.quotaBurst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ns := o.namespaces[i%len(o.namespaces)]
			pod := benchPod(ns, fmt.Sprintf("q%04d", i), 10, 16<<20)
			<-start
			err := cl.Create(ctx, pod)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				outcomes["admitted"]++
				b.world.mu.Lock()
				o.pods[ns+"/"+pod.Name] = podModel{cpuMilli: 10, memBytes: 16 << 20}
				b.world.mu.Unlock()
			case apierrors.IsForbidden(err):
				outcomes["refused: forbidden (exceeded quota)"]++
			default:
				code := 0
				if status, ok := err.(apierrors.APIStatus); ok {
					code = int(status.Status().Code)
				}
				outcomes[fmt.Sprintf("refused: %d %s", code, apierrors.ReasonForError(err))]++
			}
		}()
	}
	close(start)
	wg.Wait()
	burstDone := time.Since(pr.start)

	// Converged: the organization's usage and status.quotas.used count exactly the admitted pods.
	admitted := outcomes["admitted"]
	applied := make(chan struct{})
	close(applied)
	conv := b.poller.waitConverged(ctx, b.world, check{usage: true}, pr.start, cfg.phaseTimeout, false, applied)
	var used int64 = -1
	for {
		cur := &tenancyv1alpha1.Organization{}
		if err := b.c.clients[agentVerify].Get(ctx, client.ObjectKey{Name: name}, cur); err == nil && cur.Status.Quotas != nil {
			if q, ok := cur.Status.Quotas.Used[corev1.ResourcePods]; ok {
				used = q.Value()
			}
		}
		if used == int64(admitted) || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	usedExact := time.Since(pr.start)
	quietAt, quiet := b.waitQuiet(ctx, settleTimeout)
	pr.converged(conv, quiet)
	pr.p.Seconds = round2(max(conv.Seconds, usedExact.Seconds()))
	p := b.finish(pr, quietAt, false)
	overshoot := max(0, admitted-cfg.quotaLimit)
	p.Extra = map[string]any{
		"limit": cfg.quotaLimit, "burst": cfg.quotaBurst, "namespaces": len(o.namespaces),
		"outcomes": outcomes, "overshoot": overshoot, "statusQuotasUsedPods": used,
		"burstSeconds": round2(burstDone.Seconds()), "usedExactSeconds": round2(usedExact.Seconds()),
		"resourceQuotaWrites": p.Operator.ByRequest["update resourcequotas"] + p.Operator.ByRequest["patch resourcequotas"],
	}
	b.res.Bars = append(b.res.Bars, Bar{What: "quota-burst",
		Target: fmt.Sprintf("at most %d of %d concurrent pods admitted (org-wide quota)", cfg.quotaLimit, cfg.quotaBurst),
		Value:  float64(admitted), Unit: "pods admitted", Met: admitted <= cfg.quotaLimit})
	if used != int64(admitted) {
		p.Notes = append(p.Notes, fmt.Sprintf("status.quotas.used.pods is %d, %d pods were admitted", used, admitted))
	}
	return nil
}

// quotaSharesReady reports whether every namespace has its share of the organization quota with
// a status computed by kube-controller-manager.
func (b *bench) quotaSharesReady(ctx context.Context, namespaces []string) (bool, error) {
	for _, ns := range namespaces {
		rq := &corev1.ResourceQuota{}
		if err := b.c.clients[agentVerify].Get(ctx, client.ObjectKey{Namespace: ns, Name: organizationQuotaName}, rq); err != nil {
			return false, err
		}
		if len(rq.Spec.Hard) == 0 || len(rq.Status.Hard) == 0 {
			return false, nil
		}
	}
	return true, nil
}
