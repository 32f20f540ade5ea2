package webhook

import (
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/orgoperator/org-operator/internal/arbiter"
)

// Decider is what the member and namespace webhooks decide with: the changes of one organization,
// one at a time, on what the API server stores, recorded on the organization's status.
type Decider struct {
	// Reader reads plans, for the effective quotas; a cache will do.
	Reader client.Reader
	// Live reads from the API server itself.
	Live client.Reader
	// Writer records admitted changes on the organization's status.
	Writer     client.Client
	Authorizer PlatformAuthorizer
	Clock      clock.PassiveClock
	// Arbiter serialises the decisions of one organization.
	Arbiter *arbiter.Arbiter
}
