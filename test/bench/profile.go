package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// profileAPIServer takes a CPU profile of kube-apiserver (its /debug/pprof endpoint, as a
// cluster admin) for the given time from now and writes it to path, for `go tool pprof`: where
// the API server's CPU goes while a scenario runs.
func (c *cluster) profileAPIServer(ctx context.Context, path string, d time.Duration) error {
	cfg := rest.CopyConfig(c.cp.Config)
	cfg.Timeout = d + 30*time.Second
	cfg.GroupVersion, cfg.APIPath = nil, "/"
	cfg.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
	rc, err := rest.UnversionedRESTClientFor(cfg)
	if err != nil {
		return err
	}
	data, err := rc.Get().AbsPath("/debug/pprof/profile").Param("seconds", strconv.Itoa(int(d.Seconds()))).DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("profiling kube-apiserver: %w", err)
	}
	return os.WriteFile(path, data, 0o644)
}
