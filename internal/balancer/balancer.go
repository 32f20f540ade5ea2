// Package balancer forwards the TCP connections of one address to the ready ones of several
// backends, as a Service does for its ready endpoints. The local control plane has no Service in
// front of the manager's webhook server; this stands in for it when two replicas serve webhooks.
//
// Like kube-proxy, it picks a backend per connection and does not retry another when the dial
// fails: a backend that dies takes the connections sent to it until its readiness probe fails.
package balancer

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Backend is one replica: where it serves, and where it says whether it is ready.
type Backend struct {
	// Addr is the host:port connections are forwarded to.
	Addr string
	// ReadyURL answers 200 while the backend is ready (the manager's /readyz); empty: always ready.
	ReadyURL string
}

// Options tune the readiness probe.
type Options struct {
	// ProbePeriod between readiness probes of each backend; default 1s.
	ProbePeriod time.Duration
	// ProbeTimeout of one probe; default 1s.
	ProbeTimeout time.Duration
}

// Balancer accepts on one address and forwards to ready backends in turn.
type Balancer struct {
	ln   net.Listener
	opts Options

	mu       sync.Mutex
	backends []*backend
	next     int

	// Refused counts connections closed at once because no backend was ready or the dial failed.
	Refused atomic.Int64
}

type backend struct {
	Backend
	ready atomic.Bool
	stop  context.CancelFunc
}

// Listen starts accepting on addr (e.g. 127.0.0.1:9443) and forwards until ctx ends.
func Listen(ctx context.Context, addr string, opts Options) (*Balancer, error) {
	if opts.ProbePeriod == 0 {
		opts.ProbePeriod = time.Second
	}
	if opts.ProbeTimeout == 0 {
		opts.ProbeTimeout = time.Second
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	b := &Balancer{ln: ln, opts: opts}
	go func() {
		<-ctx.Done()
		_ = ln.Close()
		b.SetBackends(ctx)
	}()
	go b.serve(ctx)
	return b, nil
}

// Addr is the address the balancer accepts on.
func (b *Balancer) Addr() string { return b.ln.Addr().String() }

// SetBackends replaces the backends; each is probed from now on, and is not sent connections
// before its first probe succeeds.
func (b *Balancer) SetBackends(ctx context.Context, backends ...Backend) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, old := range b.backends {
		old.stop()
	}
	b.backends = nil
	for _, be := range backends {
		pctx, stop := context.WithCancel(ctx)
		nb := &backend{Backend: be, stop: stop}
		b.backends = append(b.backends, nb)
		go b.probe(pctx, nb)
	}
}

// Ready returns the addresses of the backends that passed their last probe.
func (b *Balancer) Ready() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, be := range b.backends {
		if be.ready.Load() {
			out = append(out, be.Addr)
		}
	}
	return out
}

func (b *Balancer) probe(ctx context.Context, be *backend) {
	client := &http.Client{Timeout: b.opts.ProbeTimeout}
	check := func() bool {
		if be.ReadyURL == "" {
			return true
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, be.ReadyURL, nil)
		if err != nil {
			return false
		}
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	t := time.NewTicker(b.opts.ProbePeriod)
	defer t.Stop()
	for {
		be.ready.Store(check())
		select {
		case <-ctx.Done():
			be.ready.Store(false)
			return
		case <-t.C:
		}
	}
}

// pick returns the next ready backend in turn.
func (b *Balancer) pick() (*backend, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for range b.backends {
		be := b.backends[b.next%len(b.backends)]
		b.next++
		if be.ready.Load() {
			return be, true
		}
	}
	return nil, false
}

func (b *Balancer) serve(ctx context.Context) {
	for {
		conn, err := b.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go b.forward(ctx, conn)
	}
}

func (b *Balancer) forward(ctx context.Context, in net.Conn) {
	defer in.Close()
	be, ok := b.pick()
	if !ok {
		b.Refused.Add(1)
		return
	}
	var d net.Dialer
	out, err := d.DialContext(ctx, "tcp", be.Addr)
	if err != nil {
		b.Refused.Add(1)
		return
	}
	defer out.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Half-close so the other side sees the end of the stream, as TCP through a Service does.
		if c, ok := dst.(*net.TCPConn); ok {
			_ = c.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	select {
	case <-done:
		<-done
	case <-ctx.Done():
	}
}
