{{/* Chart name, truncated to 63 characters. */}}
{{- define "org-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of object names: the release name, with the chart name when it does not contain it. */}}
{{- define "org-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "org-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "org-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: org-operator
{{- end }}

{{/* Labels that select the manager pods; the webhook Service selects them too. */}}
{{- define "org-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "org-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end }}

{{/* Name of the manager's ServiceAccount. */}}
{{- define "org-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-controller-manager" (include "org-operator.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The manager image: repository@digest, or repository:tag with the tag defaulting to appVersion. */}}
{{- define "org-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The objects of a file of files/rbac (a copy of config/rbac written by `make chart-sync`), as a JSON
list. The chart takes rules, and for the fixed-name roles the name and labels, from these files,
never from a second copy. A file may hold several YAML documents (role.yaml: a ClusterRole and a
namespaced Role).
*/}}
{{- define "org-operator.rbacFile" -}}
{{- include "org-operator.fileObjects" (dict "root" .root "path" (printf "files/rbac/%s" .file)) }}
{{- end }}

{{/* The first object of kind .kind in a file of files/rbac, as JSON; "{}" when none. */}}
{{- define "org-operator.rbacObject" -}}
{{- $found := dict }}
{{- range include "org-operator.rbacFile" . | fromJsonArray }}
{{- if and (eq .kind $.kind) (not $found.kind) }}
{{- $found = . }}
{{- end }}
{{- end }}
{{- toJson $found }}
{{- end }}

{{/* Subject of the manager's ServiceAccount, for bindings. */}}
{{- define "org-operator.serviceAccountSubject" -}}
- kind: ServiceAccount
  name: {{ include "org-operator.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/*
The objects of a YAML file of the chart (.path, e.g. files/webhook/manifests.yaml, a copy written by
`make chart-sync`), as a JSON list.
*/}}
{{- define "org-operator.fileObjects" -}}
{{- $content := .root.Files.Get .path }}
{{- if not $content }}
{{- fail (printf "%s is missing: run make chart-sync" .path) }}
{{- end }}
{{- $docs := list }}
{{- range regexSplit "(?m)^---[ \t]*$" $content -1 }}
{{- $doc := fromYaml . }}
{{- if $doc.kind }}
{{- $docs = append $docs $doc }}
{{- end }}
{{- end }}
{{- toJson $docs }}
{{- end }}

{{/* Mount path of the webhook serving certificate (tls.crt, tls.key) in the manager container. */}}
{{- define "org-operator.webhookCertDir" -}}
/tmp/k8s-webhook-server/serving-certs
{{- end }}

{{/* Name of the cert-manager Certificate of the webhook server (webhook.certificates=certManager). */}}
{{- define "org-operator.webhookCertificate" -}}
{{ include "org-operator.fullname" . }}-serving-cert
{{- end }}

{{/*
Name of a guard (a ValidatingAdmissionPolicy or its binding) of files/rbac: config/rbac's name,
org-operator-guard-<what>, with the release's prefix for org-operator.
*/}}
{{- define "org-operator.guardName" -}}
{{- printf "%s-%s" (include "org-operator.fullname" .root) (trimPrefix "org-operator-" .name) | trunc 253 }}
{{- end }}
