package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/orgoperator/org-operator/internal/balancer"
	"github.com/orgoperator/org-operator/internal/controlplane"
)

// replica is where one of several local managers serves.
type replica struct {
	name                     string // POD_NAME, and the prefix of its log lines
	webhook, probes, metrics string // host:port
}

// newReplicas gives each of n managers its own webhook, probe and metrics ports on host.
func newReplicas(n int, host string) ([]replica, error) {
	ports, err := freePorts(3*n, host)
	if err != nil {
		return nil, err
	}
	addr := func(i int) string { return net.JoinHostPort(host, strconv.Itoa(ports[i])) }
	out := make([]replica, n)
	for i := range out {
		out[i] = replica{name: fmt.Sprintf("org-operator-%d", i), webhook: addr(3 * i), probes: addr(3*i + 1), metrics: addr(3*i + 2)}
	}
	return out, nil
}

// args are the manager's flags: localManagerArgs' with this replica's ports and leader election
// in the operator's namespace (where config/rbac grants the Lease). Flags after `--` still win.
func (r replica) args(hooks envtest.WebhookInstallOptions, extra []string) []string {
	_, port, _ := net.SplitHostPort(r.webhook)
	hooks.LocalServingPort, _ = strconv.Atoi(port)
	return localManagerArgs(hooks, r.probes, append([]string{
		"--metrics-bind-address=" + r.metrics,
		"--leader-elect=true",
		"--namespace=" + controlplane.OperatorNamespace,
	}, extra...))
}

// balance accepts on the address envtest registered in the webhook configurations and forwards
// to the ready replicas, as the webhook Service does in a cluster.
func balance(ctx context.Context, hooks envtest.WebhookInstallOptions, replicas []replica) (*balancer.Balancer, error) {
	b, err := balancer.Listen(ctx, net.JoinHostPort(hooks.LocalServingHost, strconv.Itoa(hooks.LocalServingPort)), balancer.Options{})
	if err != nil {
		return nil, fmt.Errorf("listening for webhooks: %w", err)
	}
	backends := make([]balancer.Backend, len(replicas))
	for i, r := range replicas {
		backends[i] = balancer.Backend{Addr: r.webhook, ReadyURL: "http://" + r.probes + "/readyz"}
	}
	b.SetBackends(ctx, backends...)
	return b, nil
}

// freePorts returns n distinct free ports on host, holding each until all are picked.
func freePorts(n int, host string) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// prefixWriter writes whole lines to w, each starting with prefix; several share mu so that
// lines of different managers do not interleave.
type prefixWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix []byte
	buf    []byte // a line not yet ended
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		p.mu.Lock()
		_, err := p.w.Write(append(append([]byte{}, p.prefix...), p.buf[:i+1]...))
		p.mu.Unlock()
		p.buf = p.buf[i+1:]
		if err != nil {
			return len(b), err
		}
	}
}
