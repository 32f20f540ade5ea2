package metering

import (
	"fmt"
	"time"
)

// Period is a billing period, [Start, End).
type Period struct {
	Start, End time.Time
}

// PeriodAt is the monthly period that holds now, counted from start: the n-th period begins n
// months after start, on start's day of the month, or on the month's last day when it has no
// such day (a subscription started on the 31st renews on the 30th of April), at start's time of
// day. Before start, the first period.
func PeriodAt(start, now time.Time) Period {
	start = start.UTC().Truncate(time.Second)
	n := (now.UTC().Year()-start.Year())*12 + int(now.UTC().Month()) - int(start.Month())
	n = max(n, 0)
	for n > 0 && monthsAfter(start, n).After(now) {
		n--
	}
	for !monthsAfter(start, n+1).After(now) {
		n++
	}
	return Period{Start: monthsAfter(start, n), End: monthsAfter(start, n+1)}
}

// Previous is the period before p.
func (p Period) Previous(start time.Time) Period {
	return PeriodAt(start, p.Start.Add(-time.Second))
}

func monthsAfter(start time.Time, n int) time.Time {
	y, m := start.Year(), start.Month()+time.Month(n)
	first := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	last := first.AddDate(0, 1, -1).Day()
	return time.Date(first.Year(), first.Month(), min(start.Day(), last),
		start.Hour(), start.Minute(), start.Second(), 0, time.UTC)
}

// ReportName is the name of an organization's report for the period.
func ReportName(org string, p Period) string {
	return fmt.Sprintf("%s-%s", org, p.Label())
}

// Label is the period's first day, YYYY-MM-DD.
func (p Period) Label() string { return p.Start.Format(time.DateOnly) }

// Days splits [from, to) into UTC calendar days: each day's date and its part of the span, in
// Unix seconds.
func Days(from, to int64) []Day {
	var out []Day
	for s := from; s < to; {
		t := time.Unix(s, 0).UTC()
		next := time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC).Unix()
		e := min(next, to)
		out = append(out, Day{Date: t.Format(time.DateOnly), From: s, To: e})
		s = e
	}
	return out
}

// Day is one UTC calendar day's part of a span.
type Day struct {
	Date     string
	From, To int64
}
