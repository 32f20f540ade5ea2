package main

import (
	"fmt"
	"sort"
	"strings"
)

// markdown renders the results as the tables docs/performance.md uses.
func markdown(r *Result) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	c := r.Config
	if len(r.Faults) > 0 {
		w("\n## org-operator fault suite\n\n%s, commit %s. %d CPUs (%s), %.0f GiB.\n", r.Date, r.Commit, r.Machine.CPUs, r.Machine.CPUModel, r.Machine.MemoryGiB)
		w("%d organizations per batch, %d members (%d admin) and %d namespaces each; the chart's manager flags (leader election, webhooks) with --concurrency=%d --kube-api-qps=%g --kube-api-burst=%d.\n",
			c.Orgs, c.MembersPerOrg, c.AdminsPerOrg, c.NamespacesPerOrg, c.Concurrency, c.QPS, c.Burst)
		w("%s", faultsMarkdown(r.Faults))
		return b.String()
	}
	w("\n## org-operator benchmark, %d organizations\n\n", c.Orgs)
	w("%s, commit %s", r.Date, r.Commit)
	if len(r.DirtyFiles) > 0 {
		w(" with local changes (%s)", strings.Join(r.DirtyFiles, "; "))
	}
	w(". %d CPUs (%s), %.0f GiB; load average %s at the start, %s at the end.\n", r.Machine.CPUs, r.Machine.CPUModel,
		r.Machine.MemoryGiB, r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd)
	w("%d members (%d admin) and %d namespaces per organization; manager --concurrency=%d --kube-api-qps=%g --kube-api-burst=%d, webhooks %v.\n",
		c.MembersPerOrg, c.AdminsPerOrg, c.NamespacesPerOrg, c.Concurrency, c.QPS, c.Burst, c.Webhooks)
	if f := r.Floor; f != nil {
		w("Floor (the converge scenario's creates and the operator's fewest writes, %d writers, no operator, a control plane of its own): %s writes in %.2f s, %s writes/s.\n",
			f.Writers, thousands(f.Writes), f.Seconds, thousands(int(f.WritesPerSecond+0.5)))
		for _, p := range r.Phases {
			if p.FloorRatio > 0 {
				w("%s %.2f s = %.2f× floor (%.2f s, %s writes).\n", p.Name, p.Seconds, p.FloorRatio, f.Seconds, thousands(f.Writes))
			}
		}
	}
	w("\n")

	w("| Phase | What | Time (s) | Operator writes | Writes per unit (minimum) | Reads | Events | Operator CPU (s) | Peak RSS / heap (MiB) |\n")
	w("|---|---|---:|---:|---|---:|---:|---:|---|\n")
	for _, p := range r.Phases {
		t := fmt.Sprintf("%.2f", p.Seconds)
		if !p.Converged {
			t += " (not converged)"
		}
		per := fmt.Sprintf("%.2f / %s", p.WritesPerUnit, p.UnitName)
		if p.MinimumWritesPerUnit > 0 {
			per += fmt.Sprintf(" (%.2f)", p.MinimumWritesPerUnit)
		}
		w("| %s | %s | %s | %d | %s | %d | %d | %.1f | %.0f / %.0f |\n", p.Name, p.Description, t, p.Operator.Writes, per,
			p.Operator.Reads, p.Operator.Events, p.OperatorCPUSeconds, p.PeakRSSMiB, p.PeakHeapInuseMiB)
	}
	for _, s := range r.Skipped {
		w("| %s | %s | – | – | – | – | – | – | – |\n", s.Scenario, s.Reason)
	}
	for _, e := range r.Errors {
		w("\n**Failed:** %s\n", e)
	}
	w("\nOperator over the run: peak RSS %.1f MiB, peak heap in use %.1f MiB, %.1f CPU seconds.\n", r.Operator.PeakRSSMiB, r.Operator.PeakHeapInuseMiB, r.Operator.CPUSeconds)
	w("CPU seconds by process: %s.\n", formatFloats(r.CPUSecondsByProcess))

	if len(r.Bars) > 0 {
		w("\n| Target | Measured | Met |\n|---|---:|---|\n")
		for _, bar := range r.Bars {
			w("| %s | %.2f %s | %v |\n", bar.Target, bar.Value, bar.Unit, yesNo(bar.Met))
		}
	}

	w("%s", quotaMarkdown(r))
	w("%s", meteringMarkdown(r))
	w("%s", changesMarkdown(r))

	for _, p := range r.Phases {
		if len(p.TimeToReady) > 0 {
			w("\nTime to converged, %s (s): ", p.Name)
			for _, k := range sortedKeys(p.TimeToReady) {
				q := p.TimeToReady[k]
				w("%s p50 %.2f, p90 %.2f, p99 %.2f, max %.2f (n=%d); ", k, q.P50, q.P90, q.P99, q.Max, q.N)
			}
			w("\n")
		}
	}

	for _, p := range r.Phases {
		if p.Operator.Writes == 0 && p.MinimumWritesPerUnit == 0 {
			continue
		}
		w("\n### Writes in %s, per %s (%d %ss)\n\n", p.Name, p.UnitName, p.Units, p.UnitName)
		w("| Request | Count | Per %s | Minimum per %s | Failed (code) |\n|---|---:|---:|---:|---|\n", p.UnitName, p.UnitName)
		keys := map[string]bool{}
		for k := range p.Operator.ByRequest {
			if isWriteKey(k) {
				keys[k] = true
			}
		}
		for k := range p.MinimumByRequest {
			keys[k] = true
		}
		failures := map[string][]string{}
		for k, n := range p.Operator.FailuresByRequest {
			i := strings.LastIndexByte(k, ' ')
			failures[k[:i]] = append(failures[k[:i]], fmt.Sprintf("%d×%s", n, k[i+1:]))
		}
		for _, k := range sortedKeys(keys) {
			n := p.Operator.ByRequest[k]
			sort.Strings(failures[k])
			w("| %s | %d | %.2f | %.2f | %s |\n", k, n, float64(n)/float64(max(p.Units, 1)), p.MinimumByRequest[k], strings.Join(failures[k], ", "))
		}
		w("| **writes** | %d | %.2f | %.2f | %d failed |\n", p.Operator.Writes, p.WritesPerUnit, p.MinimumWritesPerUnit, p.Operator.FailedWrites)
		if p.Operator.Events > 0 || p.Operator.Reviews > 0 {
			w("\nNot counted as writes: %d events, %d SubjectAccessReviews (the namespace webhook).\n", p.Operator.Events, p.Operator.Reviews)
		}
		if len(p.Distributions) > 0 {
			w("\n| Spread | Objects | Min | p50 | Max | Mean |\n|---|---:|---:|---:|---:|---:|\n")
			for _, k := range sortedKeys(p.Distributions) {
				d := p.Distributions[k]
				w("| %s | %d | %d | %d | %d | %.2f |\n", k, d.Objects, d.Min, d.P50, d.Max, d.Mean)
			}
		}
		for _, res := range sortedKeys(p.StatusPatchCauses) {
			w("\nWhat the %s/status patches changed: %s.\n", res, formatCauses(p.StatusPatchCauses[res]))
		}
		if len(p.Reconciles) > 0 {
			w("\nReconciles: %s; errors: %s. Mean reconcile (s): %s; mean queue wait (s): %s; worker utilisation: %s.\n",
				formatFloats(p.Reconciles), formatFloats(p.ReconcileErrors), formatFloats3(p.MeanReconcileSeconds),
				formatFloats3(p.MeanQueueSeconds), formatFloats3(p.WorkerUtilization))
		}
		w("Operator write latency (s): p50 %.3f, p90 %.3f, p99 %.3f. CPU seconds by process: %s.\n",
			p.Operator.WriteLatency.P50, p.Operator.WriteLatency.P90, p.Operator.WriteLatency.P99, formatFloats(p.CPUSecondsByProcess))
	}

	w("\n### Harness traffic (kept apart from the operator's)\n\n| Phase | Client | Requests (audit log) | Requests counted by the client |\n|---|---|---|---|\n")
	for _, p := range r.Phases {
		for _, agent := range sortedKeys(p.HarnessClient) {
			w("| %s | %s | %d | %s |\n", p.Name, agent, p.Harness[agent].Total, formatInts(p.HarnessClient[agent]))
		}
	}
	w("\nCross-check of the harness's counts against the audit log: %s.\n", strings.Join(r.CrossCheck, "; "))
	for _, k := range sortedKeys(r.Verification) {
		if v := r.Verification[k]; len(v) == 0 {
			w("Verification after %s: every RoleBinding and ClusterRoleBinding as expected.\n", k)
		} else {
			w("Verification after %s: %d differences: %s.\n", k, len(v), strings.Join(v, "; "))
		}
	}
	return b.String()
}

