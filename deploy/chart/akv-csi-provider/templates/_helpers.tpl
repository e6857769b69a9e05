{{/*
Base name of every object. It is Azure's chart name, not this chart's, so that an existing release of
csi-secrets-store-provider-azure upgraded to this chart keeps its object names and the DaemonSet's
(immutable) selector.
*/}}
{{- define "akv.name" -}}
{{- .Values.nameOverride | default "csi-secrets-store-provider-azure" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object name: fullnameOverride, else the release name if it already contains the base name, else both. */}}
{{- define "akv.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $base := include "akv.name" . -}}
{{- if contains $base .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $base | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The ServiceAccount name is fixed, as in Azure's chart (rbac.install: false expects it to exist). */}}
{{- define "akv.serviceAccountName" -}}csi-secrets-store-provider-azure{{- end -}}

{{/* Labels of every object (the same keys as Azure's chart). */}}
{{- define "akv.labels" -}}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name (.Chart.Version | replace "+" "_") | quote }}
app.kubernetes.io/name: {{ include "akv.name" . | quote }}
app: {{ include "akv.name" . | quote }}
{{- end -}}

{{/* The Prometheus port from metricsAddr ("8898", 8898 or ":8898"). */}}
{{- define "akv.metricsPort" -}}
{{- $raw := .Values.metricsAddr | default "8898" | toString | trimPrefix ":" -}}
{{- $port := atoi $raw -}}
{{- if or (lt $port 1) (gt $port 65535) (ne (toString $port) $raw) -}}
{{- fail (printf "metricsAddr must be a port number (1-65535), got %q" $raw) -}}
{{- end -}}
{{- $port -}}
{{- end -}}

{{/* "prometheus" or "otlp" from metricsBackend (case-insensitive, as the daemon reads it). */}}
{{- define "akv.metricsBackend" -}}
{{- $backend := .Values.metricsBackend | default "Prometheus" | toString | lower -}}
{{- if not (has $backend (list "prometheus" "otlp")) -}}
{{- fail (printf "metricsBackend must be Prometheus or otlp, got %q" .Values.metricsBackend) -}}
{{- end -}}
{{- $backend -}}
{{- end -}}
