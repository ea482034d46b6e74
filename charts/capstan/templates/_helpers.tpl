{{- define "capstan.labels" -}}
app.kubernetes.io/name: capstan
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "capstan.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{- /*
Ports of the Kafka gateway's per-broker listeners: nodePorts.count when set; with the kubernetes
provisioner and no count, enough for the largest cluster it makes (a multi-zone pool: 3 zones ×
brokersPerZone), since clients of a pool of several brokers need one port per broker.
*/ -}}
{{- define "capstan.kafkaNodePortCount" -}}
{{- $count := int .Values.controlPlane.kafkaGateway.nodePorts.count -}}
{{- if and (eq $count 0) (eq .Values.controlPlane.provisioner "kubernetes") -}}
{{- $count = mul 3 (max 1 (int .Values.controlPlane.kubernetes.pools.brokersPerZone)) -}}
{{- end -}}
{{- $count -}}
{{- end -}}

{{- /*
The operator's rules on namespaced resources: in its ClusterRole when it watches every
namespace, in a Role per namespace of operator.watchNamespaces otherwise.
*/ -}}
{{- define "capstan.operatorRules" -}}
- apiGroups: ["capstan.dev"]
  resources: ["kafkaclusters"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["capstan.dev"]
  resources: ["kafkaclusters/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["capstan.dev"]
  resources: ["kafkaclusters/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["configmaps", "secrets"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Services no longer rendered (an external listener switched off) are deleted.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch"]
# A new storage.size grows the brokers' volumes in place where their class allows it.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "patch"]
# Brokers are rolled one pod at a time (OnDelete StatefulSets) after an in-sync replica check.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
