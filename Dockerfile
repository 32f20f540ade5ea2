# syntax=docker/dockerfile:1
# The manager image, for builders with Docker or BuildKit: docker build -t <image> .
# Without Docker, `make image` builds the equivalent with ko (see .ko.yaml).

FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace
# Only what the manager is built from; .dockerignore keeps the rest out of the context. go build
# downloads the modules it needs (not the tools of go.mod's tool directives) into a cache mount.
COPY go.mod go.sum ./
COPY main.go ./
COPY api/ api/
COPY controllers/ controllers/
COPY internal/ internal/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o manager .

# distroless/static:nonroot: CA certificates, tzdata, the nonroot user and nothing else.
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager .
USER 65532:65532
ENTRYPOINT ["/manager"]
