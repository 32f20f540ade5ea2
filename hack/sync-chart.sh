#!/usr/bin/env bash
# Copies the manifests that controller-gen generates, the static roles of config/rbac and the
# webhook Service of config/webhook into the Helm chart, so that the chart and kustomize install
# the same CRDs, the same RBAC rules and the same admission webhooks. The
# chart's templates read these copies with .Files.Get; nothing in them is edited by hand.
#
# Usage: hack/sync-chart.sh [FILES_DIR]   (default: charts/org-operator/files)
# test/packaging runs it into a temporary directory and fails when the chart's copies differ.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-${root}/charts/org-operator/files}"

# Every CRD of config/crd/bases; the chart installs each file of files/crds.
rm -rf "${out}/crds"
mkdir -p "${out}/crds"
cp "${root}"/config/crd/bases/*.yaml "${out}/crds/"

# The generated ClusterRole (role.yaml), the static roles, and the guards on the operator's own
# writes (ValidatingAdmissionPolicies and their bindings; the chart sets the ServiceAccount they
# match), and the policy that keeps system namespaces out of organizations (the chart sets its own
# namespace in it). Role bindings are templated by the chart.
rm -rf "${out}/rbac"
mkdir -p "${out}/rbac"
for f in role.yaml leader_election_role.yaml metrics_auth_role.yaml metrics_reader_role.yaml \
	organization_admin_role.yaml orgoperator_viewer_role.yaml orgoperator_editor_role.yaml \
	operator_guard_policy.yaml operator_guard_binding.yaml tenancy_policy.yaml invitation_redeemer_role.yaml; do
	cp "${root}/config/rbac/${f}" "${out}/rbac/${f}"
done

# The generated webhook configurations and their Service. The chart sets the namespace, the
# failure policy, the timeouts and the certificate annotations; names, rules and paths come from here.
rm -rf "${out}/webhook"
mkdir -p "${out}/webhook"
cp "${root}/config/webhook/manifests.yaml" "${root}/config/webhook/service.yaml" "${out}/webhook/"
