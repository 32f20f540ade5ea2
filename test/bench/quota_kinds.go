package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// burstKind is a kind of object the organization-wide quota charges at creation.
type burstKind struct {
	key      string // its -quota-kinds entry
	phase    string // the phase's and the bar's name
	org      string
	resource corev1.ResourceName // the limited resource
	unit     string
	webhook  string // the charging webhook
	apiRes   string // the resource, as the audit log names it
	object   func(ns, name string) client.Object
	stored   func(ctx context.Context, c client.Client, ns string) (int, error)
	pod      bool // pods count in the world's usage
}

func burstKinds(cfg *config) []burstKind {
	return []burstKind{
		{key: "pods", phase: "quota-burst-pods", org: "bench-quota-pods", resource: corev1.ResourcePods, unit: "pod",
			webhook: podWebhook, apiRes: "pods", pod: true,
			object: func(ns, name string) client.Object { return benchPod(ns, name, 10, 16<<20) },
			stored: func(ctx context.Context, c client.Client, ns string) (int, error) {
				l := &corev1.PodList{}
				err := c.List(ctx, l, client.InNamespace(ns))
				return len(l.Items), err
			}},
		{key: "pvcs", phase: "quota-burst-pvcs", org: "bench-quota-pvcs", resource: corev1.ResourcePersistentVolumeClaims, unit: "claim",
			webhook: claimWebhook, apiRes: "persistentvolumeclaims", object: benchClaim,
			stored: func(ctx context.Context, c client.Client, ns string) (int, error) {
				l := &corev1.PersistentVolumeClaimList{}
				err := c.List(ctx, l, client.InNamespace(ns))
				return len(l.Items), err
			}},
		{key: "deployments", phase: "quota-burst-deployments", org: "bench-quota-deploys", resource: "count/deployments.apps", unit: "deployment",
			webhook: appsWebhook, apiRes: "deployments", object: benchDeployment,
			stored: func(ctx context.Context, c client.Client, ns string) (int, error) {
				l := &appsv1.DeploymentList{}
				err := c.List(ctx, l, client.InNamespace(ns))
				return len(l.Items), err
			}},
	}
}

// benchClaim is a claim nothing provisions: it stays Pending.
func benchClaim(ns, name string) client.Object {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "bench"}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
}

// benchDeployment has no replicas: it makes an empty ReplicaSet and no pods.
func benchDeployment(ns, name string) client.Object {
	labels := map[string]string{"app": "bench", "bench-deployment": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "bench"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/bench:1",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")}}}}},
			},
		},
	}
}

// requestsPod is a Pending pod with requests and no limits, so that a resize may raise them.
func requestsPod(ns, name string, cpuMilli, memBytes int64) *corev1.Pod {
	p := benchPod(ns, name, cpuMilli, memBytes)
	p.Spec.Containers[0].Resources.Limits = nil
	return p
}

// burstResult is what one kind's burst measured.
type burstResult struct {
	shots           []shot
	stored          int
	refusedWithRoom int
}

