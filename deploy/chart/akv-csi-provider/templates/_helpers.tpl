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

{{/*
A byte size for a daemon flag, as the daemon reads it: whole bytes, or a number with a Ki, Mi or Gi suffix,
at most 4Gi. Argument: dict "key" (the value's name, for the message), "value", "min" (bytes, with
"minText" saying it as the daemon does). "" or 0 renders "" (flag not passed); anything else that the daemon
would refuse fails the render here instead of in a crash-looping pod.
*/}}
{{- define "akv.byteSize" -}}
{{- $v := .value -}}
{{- $raw := "" -}}
{{- if kindIs "float64" $v -}}
{{- if ne (float64 (int64 $v)) $v -}}
{{- fail (printf "%s must be a size such as 16Mi, 512Ki or 1048576, got %v" .key $v) -}}
{{- end -}}
{{- $raw = printf "%d" (int64 $v) -}}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) -}}
{{- $raw = printf "%d" $v -}}
{{- else if not (kindIs "invalid" $v) -}}
{{- $raw = $v | toString -}}
{{- end -}}
{{- if and $raw (ne $raw "0") -}}
{{- $err := printf "%s must be a size such as 16Mi, 512Ki or 1048576 (at most 4Gi), got %q" .key $raw -}}
{{- if not (regexMatch "^[0-9]{1,10}(Ki|Mi|Gi)?$" $raw) -}}
{{- fail $err -}}
{{- end -}}
{{- $digits := regexReplaceAll "(Ki|Mi|Gi)$" $raw "" -}}
{{- $scale := get (dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824) (trimPrefix $digits $raw) | default 1 -}}
{{- $n := atoi $digits -}}
{{- if gt $n 4294967296 -}}
{{- fail $err -}}
{{- end -}}
{{- $bytes := mul $n $scale -}}
{{- if gt $bytes 4294967296 -}}
{{- fail $err -}}
{{- end -}}
{{- if lt $bytes (int64 .min) -}}
{{- fail (printf "%s must be at least %s, got %q" .key .minText $raw) -}}
{{- end -}}
{{- $raw -}}
{{- end -}}
{{- end -}}

{{/* --object-cache-max-bytes from objectCacheMaxBytes ("" when not set). */}}
{{- define "akv.objectCacheMaxBytes" -}}
{{- include "akv.byteSize" (dict "key" "objectCacheMaxBytes" "value" .Values.objectCacheMaxBytes "min" 0 "minText" "0") -}}
{{- end -}}

{{/*
--max-response-bytes from maxResponseBytes; when that is not set, from the driver's own limit
(secrets-store-csi-driver.maxCallRecvMsgSize, its --max-call-recv-msg-size), so that an operator who
raised the driver's limit does not get failing Mounts from the provider only. "" when neither is set or
the driver's is its default, 4Mi (the daemon's default too). The daemon refuses less than 64Ki.
*/}}
{{- define "akv.maxResponseBytes" -}}
{{- $own := include "akv.byteSize" (dict "key" "maxResponseBytes" "value" .Values.maxResponseBytes "min" 65536 "minText" "64Ki") -}}
{{- if $own -}}
{{- $own -}}
{{- else -}}
{{- $driver := index .Values "secrets-store-csi-driver" | default dict -}}
{{- $limit := include "akv.byteSize" (dict "key" "secrets-store-csi-driver.maxCallRecvMsgSize" "value" $driver.maxCallRecvMsgSize "min" 65536 "minText" "64Ki") -}}
{{- if and $limit (ne $limit "4194304") (ne $limit "4Mi") -}}
{{- $limit -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The object cache's byte bound as a number of bytes (objectCacheMaxBytes, else the daemon's 16Mi). */}}
{{- define "akv.objectCacheMaxBytesNumber" -}}
{{- $raw := include "akv.objectCacheMaxBytes" . | default "16Mi" -}}
{{- $digits := regexReplaceAll "(Ki|Mi|Gi)$" $raw "" -}}
{{- $scale := get (dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824) (trimPrefix $digits $raw) | default 1 -}}
{{- mul (atoi $digits) $scale -}}
{{- end -}}

{{/* Labels of the monitoring objects: the chart's, then the user's (which cannot replace the chart's). */}}
{{- define "akv.monitoringLabels" -}}
{{- $own := include "akv.labels" .root | fromYaml -}}
{{- merge $own (.extra | default dict) | toYaml -}}
{{- end -}}
