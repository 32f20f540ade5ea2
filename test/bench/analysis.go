package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// statusCauses says, for each status patch the operator made in [from, to) to the given
// resource, what it changed, by comparing it with the previous patch of the same object: a JSON
// merge patch carries the whole conditions list, so the conditions before each patch are known
// from the one before. It returns the number of patches by cause ("MembersReady message",
// "memberCount", ...); a patch that changes several things counts under each.
func statusCauses(all []auditRecord, resource string, from, to time.Time) map[string]int {
	type cond struct{ Status, Reason, Message string }
	records := make([]auditRecord, 0, len(all))
	for _, r := range all {
		if r.Resource == resource && r.Subresource == "status" && (r.Verb == "patch" || r.Verb == "update") && r.Code < 300 {
			records = append(records, r)
		}
	}
	sort.SliceStable(records, func(i, j int) bool { return records[i].At.Before(records[j].At) })
	previous := map[string]map[string]cond{} // object -> condition type -> condition
	causes := map[string]int{}
	for _, r := range records {
		obj := r.Namespace + "/" + r.Name
		var body struct {
			Status map[string]json.RawMessage `json:"status"`
		}
		if len(r.Body) == 0 || json.Unmarshal(r.Body, &body) != nil {
			if !r.At.Before(from) && r.At.Before(to) {
				causes["(body not logged)"]++
			}
			continue
		}
		var found []string
		_, seen := previous[obj]
		if !seen {
			found = append(found, "first status")
			previous[obj] = map[string]cond{}
		}
		for key, raw := range body.Status {
			if key != "conditions" {
				if seen {
					if string(raw) == "null" {
						key += " (removed)"
					}
					found = append(found, key)
				}
				continue
			}
			var conds []struct {
				Type, Status, Reason, Message string
			}
			if json.Unmarshal(raw, &conds) != nil {
				continue
			}
			now := map[string]cond{}
			for _, c := range conds {
				now[c.Type] = cond{c.Status, c.Reason, c.Message}
				old, had := previous[obj][c.Type]
				switch {
				case !seen:
				case !had:
					found = append(found, c.Type+" added")
				case old.Status != c.Status:
					found = append(found, fmt.Sprintf("%s %s→%s", c.Type, old.Status, c.Status))
				case old != now[c.Type]:
					found = append(found, c.Type+" message")
				}
			}
			for t := range previous[obj] {
				if _, ok := now[t]; !ok && seen {
					found = append(found, t+" removed")
				}
			}
			previous[obj] = now
		}
		if r.At.Before(from) || !r.At.Before(to) {
			continue
		}
		if len(found) == 0 {
			found = []string{"(no change in status fields)"}
		}
		for _, c := range found {
			causes[c]++
		}
	}
	return causes
}

// formatCauses renders causes, most frequent first.
func formatCauses(causes map[string]int) string {
	keys := sortedKeys(causes)
	sort.SliceStable(keys, func(i, j int) bool { return causes[keys[i]] > causes[keys[j]] })
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, causes[k]))
	}
	return strings.Join(parts, ", ")
}