// quotaKindBurst fires -quota-burst creations of one kind at once over the namespaces of an
// organization limited to -quota-limit of them, and counts what the API server stored.
func (b *bench) quotaKindBurst(ctx context.Context, k burstKind) (*burstResult, error) {
	cfg := b.cfg
	limit := cfg.quotaLimit
	o, err := b.quotaOrganization(ctx, k.org, corev1.ResourceList{k.resource: *resource.NewQuantity(int64(limit), resource.DecimalSI)})
	if err != nil {
		return nil, err
	}
	cl := b.c.clients[agentCreate]
	hist0, _ := b.webhookHistogram(ctx)
	pr := b.begin(k.phase, fmt.Sprintf("%d %ss created at once over %d namespaces of one organization limited to %s: %d",
		cfg.quotaBurst, k.unit, len(o.namespaces), k.resource, limit), cfg.quotaBurst, k.unit)
	shots := fire(cfg.quotaBurst, func(i int) (string, string, func() error) {
		ns := o.namespaces[i%len(o.namespaces)]
		obj := k.object(ns, fmt.Sprintf("q%04d", i))
		return ns, obj.GetName(), func() error { return cl.Create(ctx, obj) }
	})
	burstDone := time.Since(pr.start)
	hist1, herr := b.webhookHistogram(ctx)
	counts, examples := outcomes(shots)
	if k.pod {
		b.world.mu.Lock()
		for _, s := range shots {
			if s.err == nil {
				o.pods[s.ns+"/"+s.name] = podModel{cpuMilli: 10, memBytes: 16 << 20}
			}
		}
		b.world.mu.Unlock()
	}

	// What the API server stores, and how long until the ledger and status.quotas.used say so.
	stored, byNamespace := 0, map[string]int{}
	for _, ns := range o.namespaces {
		n, err := k.stored(ctx, b.c.clients[agentVerify], ns)
		if err != nil {
			return nil, fmt.Errorf("listing %ss in %s: %w", k.unit, ns, err)
		}
		stored += n
		byNamespace[ns] = n
	}
	used, reservations, usedExact, p := b.finishSettled(ctx, pr, k.org, k.resource, *resource.NewQuantity(int64(stored), resource.DecimalSI))

	nRefused := cfg.quotaBurst - counts["admitted"]
	r := &burstResult{shots: shots, stored: stored}
	if stored < limit {
		// Every refusal came while there was room for at least the ones missing now.
		r.refusedWithRoom = min(nRefused, limit-stored)
	}
	p.Extra = map[string]any{
		"resource": k.resource, "limit": limit, "burst": cfg.quotaBurst, "namespaces": len(o.namespaces),
		"outcomes": counts, "refusals": examples, "stored": stored, "storedByNamespace": byNamespace,
		"overshoot": max(0, stored-limit), "refusedWithRoom": r.refusedWithRoom,
		"statusQuotasUsed": used, "ledgerReservationsLeft": reservations,
		"burstSeconds": round2(burstDone.Seconds()), "usedExactSeconds": round2(usedExact.Seconds()),
		"latencyMs":            map[string]Percentiles{"all": latencyMs(shots, nil), "admitted": latencyMs(shots, admitted), "refused": latencyMs(shots, refused)},
		"apiServerLatencyMs":   b.auditLatencyMs(pr, "create", k.apiRes, ""),
		"statusPatchLatencyMs": statusPatchLatencyMs(p),
	}
	if herr == nil {
		p.Extra["webhookAdmission"] = hist1.since(hist0).summary(k.webhook)
	}
	if counts["admitted"] != stored {
		p.Notes = append(p.Notes, fmt.Sprintf("%d creations were admitted, %d %ss are stored", counts["admitted"], stored, k.unit))
	}
	if used != fmt.Sprint(stored) || reservations != 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("status.quotas.used[%s] is %s with %d reservations left, %d are stored", k.resource, used, reservations, stored))
	}
	b.res.Bars = append(b.res.Bars, Bar{What: k.phase,
		Target: fmt.Sprintf("exactly %d of %d concurrent %ss stored (%s limited to %d over %d namespaces)",
			limit, cfg.quotaBurst, k.unit, k.resource, limit, len(o.namespaces)),
		Value: float64(stored), Unit: k.unit + "s stored", Met: stored == limit})
	logf("Quota %s: %d of %d stored (limit %d); outcomes %s; latency p50 %.1f ms, p99 %.1f ms",
		k.phase, stored, cfg.quotaBurst, limit, formatInts(counts), latencyMs(shots, nil).P50, latencyMs(shots, nil).P99)
	return r, nil
}

// Resize measurement: -quota-burst pods of resizeFrom cpu each, in an organization limited to
// their total plus room for exactly -quota-limit increases of resizeBy; then every pod is resized
// at once, through pods/resize, to resizeFrom+resizeBy.
const (
	resizeFrom = 10 // millicpu
	resizeBy   = 20 // millicpu
	resizeMem  = 16 << 20
)

