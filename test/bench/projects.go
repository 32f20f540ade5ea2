package main

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

// projectSlack is how far above the minimum the operator's writes per project may be.
const projectSlack = 0.10

// projectName is the i-th project of an organization; its namespace is left to the defaulting
// webhook, which names it <organization>-<project>.
func projectName(i int) string { return fmt.Sprintf("p%d", i+1) }

// projectsMinimum is the fewest operator writes per project when an organization creates n
// projects at once: the admission record on the organization's status that keeps maxNamespaces
// exact, the namespace, the RoleBindings of its roles in use, the project's status, and the
// organization's status (status.namespaces) once for the burst. The harness's organizations have
// no plan, so no quota objects.
func projectsMinimum(o *orgModel, n int) map[string]float64 {
	return map[string]float64{
		"patch organizations/status":        1 + 1/float64(n),
		"create namespaces":                 1,
		"create rolebindings":               float64(bindingsPerNamespace(o)),
		"patch organizationprojects/status": 1,
	}
}

// projects has every organization create -projects projects at once, as organization admins
// applying them from Git would, and waits until each project is Ready with its namespace, the
// organizations list the new namespaces and the members are bound there.
func (b *bench) projects(ctx context.Context) error {
	cl := b.c.clients[agentCreate]
	live := b.world.live()
	n := b.cfg.projects
	if len(live) == 0 {
		return fmt.Errorf("no organization left to create projects in")
	}
	minimum := map[string]float64{}
	for _, o := range live {
		for k, v := range projectsMinimum(o, n) {
			minimum[k] += v / float64(len(live))
		}
	}
	pr := b.begin("projects", fmt.Sprintf("Create %d projects in each of %d organizations at once; wait until every project is Ready and its members are bound",
		n, len(live)), len(live)*n, "project")
	var retries atomic.Int64
	conv, applyErr, took := b.applyAndWait(ctx, pr, check{projects: true}, false, func(ctx context.Context, deadline time.Time) error {
		return parallel(ctx, b.cfg.creators, len(live)*n, func(ctx context.Context, i int) error {
			o, name := live[i/n], projectName(i%n)
			b.world.mu.Lock()
			if o.projects == nil {
				o.projects = map[string]string{}
			}
			o.projects[name] = o.name + "-" + name
			o.namespaces = append(o.namespaces, o.projects[name])
			sort.Strings(o.namespaces)
			b.world.mu.Unlock()
			p := &tenancyv1alpha1.OrganizationProject{ObjectMeta: metav1.ObjectMeta{Namespace: o.name, Name: name}}
			return retry(ctx, deadline, &retries, func() error { return cl.Create(ctx, p.DeepCopy()) })
		})
	})
	quietAt, quiet := b.waitQuiet(ctx, settleTimeout)
	pr.converged(conv, quiet)
	p := b.finish(pr, quietAt, false)
	p.setMinimum(minimum)
	p.Extra = map[string]any{"createSeconds": round2(took.Seconds()), "createRetries": retries.Load(), "polls": conv.Polls}

	var times []float64
	var projectNames []string
	b.world.mu.Lock()
	for _, o := range live {
		for name := range o.projects {
			projectNames = append(projectNames, o.name+"/"+name)
			if t, ok := conv.ReadyAt["project/"+o.name+"/"+name]; ok {
				times = append(times, t.Sub(pr.start).Seconds())
			}
		}
	}
	b.world.mu.Unlock()
	sort.Strings(projectNames)
	p.TimeToReady = map[string]Percentiles{"project (from the first create)": percentiles(times).round(round2)}
	p.Distributions = map[string]Distribution{
		"organizationprojects/status patches per project": perObject(filterRecords(p.records, "patch", "organizationprojects", "status"), projectNames),
	}
	goal := p.MinimumWritesPerUnit * (1 + projectSlack)
	b.res.Bars = append(b.res.Bars, Bar{What: "projects",
		Target: fmt.Sprintf("writes per project within %.0f %% of the minimum (%.2f, so ≤ %.2f)", projectSlack*100, p.MinimumWritesPerUnit, goal),
		Value:  p.WritesPerUnit, Unit: "writes/project", Met: p.Converged && p.WritesPerUnit <= goal})
	b.verifyNow(ctx, "projects")
	if applyErr != nil {
		return applyErr
	}
	if !conv.Converged {
		return fmt.Errorf("not converged after %v; pending: %v", b.cfg.phaseTimeout, conv.Pending)
	}
	return b.verificationError("projects")
}
