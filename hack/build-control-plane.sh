#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kubectl and etcd from Go modules into
# bin/k8s/<version>/ and prints that directory (use it as KUBEBUILDER_ASSETS).
#
# Binary downloads (setup-envtest) do not work everywhere, but the Go module proxy does, so the
# control plane is compiled from source. The first run takes several minutes on two cores;
# later runs find the binaries and return at once.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.3}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${CONTROL_PLANE_DIR:-${ROOT}/bin/k8s/${K8S_VERSION}}"
BINARIES=(kube-apiserver kube-controller-manager kubectl)

log() { echo "[control-plane] $*" >&2; }

# A go.work or -mod=vendor from the caller must not leak into the throwaway modules.
export GOWORK=off GOFLAGS= CGO_ENABLED=0

mkdir -p "${OUT}"
missing=()
for b in "${BINARIES[@]}" etcd; do
  [[ -x "${OUT}/${b}" ]] || missing+=("${b}")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "${OUT}"
  exit 0
fi

log "building ${missing[*]} (Kubernetes ${K8S_VERSION}, etcd ${ETCD_VERSION}) into ${OUT}"
log "the first build compiles Kubernetes from source: expect 5-10 minutes on two cores"

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

build_kubernetes() {
  local mod="${work}/kubernetes"
  mkdir -p "${mod}"
  cd "${mod}"
  go mod init org-operator.local/control-plane >/dev/null 2>&1
  # k8s.io/kubernetes points its staging modules at ./staging; a dependent module must replace
  # each of them with the published v0.X release, exactly as its go.mod lists them.
  local kmod staging_version
  kmod="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  staging_version="v0.${K8S_VERSION#v1.}"
  {
    echo "require k8s.io/kubernetes ${K8S_VERSION}"
    grep -E '^godebug ' "${kmod}" || true
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\t\1 => \1 '"${staging_version}"'#p' "${kmod}"
    echo ")"
  } >>go.mod
  local pkgs=()
  for b in "${BINARIES[@]}"; do
    [[ -x "${OUT}/${b}" ]] || pkgs+=("k8s.io/kubernetes/cmd/${b}")
  done
  log "resolving modules for ${pkgs[*]}"
  go get "${pkgs[@]/%/@${K8S_VERSION}}" >/dev/null 2>&1 || go get "${pkgs[@]/%/@${K8S_VERSION}}"
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${p}.gitVersion=${K8S_VERSION} -X ${p}.gitMajor=1 -X ${p}.gitMinor=${minor} -X ${p}.gitTreeState=clean"
  done
  for b in "${BINARIES[@]}"; do
    [[ -x "${OUT}/${b}" ]] && continue
    log "compiling ${b}"
    local start=${SECONDS}
    go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "${ldflags}" \
      -o "${OUT}/${b}.tmp" "k8s.io/kubernetes/cmd/${b}"
    mv "${OUT}/${b}.tmp" "${OUT}/${b}"
    log "compiled ${b} in $((SECONDS - start))s"
  done
}

build_etcd() {
  # `go install go.etcd.io/etcd/server/v3@X` is refused because etcd's go.mod has replace
  # directives; requiring it from a wrapper module works, and its root package is the binary.
  local mod="${work}/etcd"
  mkdir -p "${mod}"
  cd "${mod}"
  go mod init org-operator.local/etcd >/dev/null 2>&1
  log "resolving etcd ${ETCD_VERSION}"
  go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >/dev/null 2>&1 || go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
  log "compiling etcd"
  local start=${SECONDS}
  go build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${ETCD_VERSION}" \
    -o "${OUT}/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "${OUT}/etcd.tmp" "${OUT}/etcd"
  log "compiled etcd in $((SECONDS - start))s"
}

need_k8s=false
for b in "${BINARIES[@]}"; do [[ -x "${OUT}/${b}" ]] || need_k8s=true; done
${need_k8s} && build_kubernetes
[[ -x "${OUT}/etcd" ]] || build_etcd

"${OUT}/kube-apiserver" --version >&2
"${OUT}/etcd" --version | head -1 >&2
echo "${OUT}"