func (b *bench) quotaResize(ctx context.Context) (int, error) {
	cfg := b.cfg
	n, fit := cfg.quotaBurst, cfg.quotaLimit
	limitMilli := int64(n*resizeFrom + fit*resizeBy)
	o, err := b.quotaOrganization(ctx, "bench-quota-resize", corev1.ResourceList{
		corev1.ResourceRequestsCPU: *resource.NewMilliQuantity(limitMilli, resource.DecimalSI)})
	if err != nil {
		return 0, err
	}
	cl := b.c.clients[agentCreate]
	deadline := time.Now().Add(cfg.phaseTimeout)
	pods := make([]*corev1.Pod, n)
	var retries atomic.Int64
	if err := parallel(ctx, cfg.creators, n, func(ctx context.Context, i int) error {
		ns := o.namespaces[i%len(o.namespaces)]
		pods[i] = requestsPod(ns, fmt.Sprintf("r%04d", i), resizeFrom, resizeMem)
		b.world.mu.Lock()
		o.pods[ns+"/"+pods[i].Name] = podModel{cpuMilli: resizeFrom, memBytes: resizeMem}
		b.world.mu.Unlock()
		return retry(ctx, deadline, &retries, func() error { return cl.Create(ctx, pods[i].DeepCopy()) })
	}); err != nil {
		return 0, fmt.Errorf("creating the pods to resize: %w", err)
	}
	before, err := b.storedCPU(ctx, o.namespaces)
	if err != nil {
		return 0, err
	}
	if used, res := b.waitLedger(ctx, o.name, corev1.ResourceRequestsCPU, *resource.NewMilliQuantity(before.total, resource.DecimalSI), deadline); res != 0 {
		logf("The ledger of %s did not settle before the resizes (used %s, %d reservations)", o.name, used, res)
	}
	if _, ok := b.waitQuiet(ctx, settleTimeout); !ok {
		logf("The operator did not go quiet before the resizes")
	}
	headroom := limitMilli - before.total
	expected := int(min(int64(n), max(0, headroom/resizeBy)))

	hist0, _ := b.webhookHistogram(ctx)
	pr := b.begin("quota-resize", fmt.Sprintf("%d in-place resizes (pods/resize, +%dm cpu each) at once over %d namespaces, room for %d (requests.cpu %dm, %dm used)",
		n, resizeBy, len(o.namespaces), expected, limitMilli, before.total), n, "resize")
	shots := fire(n, func(i int) (string, string, func() error) {
		orig := pods[i]
		p := orig.DeepCopy()
		p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = *resource.NewMilliQuantity(resizeFrom+resizeBy, resource.DecimalSI)
		patch := client.StrategicMergeFrom(orig)
		return p.Namespace, p.Name, func() error { return cl.SubResource("resize").Patch(ctx, p, patch) }
	})
	burstDone := time.Since(pr.start)
	hist1, herr := b.webhookHistogram(ctx)
	counts, examples := outcomes(shots)
	b.world.mu.Lock()
	for _, s := range shots {
		if s.err == nil {
			o.pods[s.ns+"/"+s.name] = podModel{cpuMilli: resizeFrom + resizeBy, memBytes: resizeMem}
		}
	}
	b.world.mu.Unlock()
	after, err := b.storedCPU(ctx, o.namespaces)
	if err != nil {
		return 0, err
	}
	resized := after.byCPU[resizeFrom+resizeBy]
	used, reservations, usedExact, p := b.finishSettled(ctx, pr, o.name, corev1.ResourceRequestsCPU, *resource.NewMilliQuantity(after.total, resource.DecimalSI))
	refusedWithRoom := 0
	if resized < expected {
		refusedWithRoom = min(n-counts["admitted"], expected-resized)
	}
	p.Extra = map[string]any{
		"limitMilliCPU": limitMilli, "usedBeforeMilliCPU": before.total, "headroomMilliCPU": headroom, "resizeByMilliCPU": resizeBy,
		"resizes": n, "expected": expected, "resizedStored": resized, "usedAfterMilliCPU": after.total,
		"podsByCPUMilli": after.byCPU, "outcomes": counts, "refusals": examples,
		"overshoot": max(0, resized-expected), "refusedWithRoom": refusedWithRoom,
		"statusQuotasUsed": used, "ledgerReservationsLeft": reservations,
		"burstSeconds": round2(burstDone.Seconds()), "usedExactSeconds": round2(usedExact.Seconds()),
		"latencyMs":          map[string]Percentiles{"all": latencyMs(shots, nil), "admitted": latencyMs(shots, admitted), "refused": latencyMs(shots, refused)},
		"apiServerLatencyMs": b.auditLatencyMs(pr, "patch", "pods", "resize"),
	}
	if herr == nil {
		p.Extra["webhookAdmission"] = hist1.since(hist0).summary(resizeWebhook)
	}
	if counts["admitted"] != resized {
		p.Notes = append(p.Notes, fmt.Sprintf("%d resizes were admitted, %d pods are stored resized", counts["admitted"], resized))
	}
	b.res.Bars = append(b.res.Bars, Bar{What: "quota-resize",
		Target: fmt.Sprintf("exactly %d of %d concurrent resizes stored (+%dm cpu each, %dm of requests.cpu left)", expected, n, resizeBy, headroom),
		Value:  float64(resized), Unit: "pods resized", Met: resized == expected && after.total <= limitMilli})
	logf("Quota resize: %d of %d resized (expected %d); outcomes %s; latency p50 %.1f ms, p99 %.1f ms",
		resized, n, expected, formatInts(counts), latencyMs(shots, nil).P50, latencyMs(shots, nil).P99)
	return refusedWithRoom, nil
}

