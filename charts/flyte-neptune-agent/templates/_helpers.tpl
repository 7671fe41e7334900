{{/*
The agent's gRPC port. Fixed: propeller's k8s:// resolver dials <pod IP>:<port of the endpoint URI>, so the
container port, the Service port and the endpoint in propeller's configuration must all be 8000.
*/}}
{{- define "flyte-neptune-agent.grpcPort" -}}
8000
{{- end }}

{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "flyte-neptune-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name, with the chart name appended unless the release name already
contains it. Truncated to 63 characters.
*/}}
{{- define "flyte-neptune-agent.fullname" -}}
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

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "flyte-neptune-agent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels. */}}
{{- define "flyte-neptune-agent.labels" -}}
helm.sh/chart: {{ include "flyte-neptune-agent.chart" . }}
{{ include "flyte-neptune-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels. */}}
{{- define "flyte-neptune-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flyte-neptune-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Name of the ServiceAccount to use. */}}
{{- define "flyte-neptune-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "flyte-neptune-agent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The agent's image. */}}
{{- define "flyte-neptune-agent.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
