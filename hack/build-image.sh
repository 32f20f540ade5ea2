#!/usr/bin/env bash
# Builds the manager image with ko, without Docker and without pulling anything: the base is the
# distroless-like image hack/image-base writes into ko's cache, named by digest so that ko finds it
# there (ko looks digest references up in $KOCACHE/img before any pull).
#
# Usage: hack/build-image.sh [OUT_DIR] [TAG]   (default: bin/image dev)
# Writes OUT_DIR/oci (an OCI image layout), OUT_DIR/image.tar (for docker load, kind load
# image-archive or crane push) and OUT_DIR/image-ref (the image reference with its digest).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-${root}/bin/image}"
tag="${2:-dev}"
export KOCACHE="${KOCACHE:-${root}/bin/kocache}"
export KO_DOCKER_REPO="${KO_DOCKER_REPO:-ghcr.io/orgoperator/org-operator}"
# Reproducible: the image's creation time is the Unix epoch unless SOURCE_DATE_EPOCH says otherwise.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-0}"

cd "${root}"
KO_DEFAULTBASEIMAGE="$(go run ./hack/image-base -layout "${KOCACHE}/img")"
export KO_DEFAULTBASEIMAGE
rm -rf "${out}"
mkdir -p "${out}"
go tool ko build . --bare --push=false --sbom=none --platform=linux/amd64 --tags="${tag}" \
	--oci-layout-path="${out}/oci" --tarball="${out}/image.tar" --image-refs="${out}/image-ref"