// cpuCount is the stored pods' cpu requests: their total, and how many pods request each amount.
type cpuCount struct {
	total int64
	byCPU map[int64]int
}

func (b *bench) storedCPU(ctx context.Context, namespaces []string) (cpuCount, error) {
	c := cpuCount{byCPU: map[int64]int{}}
	for _, ns := range namespaces {
		l := &corev1.PodList{}
		if err := b.c.clients[agentVerify].List(ctx, l, client.InNamespace(ns)); err != nil {
			return c, err
		}
		for _, p := range l.Items {
			m := int64(0)
			for _, ct := range p.Spec.Containers {
				m += ct.Resources.Requests.Cpu().MilliValue()
			}
			c.total += m
			c.byCPU[m]++
		}
	}
	return c, nil
}

// quotaLatency creates -quota-sequential pods one at a time in an organization with room for all
// of them: the charging webhook's latency at concurrency 1.
func (b *bench) quotaLatency(ctx context.Context) (int, error) {
	cfg := b.cfg
	const warmup = 3
	n := cfg.quotaSequential
	o, err := b.quotaOrganization(ctx, "bench-quota-latency", corev1.ResourceList{
		corev1.ResourcePods: *resource.NewQuantity(int64(max(1000, 2*(n+warmup))), resource.DecimalSI)})
	if err != nil {
		return 0, err
	}
	cl := b.c.clients[agentCreate]
	create := func(i int) shot {
		ns := o.namespaces[i%len(o.namespaces)]
		p := benchPod(ns, fmt.Sprintf("s%04d", i), 10, 16<<20)
		t := time.Now()
		err := cl.Create(ctx, p)
		s := shot{ns: ns, name: p.Name, took: time.Since(t), err: err}
		if err == nil {
			b.world.mu.Lock()
			o.pods[ns+"/"+p.Name] = podModel{cpuMilli: 10, memBytes: 16 << 20}
			b.world.mu.Unlock()
		}
		return s
	}
	warm := make([]shot, warmup)
	for i := range warm {
		warm[i] = create(i)
	}
	hist0, _ := b.webhookHistogram(ctx)
	pr := b.begin("quota-latency-1", fmt.Sprintf("%d pods created one at a time in an organization with room for all (after %d untimed)", n, warmup), n, "pod")
	shots := make([]shot, n)
	for i := range shots {
		shots[i] = create(warmup + i)
	}
	seqDone := time.Since(pr.start)
	hist1, herr := b.webhookHistogram(ctx)
	counts, examples := outcomes(shots)
	_, quietAt := b.settle(ctx, pr)
	p := b.finish(pr, quietAt, false)
	lat := latencyMs(shots, nil)
	wc, _ := outcomes(warm)
	refusedWithRoom := n - counts["admitted"] + warmup - wc["admitted"]
	p.Extra = map[string]any{
		"creates": n, "outcomes": counts, "refusals": examples, "refusedWithRoom": refusedWithRoom,
		"seconds": round2(seqDone.Seconds()), "latencyMs": lat, "warmupLatencyMs": latencyMs(warm, nil),
		"apiServerLatencyMs":   b.auditLatencyMs(pr, "create", "pods", ""),
		"statusPatchLatencyMs": statusPatchLatencyMs(p),
	}
	if herr == nil {
		p.Extra["webhookAdmission"] = hist1.since(hist0).summary(podWebhook)
	}
	b.res.Bars = append(b.res.Bars, Bar{What: "quota-latency-1",
		Target: fmt.Sprintf("p99 < %v, pod creation charged by the webhook, one at a time (client-side)", latencyGoalAt1),
		Value:  lat.P99, Unit: "ms p99", Met: lat.P99 < float64(latencyGoalAt1.Milliseconds())})
	logf("Quota latency at 1: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d creates, outcomes %s)", lat.P50, lat.P99, lat.Max, n, formatInts(counts))
	return refusedWithRoom, nil
}

