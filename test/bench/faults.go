package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/controlplane"
	"github.com/orgoperator/org-operator/internal/membership"
)

// faultCases are the cases of the faults scenario, in the order they run.
var faultCases = []string{"kill", "delete", "control-plane", "webhook-down", "failover", "partition", "metering"}

// FaultCase is what one case of the faults scenario checked and measured.
type FaultCase struct {
	Name  string `json:"name"`
	Fault string `json:"fault"`
	// Passed: everything converged and the world was verified object by object, with no problem.
	Passed   bool     `json:"passed"`
	Problems []string `json:"problems,omitempty"`
	Seconds  float64  `json:"seconds"`
	// Rounds are the case's injections, each with what it measured.
	Rounds []map[string]any `json:"rounds"`
}

// faults runs the fault cases. It owns the managers: replicas as the chart runs them, behind
// the webhook address, restarted by the harness as the kubelet would restart a container.
type faults struct {
	*bench
	rs      *replicas
	workDir string
}

func runFaults(ctx context.Context, cfg *config, c *cluster, workDir string, res *Result) error {
	b := &bench{
		cfg: cfg, c: c, res: res,
		audit:  newAuditLog(workDir + "/audit.log"),
		world:  &world{orgs: map[string]*orgModel{}},
		poller: &poller{c: c, interval: cfg.poll},
	}
	rs, err := b.startReplicas(ctx, workDir, 2)
	if err != nil {
		return err
	}
	defer rs.stopAll()
	b.mgr = rs.procs[0]
	f := &faults{bench: b, rs: rs, workDir: workDir}
	cases := map[string]func(context.Context, *FaultCase) error{
		"kill": f.kill, "delete": f.deletion, "control-plane": f.controlPlane,
		"webhook-down": f.webhookDown, "failover": f.failover, "partition": f.partition, "metering": f.metering,
	}
	var failed []string
	for _, name := range faultCases {
		if !cfg.faults[name] {
			continue
		}
		logf("Fault case %s", name)
		fc := &FaultCase{Name: name}
		started := time.Now()
		err := cases[name](ctx, fc)
		if err != nil {
			fc.Problems = append(fc.Problems, err.Error())
		}
		fc.Passed = len(fc.Problems) == 0
		fc.Seconds = round1(time.Since(started).Seconds())
		res.Faults = append(res.Faults, fc)
		if !fc.Passed {
			failed = append(failed, fmt.Sprintf("%s: %s", name, strings.Join(fc.Problems, "; ")))
			logf("Fault case %s FAILED: %s", name, strings.Join(fc.Problems, "; "))
		} else {
			logf("Fault case %s passed (%.1f s)", name, fc.Seconds)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("fault cases failed:\n%s", strings.Join(failed, "\n"))
	}
	return ctx.Err()
}

// only keeps the replicas listed running and the others stopped, and waits for a leader.
func (f *faults) only(ctx context.Context, running ...int) error {
	for i, m := range f.rs.procs {
		want := slices.Contains(running, i)
		if !want && m.pid() != 0 {
			m.stop(20 * time.Second)
		}
		if want && m.pid() == 0 {
			if err := f.rs.start(ctx, i); err != nil {
				return err
			}
		}
	}
	_, err := f.rs.waitLeader(ctx, leaseDuration+2*retryPeriod+10*time.Second)
	return err
}

// batch adds n organizations named prefix-NNN to the world and creates them, their labelled
// namespaces and their members as the converge scenario does; created is closed when all exist.
func (f *faults) batch(ctx context.Context, prefix string, n int) ([]*orgModel, <-chan struct{}, *error) {
	return f.batchOf(ctx, prefix, n, nil)
}

// batchOf is batch with each Organization changed by mutate before it is created, if not nil.
func (f *faults) batchOf(ctx context.Context, prefix string, n int, mutate func(*tenancyv1alpha1.Organization)) ([]*orgModel, <-chan struct{}, *error) {
	cfg := f.cfg
	orgs := make([]*orgModel, n)
	f.world.mu.Lock()
	for i := range n {
		o := newOrgModel(cfg, i)
		o.name = fmt.Sprintf("%s-%03d", prefix, i)
		o.namespaces = []string{o.name}
		for j := 1; j <= cfg.extraNamespaces; j++ {
			o.namespaces = append(o.namespaces, fmt.Sprintf("%s-x%d", o.name, j))
		}
		sort.Strings(o.namespaces)
		f.world.orgs[o.name] = o
		orgs[i] = o
	}
	f.world.mu.Unlock()
	created := make(chan struct{})
	var createErr error
	go func() {
		defer close(created)
		cl := f.c.clients[agentCreate]
		deadline := time.Now().Add(cfg.phaseTimeout)
		var retries atomic.Int64
		createErr = parallel(ctx, cfg.creators, n, func(ctx context.Context, i int) error {
			o := orgs[i]
			org := newOrganization(o.name)
			if mutate != nil {
				mutate(org)
			}
			if err := retry(ctx, deadline, &retries, func() error { return cl.Create(ctx, org.DeepCopy()) }); err != nil {
				return fmt.Errorf("creating organization %s: %w", o.name, err)
			}
			for _, ns := range o.namespaces {
				if ns == o.name {
					continue
				}
				if err := retry(ctx, deadline, &retries, func() error { return cl.Create(ctx, newNamespace(ns, o.name)) }); err != nil {
					return fmt.Errorf("creating namespace %s: %w", ns, err)
				}
			}
			// Members once the operator has made the home namespace: until then creation fails,
			// and is retried, through any restart of the operator.
			for _, name := range sortedKeys(o.members) {
				if err := retry(ctx, deadline, &retries, func() error { return cl.Create(ctx, newMember(o.name, o.members[name])) }); err != nil {
					return fmt.Errorf("creating member %s/%s: %w", o.name, name, err)
				}
			}
			return nil
		})
	}()
	return orgs, created, &createErr
}

// progress is how far a batch has come in one poll.
type progress struct {
	ready, homeNamespaces int
}

func (f *faults) progress(ctx context.Context, orgs []*orgModel) (progress, error) {
	s, err := f.poller.snapshot(ctx, true, false)
	if err != nil {
		return progress{}, err
	}
	var p progress
	f.world.mu.Lock()
	defer f.world.mu.Unlock()
	for _, o := range orgs {
		if s.namespaces[o.name] {
			p.homeNamespaces++
		}
		if o.convergedIn(s.orgs[o.name]) {
			p.ready++
		}
	}
	return p, nil
}

// waitFor polls the batch until reached says so; it returns the progress it stopped at.
func (f *faults) waitFor(ctx context.Context, orgs []*orgModel, reached func(progress) bool) (progress, error) {
	deadline := time.Now().Add(f.cfg.phaseTimeout)
	for {
		p, err := f.progress(ctx, orgs)
		if err == nil && reached(p) {
			return p, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return p, fmt.Errorf("the batch did not get there within %v (%d of %d ready, %d home namespaces; %v)",
				f.cfg.phaseTimeout, p.ready, len(orgs), p.homeNamespaces, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// converge waits until the whole world has converged, from start, once applied is closed.
func (f *faults) converge(ctx context.Context, start time.Time, applied <-chan struct{}) convergence {
	return f.poller.waitConverged(ctx, f.world, check{}, start, f.cfg.phaseTimeout, true, applied)
}

// settle waits for the operator to go quiet and returns its writes (leases and events apart)
// from since until then.
func (f *faults) settle(ctx context.Context, since time.Time) (int, Requests) {
	quietAt, _ := f.waitQuiet(ctx, settleTimeout)
	_ = f.audit.refresh()
	req := summarize(f.audit.between(since, quietAt, isOperatorWork))
	return req.Writes, req
}

// isOperatorWork selects the operator's requests, its leader election's apart.
func isOperatorWork(r *auditRecord) bool { return isOperator(r) && r.Resource != "leases" }

// check verifies the world object by object and adds what differs to the case's problems.
func (f *faults) check(ctx context.Context, fc *FaultCase, after string) {
	problems, err := f.verifyAll(ctx)
	if err != nil {
		problems = append(problems, "verification failed: "+err.Error())
	}
	for _, p := range problems {
		fc.Problems = append(fc.Problems, after+": "+p)
	}
}

// verifyAll is verify (every RoleBinding and ClusterRoleBinding subject) plus what else the
// operator makes or removes: organization namespaces, reader ClusterRoles, quotas and limit
// ranges, and no organization or member left with a deletion pending.
func (f *faults) verifyAll(ctx context.Context) ([]string, error) {
	cl := f.c.clients[agentVerify]
	problems, err := verify(ctx, cl, f.world)
	if err != nil {
		return nil, err
	}
	report := func(format string, args ...any) {
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	live := map[string]*orgModel{}
	wantNamespaces := map[string]string{}
	f.world.mu.Lock()
	for _, o := range f.world.orgs {
		if !o.deleted {
			live[o.name] = o
			for _, ns := range o.namespaces {
				wantNamespaces[ns] = o.name
			}
		}
	}
	f.world.mu.Unlock()

	namespaces := &corev1.NamespaceList{}
	if err := cl.List(ctx, namespaces, client.HasLabels{tenancyv1alpha1.OrganizationLabel}); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, ns := range namespaces.Items {
		if !ns.DeletionTimestamp.IsZero() {
			report("namespace %s is still terminating", ns.Name)
			continue
		}
		seen[ns.Name] = true
		if org := ns.Labels[tenancyv1alpha1.OrganizationLabel]; wantNamespaces[ns.Name] != org {
			report("namespace %s belongs to %q, want %q", ns.Name, org, wantNamespaces[ns.Name])
		}
	}
	for ns := range wantNamespaces {
		if !seen[ns] {
			report("namespace %s is missing", ns)
		}
	}

	managed := client.MatchingLabels{tenancyv1alpha1.ManagedByLabel: tenancyv1alpha1.ManagedByValue}
	roles := &rbacv1.ClusterRoleList{}
	if err := cl.List(ctx, roles, managed); err != nil {
		return nil, err
	}
	readers := map[string]bool{}
	for _, o := range live {
		readers[membership.ReaderRoleName(o.name)] = true
	}
	for _, r := range roles.Items {
		if strings.HasPrefix(r.Name, membership.ReaderRoleName("")) && !readers[r.Name] {
			report("ClusterRole %s belongs to no organization", r.Name)
		}
		delete(readers, r.Name)
	}
	for name := range readers {
		report("ClusterRole %s is missing", name)
	}
	crbs := &rbacv1.ClusterRoleBindingList{}
	if err := cl.List(ctx, crbs, managed); err != nil {
		return nil, err
	}
	for _, b := range crbs.Items {
		if owner := b.Labels[tenancyv1alpha1.OrganizationLabel]; owner != "" && live[owner] == nil {
			report("ClusterRoleBinding %s belongs to organization %s, which is gone", b.Name, owner)
		}
	}
	for _, list := range []client.ObjectList{&corev1.ResourceQuotaList{}, &corev1.LimitRangeList{}, &rbacv1.RoleBindingList{}} {
		if err := cl.List(ctx, list, managed); err != nil {
			return nil, err
		}
		items, _ := metaItems(list)
		for _, obj := range items {
			if _, ok := wantNamespaces[obj.GetNamespace()]; !ok {
				report("%T %s/%s is outside every organization", obj, obj.GetNamespace(), obj.GetName())
			}
		}
	}

	orgs := &tenancyv1alpha1.OrganizationList{}
	if err := cl.List(ctx, orgs); err != nil {
		return nil, err
	}
	for _, o := range orgs.Items {
		if live[o.Name] == nil {
			report("organization %s should be gone (finalizers %v)", o.Name, o.Finalizers)
		}
	}
	members := &tenancyv1alpha1.OrganizationMemberList{}
	if err := cl.List(ctx, members); err != nil {
		return nil, err
	}
	for _, m := range members.Items {
		o := live[m.Namespace]
		if o == nil || o.members[m.Name] == nil {
			report("member %s/%s should be gone (finalizers %v)", m.Namespace, m.Name, m.Finalizers)
		}
	}
	return problems, nil
}

func metaItems(list client.ObjectList) ([]client.Object, error) {
	var out []client.Object
	switch l := list.(type) {
	case *corev1.ResourceQuotaList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *corev1.LimitRangeList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *rbacv1.RoleBindingList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	default:
		return nil, fmt.Errorf("unexpected list %T", list)
	}
	return out, nil
}

// restartKilled starts replica i again, as the kubelet restarts a container, and waits until
// one replica leads; it returns when that was, and how long the leader took.
func (f *faults) restartKilled(ctx context.Context, i int) (time.Time, time.Duration, error) {
	at := time.Now()
	if err := f.rs.start(ctx, i); err != nil {
		return at, 0, err
	}
	_, err := f.rs.waitLeader(ctx, leaseDuration+2*retryPeriod+10*time.Second)
	return at, time.Since(at), err
}

// minimumPerOrg is the fewest operator writes one organization of the batch needs.
func (f *faults) minimumPerOrg() float64 {
	total := 0.0
	for _, v := range convergeMinimum(f.cfg) {
		total += v
	}
	return total
}

// kill: the manager is killed (SIGKILL) at three moments of a converge and started again.
func (f *faults) kill(ctx context.Context, fc *FaultCase) error {
	fc.Fault = fmt.Sprintf("SIGKILL the manager (one replica) at three moments of a %d-organization converge, then start it again", f.cfg.orgs)
	if err := f.only(ctx, 0); err != nil {
		return err
	}
	n := f.cfg.orgs
	moments := []struct {
		name    string
		reached func(progress) bool
	}{
		{"after the first namespaces", func(p progress) bool { return p.homeNamespaces > 0 }},
		{"half-way", func(p progress) bool { return p.ready >= n/2 }},
		{"during the last status writes", func(p progress) bool { return p.ready >= n*8/10 }},
	}
	for r, mo := range moments {
		orgs, created, createErr := f.batch(ctx, fmt.Sprintf("kill%d", r+1), n)
		start := time.Now()
		at, err := f.waitFor(ctx, orgs, mo.reached)
		if err != nil {
			return err
		}
		leader := f.rs.leader(ctx)
		if leader < 0 {
			return fmt.Errorf("no leader to kill %s", mo.name)
		}
		f.rs.kill(leader)
		killedAt := time.Now()
		restartedAt, leaderAfter, err := f.restartKilled(ctx, leader)
		if err != nil {
			return err
		}
		conv := f.converge(ctx, restartedAt, created)
		<-created
		if *createErr != nil {
			return *createErr
		}
		writes, req := f.settle(ctx, restartedAt)
		left := n - at.ready
		round := map[string]any{
			"moment":                      mo.name,
			"readyAtKill":                 at.ready,
			"homeNamespacesAtKill":        at.homeNamespaces,
			"secondsToKill":               round2(killedAt.Sub(start).Seconds()),
			"secondsToLeader":             round2(leaderAfter.Seconds()),
			"recoverySeconds":             round2(conv.Seconds),
			"converged":                   conv.Converged,
			"operatorWritesAfterRestart":  writes,
			"minimumWritesLeft":           round1(float64(left) * f.minimumPerOrg()),
			"failedWritesAfterRestart":    req.FailedWrites,
			"writesAfterRestartByRequest": writeRequests(req),
		}
		fc.Rounds = append(fc.Rounds, round)
		logf("Killed %s (%d of %d ready): converged again %.1f s after the restart, leader after %.1f s, %d writes (minimum left %.0f)",
			mo.name, at.ready, n, conv.Seconds, leaderAfter.Seconds(), writes, round["minimumWritesLeft"])
		if !conv.Converged {
			fc.Problems = append(fc.Problems, fmt.Sprintf("killed %s: not converged; pending %s", mo.name, strings.Join(conv.Pending, ", ")))
		}
		f.check(ctx, fc, "killed "+mo.name)
	}
	return nil
}

// writeRequests keeps the writes of a Requests' counts by request.
func writeRequests(r Requests) map[string]int {
	out := map[string]int{}
	for k, v := range r.ByRequest {
		if isWriteKey(k) && !strings.HasSuffix(k, " leases") {
			out[k] = v
		}
	}
	return out
}

// deletion: the manager is killed while organizations are deleted with Cascade, and while
// members are removed; started again, it finishes both, leaving nothing behind.
func (f *faults) deletion(ctx context.Context, fc *FaultCase) error {
	fc.Fault = "SIGKILL the manager during the Cascade deletion of organizations, and during the removal of members, then start it again"
	if err := f.only(ctx, 0); err != nil {
		return err
	}
	n := max(4, f.cfg.orgs/10)
	orgs, created, createErr := f.batch(ctx, "del", 2*n)
	start := time.Now()
	conv := f.converge(ctx, start, created)
	<-created
	if *createErr != nil {
		return *createErr
	}
	if !conv.Converged {
		return fmt.Errorf("the organizations to delete did not converge: %s", strings.Join(conv.Pending, ", "))
	}
	f.settle(ctx, start)
	cl := f.c.clients[agentCreate]

	// Organizations: deleted, and the manager killed once their namespaces are going.
	doomed := orgs[:n]
	for _, o := range doomed {
		if err := cl.Delete(ctx, &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: o.name}}); err != nil {
			return fmt.Errorf("deleting organization %s: %w", o.name, err)
		}
		f.world.mu.Lock()
		o.deleted = true
		f.world.mu.Unlock()
	}
	terminating, err := f.waitTerminating(ctx, doomed)
	if err != nil {
		return err
	}
	if err := f.killAndRecover(ctx, fc, "organizations deleted", map[string]any{"terminatingNamespacesAtKill": terminating}); err != nil {
		return err
	}

	// Members: one removed from each remaining organization, the manager killed at once.
	for _, o := range orgs[n:] {
		name := sortedKeys(o.members)[len(o.members)-1]
		if err := cl.Delete(ctx, &tenancyv1alpha1.OrganizationMember{ObjectMeta: metav1.ObjectMeta{Namespace: o.name, Name: name}}); err != nil {
			return fmt.Errorf("deleting member %s/%s: %w", o.name, name, err)
		}
		f.world.mu.Lock()
		delete(o.members, name)
		f.world.mu.Unlock()
	}
	return f.killAndRecover(ctx, fc, "members removed", nil)
}

// waitTerminating waits until a namespace of the deleted organizations is terminating: the
// operator is at work on the cascade. It returns how many were.
func (f *faults) waitTerminating(ctx context.Context, orgs []*orgModel) (int, error) {
	cl := f.c.clients[agentVerify]
	deadline := time.Now().Add(time.Minute)
	for {
		n := 0
		for _, o := range orgs {
			for _, name := range o.namespaces {
				ns := &corev1.Namespace{}
				if err := cl.Get(ctx, client.ObjectKey{Name: name}, ns); err == nil && !ns.DeletionTimestamp.IsZero() {
					n++
				}
			}
		}
		if n > 0 {
			return n, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no namespace of the deleted organizations began terminating within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killAndRecover kills the leader, starts it again, waits for the world and verifies it.
func (f *faults) killAndRecover(ctx context.Context, fc *FaultCase, what string, extra map[string]any) error {
	leader := f.rs.leader(ctx)
	if leader < 0 {
		return fmt.Errorf("%s: no leader to kill", what)
	}
	f.rs.kill(leader)
	restartedAt, leaderAfter, err := f.restartKilled(ctx, leader)
	if err != nil {
		return err
	}
	conv := f.converge(ctx, restartedAt, closedChan())
	writes, req := f.settle(ctx, restartedAt)
	round := map[string]any{
		"moment": what, "secondsToLeader": round2(leaderAfter.Seconds()), "recoverySeconds": round2(conv.Seconds),
		"converged": conv.Converged, "operatorWritesAfterRestart": writes, "writesAfterRestartByRequest": writeRequests(req),
	}
	for k, v := range extra {
		round[k] = v
	}
	fc.Rounds = append(fc.Rounds, round)
	logf("Killed with %s: done %.1f s after the restart, %d writes", what, conv.Seconds, writes)
	if !conv.Converged {
		fc.Problems = append(fc.Problems, fmt.Sprintf("%s: not converged; pending %s", what, strings.Join(conv.Pending, ", ")))
	}
	f.check(ctx, fc, what)
	return nil
}

func closedChan() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// controlPlane: kube-apiserver, then etcd, restarted in the middle of a converge; the manager
// must reconnect by itself, without exiting.
func (f *faults) controlPlane(ctx context.Context, fc *FaultCase) error {
	fc.Fault = fmt.Sprintf("Restart kube-apiserver, then etcd, half-way through a %d-organization converge each", f.cfg.orgs)
	if err := f.only(ctx, 0); err != nil {
		return err
	}
	for _, component := range []string{"kube-apiserver", "etcd"} {
		leader := f.rs.leader(ctx)
		restartsBefore := f.rs.restartCount(leader)
		orgs, created, createErr := f.batch(ctx, strings.TrimPrefix(component, "kube-"), f.cfg.orgs)
		if _, err := f.waitFor(ctx, orgs, func(p progress) bool { return p.ready >= len(orgs)/2 }); err != nil {
			return err
		}
		restartAt := time.Now()
		if err := f.c.cp.Restart(ctx, component); err != nil {
			return err
		}
		down := time.Since(restartAt)
		conv := f.converge(ctx, restartAt, created)
		<-created
		if *createErr != nil {
			return *createErr
		}
		if _, err := f.rs.waitLeader(ctx, leaseDuration+2*retryPeriod+10*time.Second); err != nil {
			return err
		}
		writes, _ := f.settle(ctx, restartAt)
		restarts := f.rs.restartCount(leader) - restartsBefore
		fc.Rounds = append(fc.Rounds, map[string]any{
			"restarted": component, "secondsUntilAPIReady": round2(down.Seconds()), "recoverySeconds": round2(conv.Seconds),
			"converged": conv.Converged, "managerExits": restarts, "operatorWritesAfterRestart": writes,
		})
		logf("Restarted %s (ready again after %.1f s): converged %.1f s after the restart; the manager exited %d times",
			component, down.Seconds(), conv.Seconds, restarts)
		// A leader that cannot renew its lease for the renew deadline exits, as kube-controller-manager
		// does; started again it must wait for the API server, not exit again and again.
		if restarts > 1 {
			fc.Problems = append(fc.Problems, fmt.Sprintf("the manager exited %d times when %s restarted (see %s)", restarts, component, f.rs.procs[leader].logPath))
		}
		if !conv.Converged {
			fc.Problems = append(fc.Problems, fmt.Sprintf("after restarting %s: not converged; pending %s", component, strings.Join(conv.Pending, ", ")))
		}
		f.check(ctx, fc, "after restarting "+component)
	}
	return nil
}

// webhookDown: every replica stopped for -webhook-down; what waits on the webhook and what does
// not, counted by creations (dry runs: the webhooks are called for them as for real ones).
func (f *faults) webhookDown(ctx context.Context, fc *FaultCase) error {
	fc.Fault = fmt.Sprintf("Stop every replica for %v: the webhook cannot be reached", f.cfg.webhookDown)
	if err := f.only(ctx, 0); err != nil {
		return err
	}
	if len(f.world.live()) == 0 {
		_, created, createErr := f.batch(ctx, "down", 1)
		if conv := f.converge(ctx, time.Now(), created); !conv.Converged || *createErr != nil {
			return fmt.Errorf("the organization to test with did not converge: %v %v", *createErr, conv.Pending)
		}
	}
	org := f.world.live()[0].name
	cl := f.c.clients[agentCreate]
	plain := "faults-plain"
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: plain}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	dry := client.DryRunAll
	var seq atomic.Int64
	name := func(p string) string { return fmt.Sprintf("%s-%d", p, seq.Add(1)) }
	kinds := []struct {
		name  string
		waits bool // on the webhook
		send  func() error
	}{
		{"pod in an organization namespace", true, func() error { return cl.Create(ctx, benchPod(org, name("pod"), 10, 16<<20), dry) }},
		{"organization", true, func() error { return cl.Create(ctx, newOrganization(name("down")), dry) }},
		{"namespace labelled into an organization", true, func() error { return cl.Create(ctx, newNamespace(name("down"), org), dry) }},
		{"pod in a namespace of no organization", false, func() error { return cl.Create(ctx, benchPod(plain, name("pod"), 10, 16<<20), dry) }},
		{"configmap in an organization namespace", false, func() error {
			return cl.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: org, Name: name("cm")}}, dry)
		}},
		{"namespace of no organization", false, func() error {
			return cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name("plain")}}, dry)
		}},
	}
	for _, m := range f.rs.procs {
		m.stop(20 * time.Second)
	}
	stoppedAt := time.Now()
	type tally struct{ ok, refused, other int }
	counts := make([]tally, len(kinds))
	examples := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	until := stoppedAt.Add(f.cfg.webhookDown)
	for i, k := range kinds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(until) {
				err := k.send()
				mu.Lock()
				switch {
				case err == nil:
					counts[i].ok++
				case strings.Contains(err.Error(), "failed calling webhook"):
					counts[i].refused++
				default:
					counts[i].other++
					examples[k.name] = firstLine(err.Error())
				}
				mu.Unlock()
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	wg.Wait()

	startAt := time.Now()
	if err := f.rs.start(ctx, 0); err != nil {
		return err
	}
	// Back: the first admitted organization-namespace pod says when the webhook answers again.
	var firstAdmitted time.Duration
	for deadline := time.Now().Add(time.Minute); ; {
		if err := kinds[0].send(); err == nil {
			firstAdmitted = time.Since(startAt)
			break
		}
		if time.Now().After(deadline) {
			fc.Problems = append(fc.Problems, "organization-namespace pods still refused a minute after the manager started")
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := f.rs.waitLeader(ctx, leaseDuration+2*retryPeriod+10*time.Second); err != nil {
		return err
	}
	byKind := map[string]any{}
	for i, k := range kinds {
		c := counts[i]
		byKind[k.name] = map[string]int{"admitted": c.ok, "refusedWebhookUnavailable": c.refused, "otherErrors": c.other}
		if c.other > 0 {
			fc.Problems = append(fc.Problems, fmt.Sprintf("%s: %d unexpected errors, e.g. %s", k.name, c.other, examples[k.name]))
		}
		if k.waits && c.ok > 0 {
			fc.Problems = append(fc.Problems, fmt.Sprintf("%s: %d admitted without the webhook", k.name, c.ok))
		}
		if !k.waits && c.refused > 0 {
			fc.Problems = append(fc.Problems, fmt.Sprintf("%s: %d refused for want of the webhook, which should not concern it", k.name, c.refused))
		}
		if c.ok+c.refused == 0 {
			fc.Problems = append(fc.Problems, fmt.Sprintf("%s: no request was made", k.name))
		}
	}
	fc.Rounds = append(fc.Rounds, map[string]any{
		"downSeconds": round1(startAt.Sub(stoppedAt).Seconds()), "byKind": byKind,
		"secondsFromStartToFirstAdmittedPod": round2(firstAdmitted.Seconds()),
	})
	_ = cl.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: plain}})
	f.check(ctx, fc, "after the webhook came back")
	return nil
}

