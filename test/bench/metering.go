package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"time"

	"gopkg.in/inf.v0"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

// meteredPod is a pod the harness runs as a kubelet would: it writes the pod's status with the
// start and end times it chose, and computes from those times what the pod used.
type meteredPod struct {
	org, ns, name string
	// cpuMilli and memBytes are the pod's requests; benchPod gives it twice as much as limits.
	cpuMilli, memBytes int64
	// start is zero until the harness wrote it; end is zero while the pod runs. Whole seconds.
	start, end time.Time
	deleted    bool
}

func (p *meteredPod) key() string { return p.ns + "/" + p.name }

// kubeletStatus is the merge patch of pods/status a kubelet's reports add up to: bound and
// running from start, or Succeeded with its container finished at end.
func kubeletStatus(start, end time.Time) client.Patch {
	st := metav1.NewTime(start)
	status := corev1.PodStatus{
		Phase:      corev1.PodRunning,
		StartTime:  &st,
		Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: st}},
	}
	state := corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: st}}
	if !end.IsZero() {
		status.Phase = corev1.PodSucceeded
		state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed", StartedAt: st, FinishedAt: metav1.NewTime(end)}}
	}
	status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Image: "registry.invalid/bench:1",
		ImageID: "registry.invalid/bench@sha256:0", State: state, Ready: end.IsZero()}}
	data, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		panic(err) // a struct of known fields
	}
	return client.RawPatch(types.MergePatchType, data)
}

// writeStatus writes the pod's status as a kubelet would, with its start and end.
func (p *meteredPod) writeStatus(ctx context.Context, cl client.Client) error {
	return cl.Status().Patch(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: p.name}}, kubeletStatus(p.start, p.end))
}

// usageIntegral is what pods used over a span of time, in the report's units.
type usageIntegral struct {
	podSeconds, milliCPU, limitMilliCPU int64
	bytes, limitBytes                   big.Int
}

// add adds what p used in [from, to).
func (u *usageIntegral) add(p *meteredPod, from, to time.Time) {
	if p.start.IsZero() {
		return
	}
	s, e := p.start, to
	if s.Before(from) {
		s = from
	}
	if !p.end.IsZero() && p.end.Before(e) {
		e = p.end
	}
	secs := int64(e.Sub(s) / time.Second)
	if secs <= 0 {
		return
	}
	u.podSeconds += secs
	u.milliCPU += p.cpuMilli * secs
	u.limitMilliCPU += 2 * p.cpuMilli * secs
	u.bytes.Add(&u.bytes, new(big.Int).Mul(big.NewInt(p.memBytes), big.NewInt(secs)))
	u.limitBytes.Add(&u.limitBytes, new(big.Int).Mul(big.NewInt(2*p.memBytes), big.NewInt(secs)))
}

// exactInt is q as an integer, times 1000 if milli; ok is false if it is not a whole number.
func exactInt(q *resource.Quantity, milli bool) (*big.Int, bool) {
	if q == nil {
		return new(big.Int), true
	}
	d := q.AsDec()
	if milli {
		d = new(inf.Dec).Mul(d, inf.NewDec(1000, 0))
	}
	r := new(inf.Dec).Round(d, 0, inf.RoundDown)
	return r.UnscaledBig(), r.Cmp(d) == 0
}

// reportCheck compares usage reports with the integral of the pods the harness ran.
type reportCheck struct {
	Organizations int `json:"organizations"`
	Pods          int `json:"pods"`
	// PodsDeleted and PodsRunning are of Pods: deleted before the check, still running at it.
	PodsDeleted int `json:"podsDeleted"`
	PodsRunning int `json:"podsRunning"`
	// Amounts is how many amounts were compared (totals, limits and each namespace's).
	Amounts int `json:"amounts"`
	// MaxError is the largest difference, in the amount's unit (seconds, millicore-seconds,
	// byte-seconds), between a report and the integral; 0 when every amount is exact.
	MaxError string   `json:"maxError"`
	Problems []string `json:"problems,omitempty"`
	maxErr   big.Int
}

func (c *reportCheck) compare(what string, got *big.Int, ok bool, want *big.Int) {
	c.Amounts++
	diff := new(big.Int).Sub(got, want)
	diff.Abs(diff)
	if diff.Cmp(&c.maxErr) > 0 {
		c.maxErr.Set(diff)
	}
	if !ok {
		c.problem("%s is not a whole number: %s", what, got)
	} else if diff.Sign() != 0 {
		c.problem("%s is %s, the pods' integral %s", what, got, want)
	}
}

func (c *reportCheck) problem(format string, args ...any) {
	if len(c.Problems) < 20 {
		c.Problems = append(c.Problems, fmt.Sprintf(format, args...))
	}
}