// quotaProbe fills an organization to its limit, then -quota-probe times deletes one pod, waits
// until the API server no longer has it, and at once creates one in another namespace: that
// creation must be admitted (the organization has room), and one more must be refused (it is full
// again). A refused creation is retried until admitted, so that every round starts full.
func (b *bench) quotaProbe(ctx context.Context) (int, error) {
	cfg := b.cfg
	const limit = 10
	o, err := b.quotaOrganization(ctx, "bench-quota-probe", corev1.ResourceList{corev1.ResourcePods: *resource.NewQuantity(limit, resource.DecimalSI)})
	if err != nil {
		return 0, err
	}
	cl := b.c.clients[agentCreate]
	seq := 0
	var live []probePod
	create := func(ns string) shot {
		p := benchPod(ns, fmt.Sprintf("p%04d", seq), 10, 16<<20)
		seq++
		t := time.Now()
		err := cl.Create(ctx, p)
		s := shot{ns: ns, name: p.Name, took: time.Since(t), err: err}
		if err == nil {
			live = append(live, probePod{ns, p.Name})
			b.world.mu.Lock()
			o.pods[ns+"/"+p.Name] = podModel{cpuMilli: 10, memBytes: 16 << 20}
			b.world.mu.Unlock()
		}
		return s
	}
	pr := b.begin("quota-probe", fmt.Sprintf("Fill an organization to its limit of %d pods, then %d times: delete a pod, wait until it is gone, create one in another namespace at once, and one more",
		limit, cfg.quotaProbe), cfg.quotaProbe, "round")
	refusedWithRoom, fillRefused, overLimit := 0, 0, 0
	var examples []string
	note := func(s shot) {
		if len(examples) < 5 {
			examples = append(examples, fmt.Sprintf("%s/%s after %.1f ms: %s", s.ns, s.name, float64(s.took.Microseconds())/1000, firstLine(s.err.Error())))
		}
	}
	for i := 0; len(live) < limit && i < 3*limit; i++ {
		if s := create(o.namespaces[i%len(o.namespaces)]); s.err != nil {
			fillRefused++
			refusedWithRoom++
			note(s)
		}
	}
	if len(live) < limit {
		return refusedWithRoom, fmt.Errorf("could not fill %s to %d pods: %d admitted", o.name, limit, len(live))
	}
	var afterDelete, extra []shot
	var gone, recovered []float64
	for round := range cfg.quotaProbe {
		victim := live[0]
		live = live[1:]
		t := time.Now()
		err := cl.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: victim.ns, Name: victim.name}}, client.GracePeriodSeconds(0))
		if err != nil && !apierrors.IsNotFound(err) {
			return refusedWithRoom, fmt.Errorf("deleting %s/%s: %w", victim.ns, victim.name, err)
		}
		for {
			err := b.c.clients[agentVerify].Get(ctx, client.ObjectKey{Namespace: victim.ns, Name: victim.name}, &corev1.Pod{})
			if apierrors.IsNotFound(err) {
				break
			}
			if time.Since(t) > 30*time.Second || ctx.Err() != nil {
				return refusedWithRoom, fmt.Errorf("pod %s/%s still there 30 s after its deletion", victim.ns, victim.name)
			}
			time.Sleep(5 * time.Millisecond)
		}
		gone = append(gone, float64(time.Since(t).Microseconds())/1000)
		b.world.mu.Lock()
		delete(o.pods, victim.ns+"/"+victim.name)
		b.world.mu.Unlock()

		ns := o.namespaces[(round+1)%len(o.namespaces)]
		s := create(ns)
		afterDelete = append(afterDelete, s)
		if s.err != nil {
			refusedWithRoom++
			note(s)
			start := time.Now()
			for s.err != nil && time.Since(start) < 15*time.Second && ctx.Err() == nil {
				time.Sleep(50 * time.Millisecond)
				s = create(ns)
			}
			if s.err != nil {
				return refusedWithRoom, fmt.Errorf("no pod admitted in %s 15 s after a deletion: %v", o.name, s.err)
			}
			recovered = append(recovered, float64(time.Since(start).Milliseconds()))
		}
		// The organization is full again: one more must be refused.
		x := create(o.namespaces[(round+2)%len(o.namespaces)])
		extra = append(extra, x)
		if x.err == nil {
			overLimit++
		}
	}
	stored := 0
	for _, ns := range o.namespaces {
		l := &corev1.PodList{}
		if err := b.c.clients[agentVerify].List(ctx, l, client.InNamespace(ns)); err != nil {
			return refusedWithRoom, err
		}
		stored += len(l.Items)
	}
	_, quietAt := b.settle(ctx, pr)
	p := b.finish(pr, quietAt, false)
	ac, _ := outcomes(afterDelete)
	xc, _ := outcomes(extra)
	p.Extra = map[string]any{
		"limit": limit, "rounds": cfg.quotaProbe, "refusedWithRoom": refusedWithRoom, "refusedWhileFilling": fillRefused,
		"afterDeletion": ac, "oneMoreWhenFull": xc, "admittedOverLimit": overLimit, "storedAtEnd": stored,
		"refusals": examples, "deletionGoneMs": percentiles(gone).round(round1),
		"msUntilAdmittedAfterARefusal": percentiles(recovered).round(round1),
		"latencyMs":                    map[string]Percentiles{"afterDeletion": latencyMs(afterDelete, nil), "oneMoreWhenFull": latencyMs(extra, nil)},
	}
	if overLimit > 0 || stored != limit {
		p.Notes = append(p.Notes, fmt.Sprintf("%d creations admitted past the limit of %d; %d pods stored at the end", overLimit, limit, stored))
	}
	b.res.Bars = append(b.res.Bars, Bar{What: "quota-probe-over-limit",
		Target: fmt.Sprintf("0 of %d creations in a full organization admitted (limit %d pods)", cfg.quotaProbe, limit),
		Value:  float64(overLimit), Unit: "admitted", Met: overLimit == 0 && stored == limit})
	logf("Quota probe: %d of %d creations right after a deletion refused (%d while filling); %d admitted past the limit",
		ac["refused: 403 exceeded organization quota"], cfg.quotaProbe, fillRefused, overLimit)
	return refusedWithRoom, nil
}

