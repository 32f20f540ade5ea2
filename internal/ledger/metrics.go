package ledger

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "orgoperator", Subsystem: "quota_ledger", Name: "decisions_total",
		Help: "Objects decided by the organization quota webhooks, by decision (admitted, refused over quota, busy with too many pending charges, or error when the ledger could not be written) and resource (pods, persistentvolumeclaims, deployments.apps, ...).",
	}, []string{"decision", "resource"})
	conflicts = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "orgoperator", Subsystem: "quota_ledger", Name: "conflicts_total",
		Help: "Ledger writes that lost a compare-and-swap to another writer and were decided again.",
	})
)

func init() {
	ctrlmetrics.Registry.MustRegister(decisions, conflicts)
}

func decisionOf(err error) string {
	var exceeded *ExceededError
	switch {
	case err == nil:
		return "admitted"
	case errors.As(err, &exceeded):
		return "refused"
	case errors.Is(err, ErrBusy):
		return "busy"
	}
	return "error"
}
