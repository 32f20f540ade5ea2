package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"
)

// auditPolicy logs, at Metadata level and once per request (when the response is complete),
// what the operator and the harness ask of the API server; nothing else is logged, so that the
// log stays small and its writing costs the API server little. The operator's status patches and
// ClusterRoleBinding updates are logged with their body (level Request), so that the report can
// say what each of them changed. users[0] is the operator.
func auditPolicy(users ...string) string {
	quoted := ""
	for i, u := range users {
		if i > 0 {
			quoted += ", "
		}
		quoted += fmt.Sprintf("%q", u)
	}
	return fmt.Sprintf(`apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
- level: Request
  users: [%q]
  verbs: ["patch", "update"]
  resources:
  - group: tenancy.orgoperator.io
    resources: ["organizations/status", "organizationmembers/status", "organizationprojects/status"]
  - group: rbac.authorization.k8s.io
    resources: ["clusterrolebindings"]
- level: Metadata
  users: [%s]
- level: None
`, users[0], quoted)
}

// auditEvent is the part of an audit.k8s.io/v1 Event the benchmark reads.
type auditEvent struct {
	Stage     string `json:"stage"`
	Verb      string `json:"verb"`
	UserAgent string `json:"userAgent"`
	User      struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	RequestObject            json.RawMessage `json:"requestObject"`
	RequestReceivedTimestamp time.Time       `json:"requestReceivedTimestamp"`
	StageTimestamp           time.Time       `json:"stageTimestamp"`
}

// auditRecord is one completed request.
type auditRecord struct {
	At      time.Time     // when the API server received it
	Latency time.Duration // until the response was complete
	User    string
	Agent   string
	Body    json.RawMessage // the request body, for the requests logged at level Request
	requestInfo
}

// auditLog reads the API server's audit log as it grows.
type auditLog struct {
	path string

	mu      sync.Mutex
	offset  int64
	partial []byte
	records []auditRecord
	bad     int
}

func newAuditLog(path string) *auditLog { return &auditLog{path: path} }

// refresh reads what was appended since the last call.
func (a *auditLog) refresh() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	f, err := os.Open(a.path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(a.offset, io.SeekStart); err != nil {
		return err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	a.offset += int64(len(data))
	data = append(a.partial, data...)
	last := bytes.LastIndexByte(data, '\n')
	if last < 0 {
		a.partial = data
		return nil
	}
	a.partial = append([]byte(nil), data[last+1:]...)
	for _, line := range bytes.Split(data[:last], []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		var ev auditEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			a.bad++
			continue
		}
		if ev.Stage != "ResponseComplete" && ev.Stage != "Panic" {
			continue
		}
		rec := auditRecord{At: ev.RequestReceivedTimestamp, Latency: ev.StageTimestamp.Sub(ev.RequestReceivedTimestamp),
			User: ev.User.Username, Agent: ev.UserAgent}
		if len(ev.RequestObject) > 0 && string(ev.RequestObject) != "null" {
			rec.Body = ev.RequestObject
		}
		rec.Verb = ev.Verb
		if ev.ObjectRef != nil {
			rec.Resource, rec.Subresource = ev.ObjectRef.Resource, ev.ObjectRef.Subresource
			rec.Namespace, rec.Name = ev.ObjectRef.Namespace, ev.ObjectRef.Name
		}
		if ev.ResponseStatus != nil {
			rec.Code = ev.ResponseStatus.Code
		}
		a.records = append(a.records, rec)
	}
	return nil
}

// between returns the records of requests received in [from, to) that keep says to keep.
func (a *auditLog) between(from, to time.Time, keep func(*auditRecord) bool) []auditRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []auditRecord
	for i := range a.records {
		r := &a.records[i]
		if !r.At.Before(from) && r.At.Before(to) && keep(r) {
			out = append(out, *r)
		}
	}
	return out
}

// lastAt returns when the last kept request (not a watch) was received.
func (a *auditLog) lastAt(keep func(*auditRecord) bool) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	var last time.Time
	for i := range a.records {
		r := &a.records[i]
		if r.Verb != "watch" && keep(r) && r.At.After(last) {
			last = r.At
		}
	}
	return last
}

