// Command kubectl-org is a kubectl plugin for org-operator's organizations. Install it with
// `go install github.com/orgoperator/org-operator/cmd/kubectl-org@latest`; kubectl then runs it as
// `kubectl org`.
//
//	kubectl org usage ORGANIZATION [--interval day|month] [--from YYYY-MM-DD] [--to YYYY-MM-DD] [-o table|json]
//
// usage prints an organization's metered usage from its OrganizationUsageReports: per day or per
// billing period, the organization's total, each namespace's (and its project's), and the deleted
// namespaces' together, as a table with a bar chart, or as JSON.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/metering"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

const usageText = `Usage: kubectl org usage ORGANIZATION [--interval day|month] [--from YYYY-MM-DD] [--to YYYY-MM-DD] [-o table|json] [--kubeconfig FILE]`

// run runs the plugin with args (without the program's name), writing to out.
func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] != "usage" {
		return errors.New(usageText)
	}
	fs := flag.NewFlagSet("usage", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	interval := fs.String("interval", "month", "day or month")
	from := fs.String("from", "", "first day, YYYY-MM-DD (default: the current period's start)")
	to := fs.String("to", "", "last day, YYYY-MM-DD, included (default: the current period's end)")
	output := fs.String("o", "table", "table or json")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	// Flags may follow the organization's name, as kubectl users write them.
	var positional []string
	rest := args[1:]
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return fmt.Errorf("%w\n%s", err, usageText)
		}
		rest = fs.Args()
		if len(rest) > 0 {
			positional = append(positional, rest[0])
			rest = rest[1:]
		}
	}
	if len(positional) != 1 {
		return errors.New(usageText)
	}
	if *interval != "day" && *interval != "month" {
		return fmt.Errorf("--interval must be day or month, not %q", *interval)
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("-o must be table or json, not %q", *output)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return err
	}
	scheme := tenancyv1alpha1.SchemeBuilder
	s, err := scheme.Build()
	if err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		return err
	}
	u, err := collect(ctx, c, positional[0], *interval, *from, *to)
	if err != nil {
		return err
	}
	if *output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(u)
	}
	return printTable(out, u)
}

// Usage is what the plugin prints: the shape of the organization API's usage response.
type Usage struct {
	Organization string `json:"organization"`
	Interval     string `json:"interval"`
	From         string `json:"from"`
	To           string `json:"to"`
	// Data is the organization's usage per day or per period.
	Data []Row `json:"data"`
	// DataProjects is each namespace's usage over the periods shown.
	DataProjects []Row `json:"data_projects"`
	// DataProjectsDeleted is the deleted namespaces' usage together.
	DataProjectsDeleted *Row `json:"data_projects_deleted,omitempty"`
}

