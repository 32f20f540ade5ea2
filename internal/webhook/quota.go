package webhook

import "fmt"

// atLimit says, when adding one more would exceed limit, which quota and how full it is.
func atLimit(name, org string, limit *int32, have int) string {
	if limit == nil || have < int(*limit) {
		return ""
	}
	return fmt.Sprintf("organization %s has %d of its %s quota of %d", org, have, name, *limit)
}