// Requests summarises a set of requests.
type Requests struct {
	Total int `json:"total"`
	// Reads are gets and lists; Watches are watch requests that ended within the window (open
	// watches are logged only when they end).
	Reads   int `json:"reads"`
	Watches int `json:"watches"`
	// Writes are creates, updates, patches and deletes of stored objects other than events.
	Writes int `json:"writes"`
	// FailedWrites are the Writes the API server refused (409 conflicts, 404, 422...).
	FailedWrites int `json:"failedWrites"`
	Events       int `json:"events"`
	Reviews      int `json:"reviews"`
	Other        int `json:"other"`
	// ByRequest counts "verb resource[/subresource]".
	ByRequest map[string]int `json:"byRequest"`
	// FailuresByRequest counts the failed writes as "verb resource[/subresource] code".
	FailuresByRequest map[string]int `json:"failuresByRequest,omitempty"`
	// PeakWritesPerSecond is the highest number of writes in one second of the window.
	PeakWritesPerSecond int `json:"peakWritesPerSecond"`
	// WriteLatency and ReadLatency are the API server's response times, in seconds (audit log:
	// received to response complete), webhook calls and admission included.
	WriteLatency Percentiles `json:"writeLatency"`
	ReadLatency  Percentiles `json:"readLatency"`
}

func summarize(records []auditRecord) Requests {
	s := Requests{ByRequest: map[string]int{}, FailuresByRequest: map[string]int{}}
	perSecond := map[int64]int{}
	var writeLat, readLat []float64
	for _, r := range records {
		s.Total++
		s.ByRequest[r.key()]++
		switch r.class() {
		case classRead:
			s.Reads++
			readLat = append(readLat, r.Latency.Seconds())
		case classWatch:
			s.Watches++
		case classWrite:
			s.Writes++
			writeLat = append(writeLat, r.Latency.Seconds())
			perSecond[r.At.Unix()]++
			if r.Code >= 400 {
				s.FailedWrites++
				s.FailuresByRequest[fmt.Sprintf("%s %d", r.key(), r.Code)]++
			}
		case classEvent:
			s.Events++
		case classReview:
			s.Reviews++
		default:
			s.Other++
		}
	}
	for _, n := range perSecond {
		s.PeakWritesPerSecond = max(s.PeakWritesPerSecond, n)
	}
	s.WriteLatency, s.ReadLatency = percentilesMilli(writeLat), percentilesMilli(readLat)
	if len(s.FailuresByRequest) == 0 {
		s.FailuresByRequest = nil
	}
	return s
}

// Distribution describes how many requests of one kind each object received.
type Distribution struct {
	Objects int     `json:"objects"`
	Min     int     `json:"min"`
	P50     int     `json:"p50"`
	Max     int     `json:"max"`
	Mean    float64 `json:"mean"`
}

// perObject counts the records by namespace/name and describes the counts, over the objects
// named in all (objects that received no request count as 0).
func perObject(records []auditRecord, all []string) Distribution {
	counts := map[string]int{}
	for _, name := range all {
		counts[name] = 0
	}
	for _, r := range records {
		key := r.Name
		if r.Namespace != "" && r.Resource != "namespaces" {
			key = r.Namespace + "/" + r.Name
		}
		counts[key]++
	}
	return countsDistribution(counts)
}

// countsDistribution describes counts of requests per object.
func countsDistribution(counts map[string]int) Distribution {
	if len(counts) == 0 {
		return Distribution{}
	}
	values := make([]int, 0, len(counts))
	total := 0
	for _, v := range counts {
		values = append(values, v)
		total += v
	}
	sort.Ints(values)
	return Distribution{
		Objects: len(values), Min: values[0], P50: values[len(values)/2], Max: values[len(values)-1],
		Mean: float64(total) / float64(len(values)),
	}
}

// percentilesMilli is percentiles with a resolution of a millisecond.
func percentilesMilli(values []float64) Percentiles {
	return percentiles(values).round(func(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 })
}