// Row is the usage of a day, a period or a namespace.
type Row struct {
	Date      string `json:"date,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Project   string `json:"project,omitempty"`
	// PodSeconds, CPUCoreSeconds and MemoryByteSeconds integrate requests; Credits are absent
	// when the plan prices nothing.
	PodSeconds        int64  `json:"podSeconds"`
	CPUCoreSeconds    string `json:"cpuCoreSeconds"`
	MemoryByteSeconds string `json:"memoryByteSeconds"`
	Credits           string `json:"credits,omitempty"`

	amount metering.Amount
}

func collect(ctx context.Context, c client.Client, name, interval, fromFlag, toFlag string) (*Usage, error) {
	org := &tenancyv1alpha1.Organization{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, org); err != nil {
		return nil, err
	}
	home := org.Status.HomeNamespace
	if home == "" {
		home = org.Name
	}
	reports := &tenancyv1alpha1.OrganizationUsageReportList{}
	if err := c.List(ctx, reports, client.InNamespace(home), client.MatchingLabels{tenancyv1alpha1.OrganizationLabel: name}); err != nil {
		return nil, err
	}
	projects := &tenancyv1alpha1.OrganizationProjectList{}
	if err := c.List(ctx, projects, client.InNamespace(home)); err != nil {
		return nil, err
	}
	projectOf := map[string]string{}
	for _, p := range projects.Items {
		projectOf[p.Spec.Namespace] = p.Name
	}
	from, to, err := span(org, fromFlag, toFlag)
	if err != nil {
		return nil, err
	}
	u := &Usage{Organization: name, Interval: interval, From: from.Format(time.DateOnly), To: to.Add(-time.Second).Format(time.DateOnly)}
	slices.SortFunc(reports.Items, func(a, b tenancyv1alpha1.OrganizationUsageReport) int {
		return a.Spec.PeriodStart.Compare(b.Spec.PeriodStart.Time)
	})
	byNamespace := map[string]*Row{}
	var deleted *Row
	for _, r := range reports.Items {
		if !r.Spec.PeriodStart.Time.Before(to) || !r.Spec.PeriodEnd.Time.After(from) {
			continue
		}
		switch interval {
		case "month":
			u.Data = append(u.Data, row(r.Spec.PeriodStart.UTC().Format(time.DateOnly), metering.FromUsage(&r.Status.Total), r.Status.Total.Credits))
		default:
			for _, d := range r.Status.Days {
				day, err := time.Parse(time.DateOnly, d.Date)
				// A day is in the span when any of it is.
				if err != nil || !day.Add(24*time.Hour).After(from) || !day.Before(to) {
					continue
				}
				u.Data = append(u.Data, row(d.Date, metering.FromUsage(&d.MeteredUsage), d.Credits))
			}
		}
		for _, ns := range r.Status.Namespaces {
			acc := byNamespace[ns.Name]
			if acc == nil {
				acc = &Row{Namespace: ns.Name, Project: projectOf[ns.Name]}
				byNamespace[ns.Name] = acc
			}
			a := metering.FromNamespaceUsage(&ns)
			acc.amount.Add(&a)
		}
		if r.Status.DeletedNamespaces != nil {
			if deleted == nil {
				deleted = &Row{}
			}
			a := metering.FromUsage(r.Status.DeletedNamespaces)
			deleted.amount.Add(&a)
		}
	}
	for _, acc := range byNamespace {
		r := row("", acc.amount, nil)
		r.Namespace, r.Project = acc.Namespace, acc.Project
		u.DataProjects = append(u.DataProjects, r)
	}
	slices.SortFunc(u.DataProjects, func(a, b Row) int { return strings.Compare(a.Namespace, b.Namespace) })
	if deleted != nil {
		r := row("", deleted.amount, nil)
		u.DataProjectsDeleted = &r
	}
	if u.Data == nil {
		u.Data = []Row{}
	}
	if u.DataProjects == nil {
		u.DataProjects = []Row{}
	}
	return u, nil
}

// span is [from, to) from the flags, days in UTC; by default the current billing period.
func span(org *tenancyv1alpha1.Organization, fromFlag, toFlag string) (time.Time, time.Time, error) {
	var from, to time.Time
	if m := org.Status.Metering; m != nil {
		from, to = m.PeriodStart.UTC(), m.PeriodEnd.UTC()
	} else {
		now := time.Now().UTC()
		from, to = now.AddDate(0, 0, -30), now
	}
	if fromFlag != "" {
		t, err := time.Parse(time.DateOnly, fromFlag)
		if err != nil {
			return from, to, fmt.Errorf("--from: %w", err)
		}
		from = t
	}
	if toFlag != "" {
		t, err := time.Parse(time.DateOnly, toFlag)
		if err != nil {
			return from, to, fmt.Errorf("--to: %w", err)
		}
		to = t.AddDate(0, 0, 1)
	}
	if !from.Before(to) {
		return from, to, errors.New("--from must not be after --to")
	}
	return from, to, nil
}

func row(date string, a metering.Amount, credits *resource.Quantity) Row {
	r := Row{Date: date, PodSeconds: a.PodSeconds, amount: a,
		CPUCoreSeconds:    resource.NewMilliQuantity(a.MilliCPUSeconds, resource.DecimalSI).String(),
		MemoryByteSeconds: new(big.Int).Set(&a.ByteSeconds).String()}
	if credits != nil {
		r.Credits = credits.String()
	}
	return r
}

// hours formats an amount in hours, to four decimals.
func hours(v *big.Rat) string { return v.FloatString(4) }

func coreHours(a *metering.Amount) *big.Rat {
	return new(big.Rat).SetFrac(big.NewInt(a.MilliCPUSeconds), big.NewInt(3600*1000))
}

func gibHours(a *metering.Amount) *big.Rat {
	return new(big.Rat).SetFrac(&a.ByteSeconds, new(big.Int).Mul(big.NewInt(3600), new(big.Int).Lsh(big.NewInt(1), 30)))
}

func podHours(a *metering.Amount) *big.Rat {
	return new(big.Rat).SetFrac(big.NewInt(a.PodSeconds), big.NewInt(3600))
}

const barWidth = 30

func printTable(out io.Writer, u *Usage) error {
	var b strings.Builder
	label := "PERIOD"
	if u.Interval == "day" {
		label = "DAY"
	}
	fmt.Fprintf(&b, "Organization %s, %s to %s, by %s\n", u.Organization, u.From, u.To, u.Interval)
	fmt.Fprintf(&b, "%-12s %12s %12s %12s %12s  %s\n", label, "POD-HOURS", "CORE-HOURS", "GIB-HOURS", "CREDITS", "CORE-HOURS")
	var most *big.Rat
	for i := range u.Data {
		if h := coreHours(&u.Data[i].amount); most == nil || h.Cmp(most) > 0 {
			most = h
		}
	}
	for i := range u.Data {
		r := &u.Data[i]
		fmt.Fprintf(&b, "%-12s %12s %12s %12s %12s  %s\n", r.Date, hours(podHours(&r.amount)), hours(coreHours(&r.amount)),
			hours(gibHours(&r.amount)), dash(r.Credits), bar(coreHours(&r.amount), most))
	}
	if len(u.Data) == 0 {
		b.WriteString("(no usage)\n")
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "%-24s %-16s %12s %12s %12s\n", "NAMESPACE", "PROJECT", "POD-HOURS", "CORE-HOURS", "GIB-HOURS")
	rows := slices.Clone(u.DataProjects)
	if u.DataProjectsDeleted != nil {
		d := *u.DataProjectsDeleted
		d.Namespace = "(deleted)"
		rows = append(rows, d)
	}
	for i := range rows {
		r := &rows[i]
		fmt.Fprintf(&b, "%-24s %-16s %12s %12s %12s\n", r.Namespace, dash(r.Project), hours(podHours(&r.amount)),
			hours(coreHours(&r.amount)), hours(gibHours(&r.amount)))
	}
	_, err := io.WriteString(out, b.String())
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// bar is v's share of most as a bar of up to barWidth blocks.
func bar(v, most *big.Rat) string {
	if most == nil || most.Sign() == 0 {
		return ""
	}
	n, _ := new(big.Rat).Quo(new(big.Rat).Mul(v, big.NewRat(barWidth, 1)), most).Float64()
	blocks := int(n + 0.5)
	if blocks == 0 && v.Sign() > 0 {
		return "▏"
	}
	return strings.Repeat("█", blocks)
}
