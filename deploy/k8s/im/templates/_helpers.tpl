{{/* Names and labels shared by every object of the release. */}}
{{- define "im.name" -}}{{ .Release.Name }}-im{{- end -}}

{{- define "im.labels" -}}
app.kubernetes.io/name: im
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "im.secretName" -}}
{{- if .Values.secrets.existingSecret }}{{ .Values.secrets.existingSecret }}{{ else }}{{ include "im.name" . }}-secrets{{ end -}}
{{- end -}}

{{/* The environment every process reads (platform/config.ts). */}}
{{- define "im.env" -}}
- name: IM_HOST
  value: "0.0.0.0"
- name: IM_ADVERTISE_HOST
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: IM_ETCD_ENDPOINTS
  value: {{ required "infrastructure.etcdEndpoints is required" .Values.infrastructure.etcdEndpoints | quote }}
- name: IM_ETCD_NAMESPACE
  value: {{ printf "/%s/" .Release.Name | quote }}
- name: IM_REDIS_URL
  value: {{ required "infrastructure.redisUrl is required" .Values.infrastructure.redisUrl | quote }}
- name: IM_KAFKA_BROKERS
  value: {{ required "infrastructure.kafkaBrokers is required" .Values.infrastructure.kafkaBrokers | quote }}
- name: IM_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: IM_MYSQL_URL
  valueFrom: { secretKeyRef: { name: {{ include "im.secretName" . }}, key: IM_MYSQL_URL } }
- name: IM_MESH_SECRET
  valueFrom: { secretKeyRef: { name: {{ include "im.secretName" . }}, key: IM_MESH_SECRET } }
- name: IM_ADMIN_TOKEN
  valueFrom: { secretKeyRef: { name: {{ include "im.secretName" . }}, key: IM_ADMIN_TOKEN, optional: true } }
{{- end -}}
