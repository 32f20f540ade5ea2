package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

// The fault suite's metering timing: short enough that a case sees several checkpoints in a
// minute. The replicas run with these flags in every case; organizations without a
// subscription's startDate (all but the metering case's) have no usage report.
const (
	faultsCheckpointInterval = 5 * time.Second
	faultsSettleDelay        = 2 * time.Second
)

// metering: pods run in every organization of a batch, some finished and kept, some finished
// and deleted (and held by a checkpoint); the manager is killed (SIGKILL) while they run, and
// while it is down running pods finish and pending ones start. Started again, every
// organization's report must equal, to the core-second, the integral of the pods' lifetimes up
// to its checkpoint, in total and per namespace, with at most one write per checkpoint interval.
func (f *faults) metering(ctx context.Context, fc *FaultCase) error {
	interval := faultsCheckpointInterval
	fc.Fault = fmt.Sprintf("SIGKILL the manager (one replica, --usage-checkpoint-interval=%v --usage-settle-delay=%v) while the pods of %d organizations run; "+
		"while it is down, running pods finish and pending ones start; then start it again", interval, faultsSettleDelay, f.cfg.orgs)
	if err := f.only(ctx, 0); err != nil {
		return err
	}
	now := time.Now().Truncate(time.Second)
	periodStart := now.Add(-time.Hour)
	startDate := metav1.NewTime(periodStart)
	orgs, created, createErr := f.batchOf(ctx, "meter", f.cfg.orgs, func(o *tenancyv1alpha1.Organization) {
		o.Spec.Subscription = &tenancyv1alpha1.Subscription{StartDate: &startDate}
	})
	conv := f.converge(ctx, time.Now(), created)
	<-created
	if *createErr != nil {
		return *createErr
	}
	if !conv.Converged {
		return fmt.Errorf("the organizations to meter did not converge: %s", strings.Join(conv.Pending, ", "))
	}
	cl := f.c.clients[agentCreate]

	// Per organization, spread over its namespaces; times relative to now, in the period.
	var pods []*meteredPod
	byRole := map[string][]*meteredPod{}
	namespaces := map[string][]string{}
	wantStart := map[string]time.Time{}
	names := make([]string, 0, len(orgs))
	for i, o := range orgs {
		names = append(names, o.name)
		namespaces[o.name] = o.namespaces
		wantStart[o.name] = periodStart
		add := func(role string, ns int, start, end time.Duration) {
			p := &meteredPod{org: o.name, ns: o.namespaces[ns%len(o.namespaces)], name: role,
				cpuMilli: int64(100 + 50*((i+len(pods))%5)), memBytes: int64(64+32*((i+len(pods))%3)) << 20}
			if start != 0 {
				p.start = now.Add(start)
			}
			if end != 0 {
				p.end = now.Add(end)
			}
			pods = append(pods, p)
			byRole[role] = append(byRole[role], p)
		}
		add("long", 0, -40*time.Minute, 0)               // runs throughout
		add("stops", 1, -25*time.Minute, 0)              // finishes while the manager is down
		add("kept", 2, -50*time.Minute, -45*time.Minute) // finished, kept
		add("past", 1, -35*time.Minute, -20*time.Minute) // finished, deleted before the kill
		add("ends", 0, -10*time.Minute, 0)               // finishes and is deleted before the kill
		add("late", 2, 0, 0)                             // starts while the manager is down
		add("brief", 0, 0, 0)                            // starts and finishes while it is down
	}
	// The pods are created (the webhook admits them) and then, with the manager stopped, the
	// kubelet reports their starts and ends in the past: the first checkpoint, once it is back,
	// integrates the period from its start. (A start reported after a checkpoint that it
	// precedes loses the part before the checkpoint, as docs/metering.md says.)
	err := parallel(ctx, f.cfg.creators, len(pods), func(ctx context.Context, i int) error {
		p := pods[i]
		if err := cl.Create(ctx, benchPod(p.ns, p.name, p.cpuMilli, p.memBytes)); err != nil {
			return fmt.Errorf("creating pod %s: %w", p.key(), err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	f.rs.procs[0].stop(20 * time.Second)
	err = parallel(ctx, f.cfg.creators, len(pods), func(ctx context.Context, i int) error {
		if p := pods[i]; !p.start.IsZero() {
			return p.writeStatus(ctx, cl)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := f.only(ctx, 0); err != nil {
		return err
	}
	startedAt := time.Now()
	timeout := f.cfg.phaseTimeout
	if behind, err := waitCheckpoints(ctx, f.c.clients[agentVerify], names, startedAt, timeout); len(behind) > 0 || err != nil {
		return fmt.Errorf("no usage report checkpointed after the manager started for %d organizations (e.g. %s): %v", len(behind), firstN(behind, 3), err)
	}

	// While the manager runs: one pod finishes now, and it and one finished long ago are deleted;
	// a checkpoint after the deletions holds them before the kill.
	for _, p := range byRole["ends"] {
		p.end = time.Now().Truncate(time.Second)
	}
	err = parallel(ctx, f.cfg.creators, len(orgs), func(ctx context.Context, i int) error {
		p := byRole["ends"][i]
		if err := p.writeStatus(ctx, cl); err != nil {
			return err
		}
		for _, d := range []*meteredPod{p, byRole["past"][i]} {
			if err := cl.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: d.ns, Name: d.name}}, client.GracePeriodSeconds(0)); err != nil {
				return fmt.Errorf("deleting pod %s: %w", d.key(), err)
			}
			d.deleted = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	deletedAt := time.Now()
	if behind, err := waitCheckpoints(ctx, f.c.clients[agentVerify], names, deletedAt, timeout); len(behind) > 0 || err != nil {
		return fmt.Errorf("no checkpoint after the deletions for %d organizations (e.g. %s): %v", len(behind), firstN(behind, 3), err)
	}

	leader := f.rs.leader(ctx)
	if leader < 0 {
		return fmt.Errorf("no leader to kill")
	}
	f.rs.kill(leader)
	killedAt := time.Now()
	// While it is down: running pods finish, pending ones start, some of them finish too.
	kubelet := func(role string, set func(p *meteredPod)) error {
		return parallel(ctx, f.cfg.creators, len(byRole[role]), func(ctx context.Context, i int) error {
			p := byRole[role][i]
			set(p)
			return p.writeStatus(ctx, cl)
		})
	}
	stamp := func() time.Time { return time.Now().Truncate(time.Second) }
	if err := kubelet("stops", func(p *meteredPod) { p.end = stamp() }); err != nil {
		return err
	}
	if err := kubelet("late", func(p *meteredPod) { p.start = stamp() }); err != nil {
		return err
	}
	if err := kubelet("brief", func(p *meteredPod) { p.start = stamp() }); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	if err := kubelet("brief", func(p *meteredPod) { p.end = stamp() }); err != nil {
		return err
	}
	lastEvent := time.Now()
	// Down for two checkpoint intervals at least, then started again as the kubelet would.
	time.Sleep(time.Until(killedAt.Add(2 * interval)))
	restartedAt, leaderAfter, err := f.restartKilled(ctx, leader)
	if err != nil {
		return err
	}
	behind, err := waitCheckpoints(ctx, f.c.clients[agentVerify], names, lastEvent, timeout)
	if len(behind) > 0 || err != nil {
		return fmt.Errorf("no checkpoint after the last pod event for %d organizations (e.g. %s): %v", len(behind), firstN(behind, 3), err)
	}
	caughtUp := time.Since(restartedAt)
	check, _, err := checkReports(ctx, f.c.clients[agentVerify], namespaces, wantStart, pods)
	if err != nil {
		return err
	}
	// And again after a few more checkpoints of the running pods, over which writes are counted.
	if behind, err := waitCheckpoints(ctx, f.c.clients[agentVerify], names, time.Now().Add(2*interval), timeout); len(behind) > 0 || err != nil {
		return fmt.Errorf("no checkpoint two intervals after the first check for %d organizations (e.g. %s): %v", len(behind), firstN(behind, 3), err)
	}
	again, _, err := checkReports(ctx, f.c.clients[agentVerify], namespaces, wantStart, pods)
	if err != nil {
		return err
	}
	check.Problems = append(check.Problems, again.Problems...)
	check.Amounts += again.Amounts
	check.maxErr.Set(maxBig(&check.maxErr, &again.maxErr))
	check.MaxError = check.maxErr.String()
	checkedAt := time.Now()
	time.Sleep(time.Second) // writes received before checkedAt reach the audit log
	_ = f.audit.refresh()
	stored, creates, refused := reportWrites(f.audit.between(restartedAt, checkedAt, isOperator), names)
	elapsed := checkedAt.Sub(restartedAt)
	bound := int(elapsed/interval) + 1
	writes := countsDistribution(stored)
	lo, hi := writes.Min, writes.Max
	fc.Rounds = append(fc.Rounds, map[string]any{
		"organizations": check.Organizations, "podsChecked": check.Pods, "podsDeleted": check.PodsDeleted,
		"podsRunningAtCheck": check.PodsRunning, "amountsCompared": check.Amounts, "checks": 2, "maxError": check.MaxError,
		"secondsDown":                          round2(restartedAt.Sub(killedAt).Seconds()),
		"secondsToLeader":                      round2(leaderAfter.Seconds()),
		"secondsFromRestartToCheckpoint":       round2(caughtUp.Seconds()),
		"reportStatusWritesAfterRestartPerOrg": map[string]int{"min": lo, "median": writes.P50, "max": hi},
		"refusedReportWritesAfterRestart":      sumCounts(refused),
		"reportCreatesAfterRestart":            sumCounts(creates),
		"secondsFromRestartToCheck":            round2(elapsed.Seconds()),
		"reportStatusWritesAllowedPerOrg":      bound,
		"checkpointIntervalSeconds":            interval.Seconds(),
		"settleDelaySeconds":                   faultsSettleDelay.Seconds(),
	})
	logf("Metering: %d organizations, %d pods (%d deleted, %d running), %d amounts compared, max error %s; report status writes after the restart per organization %d to %d (at most %d allowed in %.1f s)",
		check.Organizations, check.Pods, check.PodsDeleted, check.PodsRunning, check.Amounts, check.MaxError, lo, hi, bound, elapsed.Seconds())
	for _, p := range check.Problems {
		fc.Problems = append(fc.Problems, "after the restart: "+p)
	}
	if check.Organizations != len(orgs) {
		fc.Problems = append(fc.Problems, fmt.Sprintf("%d of %d organizations have exactly one usage report", check.Organizations, len(orgs)))
	}
	if hi > bound {
		fc.Problems = append(fc.Problems, fmt.Sprintf("up to %d report status writes per organization in the %.1f s after the restart, more than the %d checkpoint intervals elapsed + 1", hi, elapsed.Seconds(), bound))
	}
	if lo == 0 {
		fc.Problems = append(fc.Problems, "an organization's report was not written after the restart")
	}
	f.check(ctx, fc, "after the metering restart")

	// The pods stop, so that the reports stop being written once they hold the ends.
	for _, role := range []string{"long", "late"} {
		if err := kubelet(role, func(p *meteredPod) { p.end = stamp() }); err != nil {
			return err
		}
	}
	return nil
}