// failover: two replicas serve the webhooks; the leader is stopped during a burst of pod
// creations against an organization quota, gracefully (SIGTERM: a rolling update, a node drain)
// and then not (SIGKILL). Exactly the limit is admitted across each failover.
func (f *faults) failover(ctx context.Context, fc *FaultCase) error {
	cfg := f.cfg
	fc.Fault = fmt.Sprintf("Two replicas; stop the leader (SIGTERM, then in a second round SIGKILL) during a burst of %d pod creations against an organization quota of %d pods",
		cfg.quotaBurst, cfg.quotaLimit)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if err := f.failoverRound(ctx, fc, sig); err != nil {
			return err
		}
	}
	return nil
}

func (f *faults) failoverRound(ctx context.Context, fc *FaultCase, sig syscall.Signal) error {
	cfg := f.cfg
	if err := f.only(ctx, 0, 1); err != nil {
		return err
	}
	if err := f.waitBalanced(ctx, 2); err != nil {
		return err
	}
	limit := cfg.quotaLimit
	name := "failover-term"
	if sig == syscall.SIGKILL {
		name = "failover-kill"
	}
	o, err := f.quotaOrganization(ctx, name, corev1.ResourceList{corev1.ResourcePods: *resource.NewQuantity(int64(limit), resource.DecimalSI)})
	if err != nil {
		return err
	}
	leader := f.rs.leader(ctx)
	if leader < 0 {
		return fmt.Errorf("no leader")
	}
	cl := f.c.clients[agentCreate]
	// The leader is stopped while admissions are still being decided: after a quarter of the
	// limit was admitted, or a quarter of the burst answered, whichever comes first.
	var done, admittedSoFar atomic.Int64
	signalled := make(chan time.Time, 1)
	stopped := make(chan struct{})
	var admittedAtSignal, answeredAtSignal int64
	go func() {
		defer close(stopped)
		for admittedSoFar.Load() < int64(limit/4) && done.Load() < int64(cfg.quotaBurst/4) {
			time.Sleep(time.Millisecond)
		}
		admittedAtSignal, answeredAtSignal = admittedSoFar.Load(), done.Load()
		signalled <- time.Now()
		if sig == syscall.SIGKILL {
			f.rs.kill(leader)
		} else {
			f.rs.procs[leader].stop(30 * time.Second)
		}
	}()
	refusedBefore := f.rs.lb.Refused.Load()
	burstStart := time.Now()
	shots := fire(cfg.quotaBurst, func(i int) (string, string, func() error) {
		ns := o.namespaces[i%len(o.namespaces)]
		name := fmt.Sprintf("burst-%03d", i)
		return ns, name, func() error {
			err := cl.Create(ctx, requestsPod(ns, name, 10, 16<<20))
			if err == nil {
				admittedSoFar.Add(1)
			}
			done.Add(1)
			return err
		}
	})
	signalledAt := <-signalled
	newLeader := -1
	for deadline := time.Now().Add(leaseDuration + 2*retryPeriod + 10*time.Second); newLeader < 0 || newLeader == leader; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("no other replica took the lead after %s", sig)
		}
		newLeader = f.rs.leader(ctx)
	}
	takeover := time.Since(signalledAt)
	f.mgr = f.rs.procs[newLeader]
	<-stopped
	// The replaced pod comes back, as its ReplicaSet would start a new one.
	if _, _, err := f.restartKilled(ctx, leader); err != nil {
		return err
	}
	counts, examples := outcomes(shots)
	unavailable, admittedInBurst := 0, 0
	for _, s := range shots {
		switch {
		case s.err == nil:
			admittedInBurst++
		case strings.Contains(s.err.Error(), "failed calling webhook"):
			unavailable++
		}
	}
	// What the ledger settles to: fill the organization up one pod at a time; exactly the
	// limit must fit, however the burst and the failover went.
	f.settle(ctx, burstStart)
	stored, err := f.countPods(ctx, o.namespaces)
	if err != nil {
		return err
	}
	topUp := 0
	for i := 0; stored+topUp <= limit; i++ {
		ns := o.namespaces[i%len(o.namespaces)]
		err := cl.Create(ctx, requestsPod(ns, fmt.Sprintf("topup-%03d", i), 10, 16<<20))
		if err != nil {
			if !strings.Contains(err.Error(), "exceeded") {
				return fmt.Errorf("topping up: %w", err)
			}
			break
		}
		topUp++
	}
	final, err := f.countPods(ctx, o.namespaces)
	if err != nil {
		return err
	}
	fc.Rounds = append(fc.Rounds, map[string]any{
		"signal": sig.String(), "limit": limit, "burst": cfg.quotaBurst, "admittedAtSignal": admittedAtSignal, "answeredAtSignal": answeredAtSignal,
		"admittedInBurst": admittedInBurst, "storedAfterBurst": stored, "refusedWebhookUnavailable": unavailable,
		"outcomes": counts, "examples": examples, "admittedWhenToppingUp": topUp, "storedAtTheEnd": final,
		"secondsFromSignalToNewLeader": round2(takeover.Seconds()), "newLeader": f.rs.procs[newLeader].name,
		// Connections the balancer closed at once: sent to the stopped replica before its probe failed.
		"connectionsToTheStoppedReplica": f.rs.lb.Refused.Load() - refusedBefore,
	})
	logf("Failover (%s): %d admitted in the burst (%d refused for want of the webhook), %d stored, %d more fit after, %d in all (limit %d); new leader after %.1f s",
		sig, admittedInBurst, unavailable, stored, topUp, final, limit, takeover.Seconds())
	if stored != admittedInBurst {
		fc.Problems = append(fc.Problems, fmt.Sprintf("%s: %d pods admitted but %d stored", sig, admittedInBurst, stored))
	}
	if stored > limit || final != limit {
		fc.Problems = append(fc.Problems, fmt.Sprintf("%s: %d pods stored after the burst and %d in all, want at most and exactly the limit %d", sig, stored, final, limit))
	}
	// A graceful stop drains: no admission may fail. A killed process loses the requests it was
	// answering, which the API server does not retry: they are counted, not failed on.
	if sig == syscall.SIGTERM && unavailable > 0 {
		fc.Problems = append(fc.Problems, fmt.Sprintf("SIGTERM: %d admissions refused for want of the webhook, e.g. %s", unavailable, examples["refused: 500 InternalError"]))
	}
	if takeover > takeoverBound {
		fc.Problems = append(fc.Problems, fmt.Sprintf("%s: the new leader took %.1f s, more than %v", sig, takeover.Seconds(), takeoverBound))
	}
	f.world.mu.Lock()
	for _, s := range shots {
		if s.err == nil {
			o.pods[s.ns+"/"+s.name] = podModel{cpuMilli: 10, memBytes: 16 << 20}
		}
	}
	f.world.mu.Unlock()
	f.check(ctx, fc, "after the failover ("+sig.String()+")")
	return nil
}

