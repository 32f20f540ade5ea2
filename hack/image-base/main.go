// Command image-base builds, without a registry or a daemon, the base image that `make image`
// gives ko: the layout of gcr.io/distroless/static:nonroot that a static Go binary needs (the users
// root, nobody and nonroot 65532 in /etc/passwd and /etc/group, /home/nonroot, /tmp), running as
// 65532:65532, for linux/amd64.
//
// ko cannot build on a base it has to pull when there is no network, but it looks a base that is
// named by digest up in its cache ($KOCACHE/img, an OCI layout) before pulling it. image-base
// writes the base into that layout and prints the digest reference to pass as
// KO_DEFAULTBASEIMAGE. The image is reproducible: fixed file times and a fixed creation time, so
// the same sources give the same digest.
//
// Usage: go run ./hack/image-base -layout bin/kocache/img
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Repository names the base in ko's logs and in the image's base annotation. The .invalid domain
// (RFC 2606) can never resolve: the base is only ever found in the cache.
const Repository = "org-operator.invalid/base/static-nonroot"

// epoch dates every file and the image, for a reproducible digest.
var epoch = time.Unix(0, 0).UTC()

type file struct {
	name    string
	mode    int64
	uid     int
	content string
	dir     bool
}

var files = []file{
	{name: "etc/", mode: 0o755, dir: true},
	{name: "etc/passwd", mode: 0o644, content: "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"},
	{name: "etc/group", mode: 0o644, content: "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"},
	{name: "home/", mode: 0o755, dir: true},
	{name: "home/nonroot/", mode: 0o700, uid: 65532, dir: true},
	{name: "root/", mode: 0o700, dir: true},
	{name: "tmp/", mode: 0o1777, dir: true},
}

func layer() (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{
			Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.uid, ModTime: epoch,
			Typeflag: tar.TypeReg, Size: int64(len(f.content)), Format: tar.FormatPAX,
		}
		if f.dir {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := io.WriteString(tw, f.content); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	content := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(content)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// Image returns the base image.
func Image() (v1.Image, error) {
	l, err := layer()
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{
		Layer:     l,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "hack/image-base", Comment: "users root, nobody, nonroot (65532); /tmp"},
	})
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Created = v1.Time{Time: epoch}
	cfg.Config.User = "65532:65532"
	cfg.Config.WorkingDir = "/home/nonroot"
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	return mutate.ConfigFile(img, cfg)
}

func main() {
	dir := flag.String("layout", "", "OCI layout to write the base into: ko's cache, $KOCACHE/img")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "image-base: -layout is required")
		os.Exit(2)
	}
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "image-base:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	img, err := Image()
	if err != nil {
		return fmt.Errorf("building the base image: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return fmt.Errorf("creating the OCI layout %s: %w", dir, err)
		}
	}
	// Replace any earlier copy rather than piling up entries for the same digest.
	if err := p.ReplaceImage(img, match.Digests(digest)); err != nil {
		return fmt.Errorf("writing the base into %s: %w", dir, err)
	}
	fmt.Printf("%s@%s\n", Repository, digest)
	return nil
}
