{{/*
Expand the name of the chart.
*/}}
{{- define "taskdownload-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "taskdownload-operator.fullname" -}}
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

{{/*
Namespace for generated references.
Always uses the Helm release namespace.
*/}}
{{- define "taskdownload-operator.namespaceName" -}}
{{- .Release.Namespace }}
{{- end }}

{{/*
Resource name with proper truncation for Kubernetes 63-character limit.
Takes a dict with:
  - .suffix: Resource name suffix (e.g., "metrics", "webhook")
  - .context: Template context (root context with .Values, .Release, etc.)
Dynamically calculates safe truncation to ensure total name length <= 63 chars.
*/}}
{{- define "taskdownload-operator.resourceName" -}}
{{- $fullname := include "taskdownload-operator.fullname" .context }}
{{- $suffix := .suffix }}
{{- $maxLen := sub 62 (len $suffix) | int }}
{{- if gt (len $fullname) $maxLen }}
{{- printf "%s-%s" (trunc $maxLen $fullname | trimSuffix "-") $suffix | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" $fullname $suffix | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
ServiceAccount name to use.
When enabled, use the chart's ServiceAccount name.
When disabled, serviceAccount.name must be set; use "default" to pick the namespace default ServiceAccount.
*/}}
{{- define "taskdownload-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.enabled }}
{{- include "taskdownload-operator.resourceName" (dict "suffix" "controller-manager" "context" .) }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.enabled=false (set name: default explicitly to use the namespace default ServiceAccount)" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Labels every object of the release carries.
*/}}
{{- define "taskdownload-operator.labels" -}}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/name: {{ include "taskdownload-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels that select the manager's pods. They include the release name so that two releases in one
namespace never select each other's pods.
*/}}
{{- define "taskdownload-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "taskdownload-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end }}

{{/*
Namespaces the manager works in: every namespace ("" alone) or the watched ones. With rbac.namespaced
the manager gets Roles only where it watches, so watching everything is refused.
*/}}
{{- define "taskdownload-operator.rbacNamespaces" -}}
{{- if .Values.rbac.namespaced }}
{{- if not .Values.operator.watchNamespaces }}
{{- fail "rbac.namespaced=true grants the manager Roles only in the namespaces it watches: set operator.watchNamespaces, e.g. --set 'operator.watchNamespaces={team-a,team-b}'" }}
{{- end }}
{{- toJson (uniq .Values.operator.watchNamespaces) }}
{{- else }}
{{- toJson (list "") }}
{{- end }}
{{- end }}

{{/*
The manager's rules on TaskDownloads and what it publishes: the same as config/rbac/role.yaml, which
controller-gen writes from the controller's markers (a test keeps the two equal).
*/}}
{{- define "taskdownload-operator.managerRules" -}}
- apiGroups:
  - ""
  resources:
  - configmaps
  - secrets
  verbs:
  - create
  - delete
  - get
  - list
  - patch
  - watch
- apiGroups:
  - downloads.pixxel.space
  resources:
  - taskdownloads
  verbs:
  - get
  - list
  - watch
- apiGroups:
  - downloads.pixxel.space
  resources:
  - taskdownloads/status
  verbs:
  - get
  - patch
- apiGroups:
  - events.k8s.io
  resources:
  - events
  verbs:
  - create
{{- end }}

{{/*
The scheduling-gate controller's rules on pods, granted only with operator.schedulingGates.
*/}}
{{- define "taskdownload-operator.schedulingGatesRules" -}}
- apiGroups:
  - ""
  resources:
  - pods
  verbs:
  - get
  - list
  - watch
  - patch
{{- end }}

{{/*
Non-empty when the chart makes the ServiceMonitor's scraper identity itself: a ServiceAccount bound to
metrics-reader and a token Secret for it, because no existing Secret is named.
*/}}
{{- define "taskdownload-operator.createsScraper" -}}
{{- with .Values.prometheus.serviceMonitor }}
{{- if and (or .enabled $.Values.prometheus.podMonitor.enabled) $.Values.metrics.enabled $.Values.metrics.secure (not .bearerTokenSecret.name) }}true{{ end }}
{{- end }}
{{- end }}

{{/*
The manager's image: repository:tag (the tag defaults to appVersion), or repository@digest as given.
global.imageRegistry, set by an umbrella chart or for an air-gapped mirror, replaces the repository's
registry part: ghcr.io/pixxel-space/taskdownload-operator becomes <imageRegistry>/pixxel-space/taskdownload-operator.
*/}}
{{- define "taskdownload-operator.image" -}}
{{- $repo := .Values.manager.image.repository }}
{{- with (.Values.global | default dict).imageRegistry }}
{{- $parts := splitList "/" $repo }}
{{- $first := first $parts }}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq "localhost" $first)) }}
{{- $parts = rest $parts }}
{{- end }}
{{- $repo = printf "%s/%s" (trimSuffix "/" .) (join "/" $parts) }}
{{- end }}
{{- if contains "@" $repo }}
{{- $repo }}
{{- else }}
{{- printf "%s:%s" $repo (.Values.manager.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Image pull secrets of the manager pod: global.imagePullSecrets (an umbrella chart's) then manager.imagePullSecrets.
*/}}
{{- define "taskdownload-operator.imagePullSecrets" -}}
{{- $secrets := concat ((.Values.global | default dict).imagePullSecrets | default list) .Values.manager.imagePullSecrets }}
{{- with $secrets }}
imagePullSecrets:
{{- toYaml (uniq .) | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The manager's flags of the injecting webhook (injection.enabled).
*/}}
{{- define "taskdownload-operator.injectionArgs" -}}
{{- $image := printf "%s:%s" (.Values.manager.image.repository | default "controller") (.Values.manager.image.tag | default .Chart.AppVersion) }}
{{- if contains "@" (.Values.manager.image.repository | default "controller") }}
{{- $image = .Values.manager.image.repository }}
{{- end }}
- --enable-injection
- --injection-image={{ .Values.injection.image | default $image }}
- --injection-image-pull-policy={{ .Values.manager.image.pullPolicy | default "IfNotPresent" }}
- --injection-size-limit={{ .Values.injection.sizeLimit }}
- --injection-resources={{ toJson .Values.injection.resources }}
- --webhook-port={{ .Values.injection.port }}
- --injection-webhook-configuration={{ include "taskdownload-operator.resourceName" (dict "suffix" "injection" "context" .) }}
- --injection-service={{ include "taskdownload-operator.resourceName" (dict "suffix" "webhook" "context" .) }}
- --injection-cert-secret={{ include "taskdownload-operator.resourceName" (dict "suffix" "webhook-cert" "context" .) }}
{{- if .Values.injection.certManager.enabled }}
- --injection-cert-rotation=false
{{- end }}
{{- range .Values.injection.env }}
- --injection-env={{ .name }}={{ .value }}
{{- end }}
{{- end }}
