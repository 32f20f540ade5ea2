package packaging_test

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// imageFile is one file of an image's flattened filesystem.
type imageFile struct {
	header  *tar.Header
	content []byte
}

var _ = Describe("Container image", func() {
	It("builds with ko without a registry or a daemon, runs the static manager as 65532 on linux/amd64", func() {
		out := GinkgoT().TempDir()
		// Any registry or proxy access would go to a closed loopback port and fail the build.
		noNetwork := []string{"KOCACHE=" + filepath.Join(out, "kocache"), "GOPROXY=off",
			"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=", "no_proxy="}
		command{name: "bash", args: []string{"hack/build-image.sh", filepath.Join(out, "image"), "test"}, env: noNetwork}.mustRun()

		ref, err := os.ReadFile(filepath.Join(out, "image", "image-ref"))
		Expect(err).NotTo(HaveOccurred())
		Expect(strings.TrimSpace(string(ref))).To(MatchRegexp(`^ghcr\.io/orgoperator/org-operator:test@sha256:[a-f0-9]{64}$`))

		By("the OCI layout holds one linux/amd64 image")
		p, err := layout.FromPath(filepath.Join(out, "image", "oci"))
		Expect(err).NotTo(HaveOccurred())
		index, err := p.ImageIndex()
		Expect(err).NotTo(HaveOccurred())
		manifest, err := index.IndexManifest()
		Expect(err).NotTo(HaveOccurred())
		Expect(manifest.Manifests).To(HaveLen(1))
		img, err := index.Image(manifest.Manifests[0].Digest)
		Expect(err).NotTo(HaveOccurred())
		Expect(strings.TrimSpace(string(ref))).To(HaveSuffix("@" + manifest.Manifests[0].Digest.String()))
		cfg, err := img.ConfigFile()
		Expect(err).NotTo(HaveOccurred())
		Expect(cfg.OS).To(Equal("linux"))
		Expect(cfg.Architecture).To(Equal("amd64"))
		Expect(cfg.Config.User).To(Equal("65532:65532"))
		Expect(cfg.Config.Entrypoint).To(Equal([]string{"/ko-app/org-operator"}))

		By("the binary is there, executable, static, for x86-64")
		files := flatten(img)
		bin := files["ko-app/org-operator"]
		Expect(bin.header).NotTo(BeNil(), "no /ko-app/org-operator in the image")
		Expect(bin.header.Mode & 0o111).NotTo(BeZero())
		exe, err := elf.NewFile(bytes.NewReader(bin.content))
		Expect(err).NotTo(HaveOccurred())
		Expect(exe.Machine).To(Equal(elf.EM_X86_64))
		for _, prog := range exe.Progs {
			Expect(prog.Type).NotTo(Equal(elf.PT_INTERP), "the manager is dynamically linked")
		}

		By("the base has the nonroot user, a writable /tmp, and nothing else of note")
		Expect(string(files["etc/passwd"].content)).To(ContainSubstring("nonroot:x:65532:65532:"))
		Expect(files["tmp"].header.Mode & 0o1777).To(Equal(int64(0o1777)))
		for name := range files {
			Expect(name).To(MatchRegexp(`^(etc(/(passwd|group))?|home(/nonroot)?|root|tmp|ko-app(/org-operator)?|var(/run(/ko)?)?)$`))
		}

		By("the tarball for docker load holds the same image")
		tb, err := tarball.ImageFromPath(filepath.Join(out, "image", "image.tar"), nil)
		Expect(err).NotTo(HaveOccurred())
		tbConfig, err := tb.ConfigName()
		Expect(err).NotTo(HaveOccurred())
		imgConfig, err := img.ConfigName()
		Expect(err).NotTo(HaveOccurred())
		Expect(tbConfig).To(Equal(imgConfig))
	})

	It("has a reproducible offline base", func() {
		dir := GinkgoT().TempDir()
		first := command{name: "go", args: []string{"run", "./hack/image-base", "-layout", filepath.Join(dir, "a")}}.mustRun()
		second := command{name: "go", args: []string{"run", "./hack/image-base", "-layout", filepath.Join(dir, "b")}}.mustRun()
		Expect(first).To(MatchRegexp(`^org-operator\.invalid/base/static-nonroot@sha256:[a-f0-9]{64}\n$`))
		Expect(second).To(Equal(first))
	})

	It("has a Dockerfile that builds the same manager on distroless as 65532", func() {
		dockerfile := readFile("Dockerfile")
		Expect(dockerfile).To(MatchRegexp(`(?m)^FROM golang:1\.\d+ AS builder$`))
		Expect(dockerfile).To(MatchRegexp(`(?m)^FROM gcr\.io/distroless/static:nonroot$`))
		Expect(dockerfile).To(MatchRegexp(`(?m)^USER 65532:65532$`))
		Expect(dockerfile).To(MatchRegexp(`(?m)^ENTRYPOINT \["/manager"\]$`))
		Expect(dockerfile).To(ContainSubstring("CGO_ENABLED=0"))

		By("every package of this module the manager imports is copied into the build context")
		copied := map[string]bool{}
		for _, m := range regexp.MustCompile(`(?m)^COPY ([^-\s]\S*) `).FindAllStringSubmatch(dockerfile, -1) {
			copied[strings.TrimSuffix(m[1], "/")] = true
		}
		ignore := readFile(".dockerignore")
		dirs := command{name: "go", args: []string{"list", "-deps", "-f",
			`{{if .Module}}{{if eq .Module.Path "github.com/orgoperator/org-operator"}}{{.Dir}}{{end}}{{end}}`, "."}}.mustRun()
		for _, dir := range strings.Fields(dirs) {
			rel, err := filepath.Rel(root, dir)
			Expect(err).NotTo(HaveOccurred())
			top := strings.Split(filepath.ToSlash(rel), "/")[0]
			if rel == "." {
				top = "main.go"
			}
			Expect(copied).To(HaveKey(top), "the Dockerfile does not COPY %s, which the manager imports", rel)
			Expect(ignore).To(ContainSubstring("!"+top), ".dockerignore keeps %s out of the build context", top)
		}
	})
})

// flatten returns the files of an image's flattened filesystem by path, without leading slash.
func flatten(img v1.Image) map[string]imageFile {
	GinkgoHelper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]imageFile{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		Expect(err).NotTo(HaveOccurred())
		content, err := io.ReadAll(tr)
		Expect(err).NotTo(HaveOccurred())
		files[strings.Trim(h.Name, "/")] = imageFile{header: h, content: content}
	}
}
