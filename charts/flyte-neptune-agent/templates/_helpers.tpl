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

{{/* "true" when the agent runs tasks as Pods, else "". */}}
{{- define "flyte-neptune-agent.kubernetesExecutor" -}}
{{- if eq .Values.config.executor.kind "kubernetes" }}true{{ end }}
{{- end }}

{{/* "true" when the pod needs the scratch emptyDir (offline tracker or process executor), else "". */}}
{{- define "flyte-neptune-agent.scratch" -}}
{{- if or (eq .Values.config.tracker.kind "offline") (eq .Values.config.executor.kind "process") }}true{{ end }}
{{- end }}

{{/* Where the scratch emptyDir, the default token and the extra tokens are mounted. */}}
{{- define "flyte-neptune-agent.scratchPath" -}}/var/lib/flyte-neptune-agent{{- end }}
{{- define "flyte-neptune-agent.tokenDir" -}}/etc/neptune/token{{- end }}
{{- define "flyte-neptune-agent.extraTokenDir" -}}/etc/neptune/tokens/{{ . }}{{- end }}

{{/*
The agent's configuration file: .Values.config plus the keys the chart owns (values.yaml, above `config`).
*/}}
{{- define "flyte-neptune-agent.config" -}}
{{- $config := deepCopy .Values.config }}
{{- $server := get $config "server" | default dict }}
{{- $_ := set $server "listen_address" (printf "0.0.0.0:%d" (int .Values.ports.grpc)) }}
{{- $_ := set $server "metrics_address" (ternary (printf "0.0.0.0:%d" (int .Values.ports.metrics)) "" .Values.metrics.enabled) }}
{{- $_ := set $server "drain_timeout" (printf "%ds" (int .Values.drainTimeoutSeconds)) }}
{{- $_ := set $config "server" $server }}
{{- $tracker := $config.tracker }}
{{- if eq $tracker.kind "neptune" }}
{{- $neptune := get $tracker "neptune" | default dict }}
{{- $_ := set $neptune "api_token_file" (printf "%s/token" (include "flyte-neptune-agent.tokenDir" .)) }}
{{- $_ := set $tracker "neptune" $neptune }}
{{- else }}
{{- $_ := set $tracker "offline" (dict "directory" (printf "%s/neptune" (include "flyte-neptune-agent.scratchPath" .))) }}
{{- end }}
{{- if eq $config.executor.kind "process" }}
{{- $process := get $config.executor "process" | default dict }}
{{- $_ := set $process "state_directory" (printf "%s/tasks" (include "flyte-neptune-agent.scratchPath" .)) }}
{{- $_ := set $process "allow_non_loopback" true }}
{{- $_ := set $config.executor "process" $process }}
{{- end }}
{{- $rules := list }}
{{- range $i, $rule := $config.tracking.routing_rules | default list }}
{{- if hasKey $rule "token" }}
{{- if not (hasKey $.Values.neptune.extraTokens $rule.token) }}
{{- fail (printf "config.tracking.routing_rules[%d].token: %q is not a key of neptune.extraTokens" $i $rule.token) }}
{{- end }}
{{- $_ := set $rule "token_file" (printf "%s/token" (include "flyte-neptune-agent.extraTokenDir" $rule.token)) }}
{{- $_ := unset $rule "token" }}
{{- end }}
{{- $rules = append $rules $rule }}
{{- end }}
{{- $_ := set $config.tracking "routing_rules" $rules }}
{{- toYaml $config }}
{{- end }}

{{/* Checks across values that the schema cannot express (helm lint only logs them; helm template fails). */}}
{{- define "flyte-neptune-agent.checks" -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (int .Values.drainTimeoutSeconds) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed drainTimeoutSeconds (%d): the kubelet would kill the agent while it drains" (int .Values.terminationGracePeriodSeconds) (int .Values.drainTimeoutSeconds)) }}
{{- end }}
{{- if eq (int .Values.ports.grpc) (int .Values.ports.metrics) }}
{{- fail "ports.grpc and ports.metrics must differ" }}
{{- end }}
{{- end }}

{{/* The rules of the agent's Role or ClusterRole: exactly the calls of the Kubernetes executor (docs/kubernetes.md). */}}
{{- define "flyte-neptune-agent.rbacRules" -}}
- apiGroups: [""]
  resources: [pods]
  verbs: [create, get, list, {{ if .Values.config.executor.kubernetes.watch }}watch, {{ end }}delete, patch]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
{{- if .Values.config.executor.kubernetes.owner_references }}
- apiGroups: [flyte.lyft.com]
  resources: [flyteworkflows]
  verbs: [get]
{{- end }}
{{- end }}
