{{- define "receiver.container" }}
- name: otel-ebpf-receiver
  image: {{ .Values.image.repository }}:{{ .Values.image.tag }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["--config", "/etc/otel-ebpf-receiver/config.yaml"]
  env:
    - name: K8S_NODE_NAME
      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
    {{- if eq .Values.mode "sidecar" }}
    - name: K8S_POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: K8S_NAMESPACE_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
    - name: K8S_POD_UID
      valueFrom: {fieldRef: {fieldPath: metadata.uid}}
    {{- end }}
    - name: OTEL_EXPORTER_OTLP_ENDPOINT
      value: {{ quote .Values.otlpEndpoint }}
  ports:
    - {name: health, containerPort: 13133, protocol: TCP}
    - {name: metrics, containerPort: 8888, protocol: TCP}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    privileged: false
    runAsUser: 0
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    seccompProfile: {type: RuntimeDefault}
    capabilities:
      drop: [ALL]
      # BPF: load programs and maps. PERFMON: attach raw tracepoints and uprobes, read memory
      # from probes. SYS_RESOURCE: RLIMIT_MEMLOCK on kernels < 5.11. SYS_PTRACE: read other
      # processes' /proc/<pid>/{exe,environ,maps,root}. DAC_READ_SEARCH: open TLS libraries in
      # other containers through /proc/<pid>/root.
      add: [BPF, PERFMON, SYS_RESOURCE, SYS_PTRACE, DAC_READ_SEARCH]
  startupProbe:
    httpGet: {path: /, port: health}
    periodSeconds: 5
    failureThreshold: 36
  livenessProbe:
    httpGet: {path: /, port: health}
    periodSeconds: 20
  readinessProbe:
    httpGet: {path: /, port: health}
    periodSeconds: 10
  volumeMounts:
    - {name: receiver-config, mountPath: /etc/otel-ebpf-receiver, readOnly: true}
    - {name: tracefs, mountPath: /sys/kernel/tracing, readOnly: true}
    {{- if eq .Values.mode "sidecar" }}
    - {name: podinfo, mountPath: /etc/podinfo, readOnly: true}
    {{- end }}
{{- end }}