// checkReports lists every usage report and compares each organization's current one, over its
// period up to its checkpointTime, with the integral of the organization's pods: the total
// (pod-seconds, requests and limits) and every namespace's entry. Every organization must have
// exactly one report, whose period starts at wantStart's time for it. It returns the reports by
// organization.
func checkReports(ctx context.Context, cl client.Client, orgs map[string][]string, wantStart map[string]time.Time, pods []*meteredPod) (*reportCheck, map[string]*tenancyv1alpha1.OrganizationUsageReport, error) {
	list := &tenancyv1alpha1.OrganizationUsageReportList{}
	if err := cl.List(ctx, list); err != nil {
		return nil, nil, err
	}
	c := &reportCheck{}
	byOrg := map[string]*tenancyv1alpha1.OrganizationUsageReport{}
	counts := map[string]int{}
	for i := range list.Items {
		r := &list.Items[i]
		org := r.Spec.Organization
		if _, ok := orgs[org]; !ok {
			continue
		}
		counts[org]++
		byOrg[org] = r
	}
	podsOf := map[string][]*meteredPod{}
	for _, p := range pods {
		podsOf[p.org] = append(podsOf[p.org], p)
		c.Pods++
		switch {
		case p.deleted:
			c.PodsDeleted++
		case p.end.IsZero() && !p.start.IsZero():
			c.PodsRunning++
		}
	}
	names := sortedKeys(orgs)
	for _, org := range names {
		if counts[org] != 1 {
			c.problem("organization %s has %d usage reports, want 1", org, counts[org])
			continue
		}
		c.Organizations++
		r := byOrg[org]
		if r.Status.CheckpointTime == nil {
			c.problem("report %s/%s has no checkpoint", r.Namespace, r.Name)
			continue
		}
		from, to := r.Spec.PeriodStart.Time, r.Status.CheckpointTime.Time
		if !from.Equal(wantStart[org]) {
			c.problem("report %s/%s's period starts at %s, want %s", r.Namespace, r.Name, from.UTC().Format(time.RFC3339), wantStart[org].UTC().Format(time.RFC3339))
		}
		total := &usageIntegral{}
		byNamespace := map[string]*usageIntegral{}
		for _, ns := range orgs[org] {
			byNamespace[ns] = &usageIntegral{}
		}
		for _, p := range podsOf[org] {
			total.add(p, from, to)
			if in := byNamespace[p.ns]; in != nil {
				in.add(p, from, to)
			} else {
				c.problem("pod %s is in no namespace of %s", p.key(), org)
			}
		}
		name := r.Namespace + "/" + r.Name
		t := r.Status.Total
		c.compare(name+" total.podSeconds", big.NewInt(t.PodSeconds), true, big.NewInt(total.podSeconds))
		got, ok := exactInt(t.Requests.CPU, true)
		c.compare(name+" total.requests.cpu (millicore-seconds)", got, ok, big.NewInt(total.milliCPU))
		got, ok = exactInt(t.Requests.Memory, false)
		c.compare(name+" total.requests.memory (byte-seconds)", got, ok, &total.bytes)
		got, ok = exactInt(t.Limits.CPU, true)
		c.compare(name+" total.limits.cpu (millicore-seconds)", got, ok, big.NewInt(total.limitMilliCPU))
		got, ok = exactInt(t.Limits.Memory, false)
		c.compare(name+" total.limits.memory (byte-seconds)", got, ok, &total.limitBytes)
		listed := map[string]bool{}
		for _, nu := range r.Status.Namespaces {
			want := byNamespace[nu.Name]
			if want == nil {
				c.problem("%s lists namespace %s, which is not the organization's", name, nu.Name)
				continue
			}
			listed[nu.Name] = true
			c.compare(name+" namespace "+nu.Name+" podSeconds", big.NewInt(nu.PodSeconds), true, big.NewInt(want.podSeconds))
			got, ok := exactInt(nu.CPU, true)
			c.compare(name+" namespace "+nu.Name+" cpu", got, ok, big.NewInt(want.milliCPU))
			got, ok = exactInt(nu.Memory, false)
			c.compare(name+" namespace "+nu.Name+" memory", got, ok, &want.bytes)
		}
		for ns, want := range byNamespace {
			if !listed[ns] && want.podSeconds > 0 {
				c.problem("%s does not list namespace %s, whose pods ran %d s", name, ns, want.podSeconds)
			}
		}
		if d := r.Status.DeletedNamespaces; d != nil && d.PodSeconds != 0 {
			c.problem("%s counts %d pod-seconds in deleted namespaces; none was deleted", name, d.PodSeconds)
		}
	}
	c.MaxError = c.maxErr.String()
	return c, byOrg, nil
}

// reportWrites counts, per organization, the operator's writes of usage reports among records:
// the status patches and creates that the API server stored, and the writes it refused.
func reportWrites(records []auditRecord, orgs []string) (statusPatches, creates, refused map[string]int) {
	statusPatches, creates, refused = map[string]int{}, map[string]int{}, map[string]int{}
	for _, o := range orgs {
		statusPatches[o] = 0
	}
	for _, r := range records {
		if r.Resource != "organizationusagereports" || r.class() != classWrite {
			continue
		}
		// A report lives in its organization's home namespace, which is named after it.
		if _, ok := statusPatches[r.Namespace]; !ok {
			continue
		}
		switch {
		case r.Code >= 400:
			refused[r.Namespace]++
		case r.Subresource == "status":
			statusPatches[r.Namespace]++
		default:
			creates[r.Namespace]++
		}
	}
	return statusPatches, creates, refused
}

// waitCheckpoints polls every organization's usage reports until each has a checkpointTime
// after the given moment, or the timeout passes; it returns the organizations that do not.
func waitCheckpoints(ctx context.Context, cl client.Client, orgs []string, after time.Time, timeout time.Duration) ([]string, error) {
	deadline := time.Now().Add(timeout)
	for {
		list := &tenancyv1alpha1.OrganizationUsageReportList{}
		err := cl.List(ctx, list)
		var behind []string
		if err == nil {
			latest := map[string]time.Time{}
			for _, r := range list.Items {
				if t := r.Status.CheckpointTime; t != nil && t.After(latest[r.Spec.Organization]) {
					latest[r.Spec.Organization] = t.Time
				}
			}
			for _, o := range orgs {
				if !latest[o].After(after) {
					behind = append(behind, o)
				}
			}
			if len(behind) == 0 {
				return nil, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return behind, err
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func maxBig(a, b *big.Int) *big.Int {
	if a.Cmp(b) >= 0 {
		return a
	}
	return b
}