func isWriteKey(k string) bool {
	verb, res, _ := strings.Cut(k, " ")
	info := requestInfo{Verb: verb, Resource: strings.Split(res, "/")[0]}
	if res == "(non-resource)" {
		info.Resource = ""
	}
	return info.class() == classWrite
}

// thousands writes n with commas between groups of three digits.
func thousands(n int) string {
	s := fmt.Sprint(n)
	start := 0
	if n < 0 {
		start = 1
	}
	for i := len(s) - 3; i > start; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

func formatFloats(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %.1f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func formatFloats3(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %.3f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func formatInts(m map[string]int) string {
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// faultsMarkdown is the table of the fault cases, then each case's rounds.
func faultsMarkdown(cases []*FaultCase) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("\n### Fault cases\n\n| Case | Fault | Passed | Time (s) |\n|---|---|---|---:|\n")
	for _, c := range cases {
		w("| %s | %s | %s | %.1f |\n", c.Name, c.Fault, yesNo(c.Passed), c.Seconds)
	}
	for _, c := range cases {
		w("\n**%s**\n", c.Name)
		for _, p := range c.Problems {
			w("- problem: %s\n", p)
		}
		for _, round := range c.Rounds {
			keys := sortedKeys(round)
			parts := make([]string, 0, len(keys))
			for _, k := range keys {
				parts = append(parts, fmt.Sprintf("%s %s", k, formatRoundValue(round[k])))
			}
			w("- %s\n", strings.Join(parts, ", "))
		}
	}
	return b.String()
}

// formatRoundValue writes a fault round's value: maps as {k: v, ...} with sorted keys.
func formatRoundValue(v any) string {
	entries := func(keys []string, value func(string) any) string {
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s: %s", k, formatRoundValue(value(k))))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	switch m := v.(type) {
	case map[string]any:
		return entries(sortedKeys(m), func(k string) any { return m[k] })
	case map[string]int:
		return entries(sortedKeys(m), func(k string) any { return m[k] })
	case map[string]string:
		return entries(sortedKeys(m), func(k string) any { return m[k] })
	case []string:
		return "[" + strings.Join(m, "; ") + "]"
	}
	return fmt.Sprint(v)
}