type probePod struct{ ns, name string }

// quotaBaseline times the same pod creations in a namespace of no organization, which no
// charging webhook sees: -quota-sequential one at a time, then -quota-burst at once. What the
// API server and etcd take on this machine without the webhook.
func (b *bench) quotaBaseline(ctx context.Context) error {
	cfg := b.cfg
	cl := b.c.clients[agentCreate]
	const ns = "bench-quota-baseline"
	var retries atomic.Int64
	if err := retry(ctx, time.Now().Add(time.Minute), &retries, func() error {
		return cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}); err != nil {
		return err
	}
	for i := range 3 { // warm-up, as in quota-latency-1
		_ = cl.Create(ctx, benchPod(ns, fmt.Sprintf("w%04d", i), 10, 16<<20))
	}
	pr := b.begin("quota-baseline", fmt.Sprintf("Without the webhook (a namespace of no organization): %d pods created one at a time, then %d at once",
		cfg.quotaSequential, cfg.quotaBurst), cfg.quotaSequential+cfg.quotaBurst, "pod")
	seq := make([]shot, cfg.quotaSequential)
	for i := range seq {
		p := benchPod(ns, fmt.Sprintf("s%04d", i), 10, 16<<20)
		t := time.Now()
		err := cl.Create(ctx, p)
		seq[i] = shot{ns: ns, name: p.Name, took: time.Since(t), err: err}
	}
	burst := fire(cfg.quotaBurst, func(i int) (string, string, func() error) {
		p := benchPod(ns, fmt.Sprintf("q%04d", i), 10, 16<<20)
		return ns, p.Name, func() error { return cl.Create(ctx, p) }
	})
	// What the webhook asks of the API server for each charge: a list of the namespace's
	// ResourceQuotas, consistent (at etcd's current revision), and for comparison from the watch
	// cache as it is (resourceVersion 0); each right after a pod creation, as in a webhook's
	// admission, so that etcd's revision has just moved past the quotas' watch cache.
	lists := map[string][]float64{}
	for _, rv := range []string{"", "0"} {
		key := "consistent"
		if rv != "" {
			key = "resourceVersion=0"
		}
		for i := range 30 {
			_ = cl.Create(ctx, benchPod(ns, fmt.Sprintf("l%s%04d", map[string]string{"": "c", "0": "z"}[rv], i), 10, 16<<20))
			t := time.Now()
			err := cl.List(ctx, &corev1.ResourceQuotaList{}, client.InNamespace(ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
			if err == nil {
				lists[key] = append(lists[key], float64(time.Since(t).Microseconds())/1000)
			}
		}
	}
	took := time.Since(pr.start)
	quietAt, quiet := b.waitQuiet(ctx, settleTimeout)
	pr.converged(convergence{Converged: true, Seconds: took.Seconds()}, quiet)
	p := b.finish(pr, quietAt, false)
	sc, _ := outcomes(seq)
	bc, _ := outcomes(burst)
	_ = b.audit.refresh()
	var seqAudit, burstAudit []float64
	for _, r := range b.audit.between(pr.start, quietAt, isAgent(agentCreate)) {
		if r.Verb == "create" && r.Resource == "pods" && r.Namespace == ns {
			ms := float64(r.Latency.Microseconds()) / 1000
			switch {
			case strings.HasPrefix(r.Name, "s"):
				seqAudit = append(seqAudit, ms)
			case strings.HasPrefix(r.Name, "q"):
				burstAudit = append(burstAudit, ms)
			}
		}
	}
	p.Extra = map[string]any{
		"namespace":          ns,
		"outcomes":           map[string]map[string]int{"sequential": sc, "burst": bc},
		"latencyMs":          map[string]Percentiles{"sequential": latencyMs(seq, nil), "burst": latencyMs(burst, nil)},
		"apiServerLatencyMs": map[string]Percentiles{"sequential": percentiles(seqAudit).round(round1), "burst": percentiles(burstAudit).round(round1)},
		"listResourceQuotasMs": map[string]Percentiles{"consistent": percentiles(lists["consistent"]).round(round1),
			"resourceVersion=0": percentiles(lists["resourceVersion=0"]).round(round1)},
	}
	logf("Quota baseline without the webhook: one at a time p50 %.1f ms, p99 %.1f ms; %d at once p50 %.1f ms, p99 %.1f ms; list resourcequotas p50 %.1f ms consistent, %.1f ms at resourceVersion 0",
		latencyMs(seq, nil).P50, latencyMs(seq, nil).P99, cfg.quotaBurst, latencyMs(burst, nil).P50, latencyMs(burst, nil).P99,
		percentiles(lists["consistent"]).P50, percentiles(lists["resourceVersion=0"]).P50)
	return nil
}

// admissionHistogram is the API server's apiserver_admission_webhook_admission_duration_seconds,
// by webhook name: cumulative counts by upper bound, their count and sum.
type admissionHistogram map[string]*webhookBuckets

type webhookBuckets struct {
	le         map[float64]float64
	count, sum float64
}

// webhookHistogram reads the API server's admission webhook histogram.
func (b *bench) webhookHistogram(ctx context.Context) (admissionHistogram, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.c.host+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := b.c.metrics.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("API server metrics: %s", resp.Status)
	}
	const metric = "apiserver_admission_webhook_admission_duration_seconds"
	h := admissionHistogram{}
	err = scanSamples(resp.Body, func(name, labels string, v float64) {
		if !strings.HasPrefix(name, metric) {
			return
		}
		hook := label(labels, "name")
		wb := h[hook]
		if wb == nil {
			wb = &webhookBuckets{le: map[float64]float64{}}
			h[hook] = wb
		}
		switch name {
		case metric + "_bucket":
			le, err := strconv.ParseFloat(label(labels, "le"), 64)
			if err == nil {
				wb.le[le] += v
			}
		case metric + "_count":
			wb.count += v
		case metric + "_sum":
			wb.sum += v
		}
	})
	return h, err
}

// since is the histogram of the admissions between before and h.
func (h admissionHistogram) since(before admissionHistogram) admissionHistogram {
	out := admissionHistogram{}
	for hook, wb := range h {
		d := &webhookBuckets{le: map[float64]float64{}, count: wb.count, sum: wb.sum}
		if p := before[hook]; p != nil {
			d.count -= p.count
			d.sum -= p.sum
		}
		for le, v := range wb.le {
			d.le[le] = v
			if p := before[hook]; p != nil {
				d.le[le] -= p.le[le]
			}
		}
		out[hook] = d
	}
	return out
}

// summary says, for one webhook, how many admissions the API server timed and the bucket bounds
// that hold their median and 99th percentile (the histogram's resolution: 5, 25, 100, 500 ms...).
func (h admissionHistogram) summary(hook string) map[string]any {
	wb := h[hook]
	if wb == nil || wb.count == 0 {
		return map[string]any{"webhook": hook, "n": 0}
	}
	bounds := make([]float64, 0, len(wb.le))
	for le := range wb.le {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	at := func(q float64) string {
		for _, le := range bounds {
			if wb.le[le] >= q*wb.count {
				if math.IsInf(le, 1) {
					return "> the largest bucket"
				}
				return fmt.Sprintf("<= %g ms", le*1000)
			}
		}
		return "?"
	}
	return map[string]any{"webhook": hook, "n": int(wb.count), "meanMs": round1(wb.sum / wb.count * 1000), "p50": at(0.5), "p99": at(0.99)}
}

// finishSettled ends a quota phase once the organization's ledger counts want of res with no
// reservation left (usedExact after the phase began), usage has converged and the operator is
// quiet; the phase lasts until the later of the first two.
func (b *bench) finishSettled(ctx context.Context, pr *phaseRun, org string, res corev1.ResourceName,
	want resource.Quantity) (used string, reservations int, usedExact time.Duration, p *Phase) {
	used, reservations = b.waitLedger(ctx, org, res, want, pr.start.Add(b.cfg.phaseTimeout))
	usedExact = time.Since(pr.start)
	conv, quietAt := b.settle(ctx, pr)
	pr.p.Seconds = round2(max(conv.Seconds, usedExact.Seconds()))
	return used, reservations, usedExact, b.finish(pr, quietAt, false)
}

// settle waits until the organizations' usage has converged and the operator is quiet, and
// records both on the phase; the caller finishes it at the returned quiet time.
func (b *bench) settle(ctx context.Context, pr *phaseRun) (convergence, time.Time) {
	applied := make(chan struct{})
	close(applied)
	conv := b.poller.waitConverged(ctx, b.world, check{usage: true}, pr.start, b.cfg.phaseTimeout, false, applied)
	quietAt, quiet := b.waitQuiet(ctx, settleTimeout)
	pr.converged(conv, quiet)
	return conv, quietAt
}
