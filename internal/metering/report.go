package metering

import (
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/podcache"
)

// PodSource gives a namespace's live pods and those deleted since they were last checkpointed.
type PodSource func(namespace string) (live, gone []*podcache.Pod)

// Advance is a report's status carried forward from its checkpoint to a later moment (at most the
// period's end): what every pod of the namespaces used in between, read from the pods' own times, is
// added to the total, its days and its namespaces. namespaces are the organization's now; a
// namespace the status lists that is no longer one of them moves into deletedNamespaces.
type Advance struct {
	// Status is the report's new status.
	Status tenancyv1alpha1.OrganizationUsageReportStatus
	// Delta is what was added.
	Delta Amount
	// Total is the new total, as an Amount.
	Total Amount
	// Running says some pod was still using resources at the new checkpoint: usage keeps growing.
	Running bool
	// Rate is what the pods running at the new checkpoint add per second.
	Rate Amount
	// Counted are the namespaces whose pods were read.
	Counted []string
}

// AdvanceStatus carries status forward to upTo; see Advance. prices (nil: none) price the total
// and the days.
func AdvanceStatus(status *tenancyv1alpha1.OrganizationUsageReportStatus, period Period, namespaces []string,
	pods PodSource, upTo time.Time, prices *tenancyv1alpha1.MeteringPrices) Advance {
	from := period.Start.Unix()
	if status.CheckpointTime != nil {
		from = max(from, status.CheckpointTime.Unix())
	}
	to := min(upTo.Unix(), period.End.Unix())
	to = max(to, from)
	out := Advance{Total: FromUsage(&status.Total)}
	days := map[string]*Amount{}
	for i := range status.Days {
		a := FromUsage(&status.Days[i].MeteredUsage)
		days[status.Days[i].Date] = &a
	}
	listed := map[string]*Amount{}
	for i := range status.Namespaces {
		a := FromNamespaceUsage(&status.Namespaces[i])
		listed[status.Namespaces[i].Name] = &a
	}
	current := map[string]bool{}
	for _, ns := range namespaces {
		current[ns] = true
	}
	counted := slices.Clone(namespaces)
	for ns := range listed {
		if !current[ns] {
			counted = append(counted, ns)
		}
	}
	slices.Sort(counted)
	counted = slices.Compact(counted)
	out.Counted = counted
	spans := Days(from, to)
	deleted := FromUsage(status.DeletedNamespaces)
	for _, ns := range counted {
		live, gone := pods(ns)
		var delta Amount
		for _, p := range append(live, gone...) {
			if p.Start == 0 {
				continue
			}
			for _, d := range spans {
				var a Amount
				a.AddPod(p, d.From, d.To)
				if a.IsZero() {
					continue
				}
				if days[d.Date] == nil {
					days[d.Date] = &Amount{}
				}
				days[d.Date].Add(&a)
				delta.Add(&a)
			}
			if p.End == 0 || p.End > to {
				out.Running = true
				out.Rate.AddPod(&podcache.Pod{Requests: p.Requests, Limits: p.Limits, Start: 1}, 1, 2)
			}
		}
		out.Delta.Add(&delta)
		switch acc := listed[ns]; {
		case !current[ns]:
			// Deleted or gone from the organization: what it used goes to the deleted namespaces.
			deleted.Add(acc)
			deleted.Add(&delta)
			delete(listed, ns)
		case acc != nil:
			acc.Add(&delta)
		case !delta.IsZero() && len(listed) < tenancyv1alpha1.MaxReportNamespaces:
			listed[ns] = &delta
		}
	}
	out.Total.Add(&out.Delta)
	st := tenancyv1alpha1.OrganizationUsageReportStatus{Allowance: status.Allowance}
	t := metav1.NewTime(time.Unix(to, 0).UTC())
	st.CheckpointTime = &t
	st.Total = out.Total.Usage(prices)
	if !deleted.IsZero() {
		u := deleted.Usage(prices)
		st.DeletedNamespaces = &u
	}
	for date, a := range days {
		st.Days = append(st.Days, tenancyv1alpha1.DayUsage{Date: date, MeteredUsage: a.Usage(prices)})
	}
	slices.SortFunc(st.Days, func(a, b tenancyv1alpha1.DayUsage) int { return strings.Compare(a.Date, b.Date) })
	for name, a := range listed {
		st.Namespaces = append(st.Namespaces, a.NamespaceUsage(name))
	}
	slices.SortFunc(st.Namespaces, func(a, b tenancyv1alpha1.NamespaceMeteredUsage) int { return strings.Compare(a.Name, b.Name) })
	out.Status = st
	return out
}