// waitBalanced waits until n replicas pass the balancer's readiness probe.
func (f *faults) waitBalanced(ctx context.Context, n int) error {
	deadline := time.Now().Add(time.Minute)
	for len(f.rs.lb.Ready()) < n {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%d of %d replicas ready behind the webhook address", len(f.rs.lb.Ready()), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func (f *faults) countPods(ctx context.Context, namespaces []string) (int, error) {
	n := 0
	for _, ns := range namespaces {
		pods := &corev1.PodList{}
		if err := f.c.clients[agentVerify].List(ctx, pods, client.InNamespace(ns)); err != nil {
			return 0, err
		}
		n += len(pods.Items)
	}
	return n, nil
}

// partition: the leader is cut off (SIGSTOP: no request leaves it, no timer of its own fires)
// for -partition while the organization it was converging changes; the standby takes over. Once
// it runs again, the old leader must write nothing: its lease has lapsed.
func (f *faults) partition(ctx context.Context, fc *FaultCase) error {
	fc.Fault = fmt.Sprintf("Two replicas; cut the leader off (SIGSTOP) for %v in the middle of a converge, then let it run again", f.cfg.partition)
	if err := f.only(ctx, 0, 1); err != nil {
		return err
	}
	if err := f.waitBalanced(ctx, 2); err != nil {
		return err
	}
	old := f.rs.leader(ctx)
	if old < 0 {
		return fmt.Errorf("no leader")
	}
	orgs, created, createErr := f.batch(ctx, "part", f.cfg.orgs)
	if _, err := f.waitFor(ctx, orgs, func(p progress) bool { return p.homeNamespaces > 0 }); err != nil {
		return err
	}
	if err := f.rs.signal(old, syscall.SIGSTOP); err != nil {
		return err
	}
	pausedAt := time.Now()
	time.Sleep(200 * time.Millisecond) // a renewal already sent lands before the Lease is read
	lease := &coordinationv1.Lease{}
	if err := f.c.clients[agentVerify].Get(ctx, client.ObjectKey{Namespace: controlplane.OperatorNamespace, Name: leaseName}, lease); err != nil {
		return err
	}
	lapse := lease.Spec.RenewTime.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second)
	newLeader := -1
	var takeover time.Duration
	for deadline := time.Now().Add(f.cfg.partition); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if newLeader < 0 {
			if i := f.rs.leader(ctx, old); i >= 0 {
				newLeader, takeover = i, time.Since(pausedAt)
				f.mgr = f.rs.procs[i]
			}
		}
	}
	if err := f.rs.signal(old, syscall.SIGCONT); err != nil {
		return err
	}
	resumedAt := time.Now()
	if newLeader < 0 {
		fc.Problems = append(fc.Problems, fmt.Sprintf("no other replica took the lead during the %v partition", f.cfg.partition))
		return nil
	}
	// Give the old leader time to act on whatever it was doing when it stopped.
	exitsBefore := f.rs.restartCount(old)
	time.Sleep(15 * time.Second)
	exited := f.rs.restartCount(old) > exitsBefore
	conv := f.converge(ctx, resumedAt, created)
	<-created
	if *createErr != nil {
		return *createErr
	}
	f.settle(ctx, resumedAt)
	_ = f.audit.refresh()
	oldAgent := userAgent(f.rs.procs[old].name)
	var stale []string
	staleEvents := 0
	for _, r := range f.audit.between(lapse, time.Now(), isOperator) {
		if r.Agent != oldAgent || r.class() != classWrite && r.class() != classEvent || r.Code >= 400 {
			continue
		}
		if r.class() == classEvent {
			staleEvents++
			continue
		}
		if r.Resource != "leases" {
			stale = append(stale, fmt.Sprintf("%s %s/%s at +%.1fs", r.key(), r.Namespace, r.Name, r.At.Sub(lapse).Seconds()))
		}
	}
	fc.Rounds = append(fc.Rounds, map[string]any{
		"pausedSeconds": round1(resumedAt.Sub(pausedAt).Seconds()), "secondsFromPauseToNewLeader": round2(takeover.Seconds()),
		"oldLeaderExitedAfterResume": exited, "writesByOldLeaderAfterLapse": len(stale), "eventsByOldLeaderAfterLapse": staleEvents,
		"recoverySeconds": round2(conv.Seconds), "converged": conv.Converged, "examples": firstN(stale, 5),
	})
	logf("Partition: new leader after %.1f s; the old leader wrote %d times after its lease lapsed (%d events), exited: %v",
		takeover.Seconds(), len(stale), staleEvents, exited)
	if len(stale) > 0 {
		fc.Problems = append(fc.Problems, fmt.Sprintf("the old leader wrote %d times after its lease lapsed, e.g. %s", len(stale), strings.Join(firstN(stale, 3), "; ")))
	}
	if !conv.Converged {
		fc.Problems = append(fc.Problems, "not converged after the partition: "+strings.Join(conv.Pending, ", "))
	}
	f.check(ctx, fc, "after the partition")
	return nil
}

// leaseName is the manager's leader election Lease (main.go's LeaderElectionID).
const leaseName = "org-operator.tenancy.orgoperator.io"

// userAgent is what main.go sends for a replica named pod.
func userAgent(pod string) string { return "org-operator (" + pod + ")" }

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
