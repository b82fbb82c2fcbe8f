#!/usr/bin/env python3
"""Writes the Grafana dashboards of this folder (run: python3 deploy/dashboards/generate.py).

Edit the panels here and regenerate; semconv/src/dashboards_tests.rs checks every query of the
JSON files against the metric and label names the receiver emits."""
import json, os
OUT = os.path.dirname(os.path.abspath(__file__))
DS = {"type": "prometheus", "uid": "${datasource}"}
RI = "$__rate_interval"

def ds_var():
    return {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "refresh": 1, "options": []}

def q_var(name, label, query, multi=True, include_all=True):
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": name}, "definition": query,
            "refresh": 2, "multi": multi, "includeAll": include_all, "allValue": ".*",
            "current": {}, "options": [], "sort": 1, "hide": 0}

class D:
    def __init__(self, uid, title, desc, variables, tags):
        self.uid, self.title, self.desc = uid, title, desc
        self.variables = variables
        self.panels = []
        self.y = 0
        self.tags = tags
        self.next_id = 1
    def row(self, title):
        self.panels.append({"type": "row", "title": title, "id": self.next_id, "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
        self.next_id += 1
        self.y += 1
        self.x = 0
    def panel(self, kind, title, targets, w=12, h=8, unit=None, desc="", extra=None, legend=True):
        if not hasattr(self, "x"):
            self.x = 0
        if self.x + w > 24:
            self.x = 0
            self.y += h
        p = {"type": kind, "title": title, "id": self.next_id, "datasource": DS, "description": desc,
             "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
             "targets": [dict(refId=chr(65 + i), datasource=DS, **t) for i, t in enumerate(targets)],
             "fieldConfig": {"defaults": {}, "overrides": []}, "options": {}}
        if unit:
            p["fieldConfig"]["defaults"]["unit"] = unit
        if kind == "timeseries":
            p["options"] = {"legend": {"displayMode": "table" if legend else "list", "placement": "bottom",
                                       "showLegend": legend, "calcs": ["mean", "max"] if legend else []},
                            "tooltip": {"mode": "multi", "sort": "desc"}}
        if extra:
            for k, v in extra.items():
                if isinstance(v, dict) and isinstance(p.get(k), dict):
                    p[k].update(v)
                else:
                    p[k] = v
        self.panels.append(p)
        self.next_id += 1
        self.x += w
        if self.x >= 24:
            self.x = 0
            self.y += h
    def write(self, fname):
        d = {"uid": self.uid, "title": self.title, "description": self.desc, "tags": self.tags,
             "schemaVersion": 39, "version": 1, "editable": True, "graphTooltip": 1,
             "time": {"from": "now-1h", "to": "now"}, "refresh": "30s", "timezone": "",
             "templating": {"list": [ds_var()] + self.variables}, "annotations": {"list": []},
             "panels": self.panels, "links": []}
        with open(os.path.join(OUT, fname), "w") as f:
            json.dump(d, f, indent=2, ensure_ascii=False)
            f.write("\n")

def t(expr, legend="", fmt=None, instant=False):
    r = {"expr": expr, "legendFormat": legend}
    if fmt:
        r["format"] = fmt
    if instant:
        r["instant"] = True
        r["range"] = False
    return r

def heat(expr):
    return t(expr, "{{le}}", fmt="heatmap")

HEATMAP = {"options": {"calculate": False, "yAxis": {"unit": "s"}, "cellGap": 1,
                       "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
                       "tooltip": {"show": True, "yHistogram": True}}}

# 1. RED per service and route.
srv = 'job=~"$service"'
route_by = "job, http_request_method, http_route, otel_ebpf_http_route"
d = D("otel-ebpf-red", "otel-ebpf-receiver / RED per service and route",
      "Rate, errors and duration of HTTP and gRPC exchanges observed by otel-ebpf-receiver, per service (job = service.name) and route (http.route when declared, otel_ebpf.http.route when derived).",
      [q_var("service", "Service", "label_values(http_server_request_duration_seconds_count, job)")],
      ["otel-ebpf-receiver", "red"])
H = "http_server_request_duration_seconds"
C = "http_client_request_duration_seconds"
d.row("HTTP server (requests served)")
d.panel("timeseries", "Request rate by service", [t(f'sum by (job) (rate({H}_count{{{srv}}}[{RI}]))', "{{job}}")], w=8, unit="reqps")
d.panel("timeseries", "Error ratio by service", [t(f'sum by (job) (rate({H}_count{{{srv}, error_type!=""}}[{RI}])) / sum by (job) (rate({H}_count{{{srv}}}[{RI}]))', "{{job}}")], w=8, unit="percentunit",
        desc="Share of server exchanges with error.type set (5xx, timeouts, closed connections).")
d.panel("timeseries", "Duration p50 / p95 / p99", [
    t(f'histogram_quantile(0.5, sum by (le) (rate({H}_bucket{{{srv}}}[{RI}])))', "p50"),
    t(f'histogram_quantile(0.95, sum by (le) (rate({H}_bucket{{{srv}}}[{RI}])))', "p95"),
    t(f'histogram_quantile(0.99, sum by (le) (rate({H}_bucket{{{srv}}}[{RI}])))', "p99")], w=8, unit="s")
d.panel("table", "Routes: rate, errors, p95", [
    t(f'sum by ({route_by}) (rate({H}_count{{{srv}}}[{RI}]))', fmt="table", instant=True),
    t(f'sum by ({route_by}) (rate({H}_count{{{srv}, error_type!=""}}[{RI}]))', fmt="table", instant=True),
    t(f'histogram_quantile(0.95, sum by (le, {route_by}) (rate({H}_bucket{{{srv}}}[{RI}])))', fmt="table", instant=True)],
    w=24, h=10, desc="One row per service, method and route. A declared route fills http_route, a derived one otel_ebpf_http_route; _OTHER collects a service's exchanges past its span-name limit.",
    extra={"transformations": [{"id": "merge", "options": {}},
                               {"id": "organize", "options": {"excludeByName": {"Time": True},
                                "renameByName": {"Value #A": "req/s", "Value #B": "errors/s", "Value #C": "p95 (s)"}}}]})
d.panel("timeseries", "Request rate by route", [t(f'sum by (job, http_request_method, http_route, otel_ebpf_http_route) (rate({H}_count{{{srv}}}[{RI}]))', "{{job}} {{http_request_method}} {{http_route}}{{otel_ebpf_http_route}}")], w=12, unit="reqps")
d.panel("timeseries", "p95 by route", [t(f'histogram_quantile(0.95, sum by (le, job, http_request_method, http_route, otel_ebpf_http_route) (rate({H}_bucket{{{srv}}}[{RI}])))', "{{job}} {{http_request_method}} {{http_route}}{{otel_ebpf_http_route}}")], w=12, unit="s")
d.panel("timeseries", "Responses by status code", [t(f'sum by (job, http_response_status_code) (rate({H}_count{{{srv}}}[{RI}]))', "{{job}} {{http_response_status_code}}")], w=12, unit="reqps")
d.panel("timeseries", "Errors by error.type", [t(f'sum by (job, error_type) (rate({H}_count{{{srv}, error_type!=""}}[{RI}]))', "{{job}} {{error_type}}")], w=12, unit="reqps")
d.row("HTTP client (requests sent)")
d.panel("timeseries", "Client request rate", [t(f'sum by (job, server_address) (rate({C}_count{{{srv}}}[{RI}]))', "{{job}} → {{server_address}}")], w=8, unit="reqps")
d.panel("timeseries", "Client error ratio", [t(f'sum by (job) (rate({C}_count{{{srv}, error_type!=""}}[{RI}])) / sum by (job) (rate({C}_count{{{srv}}}[{RI}]))', "{{job}}")], w=8, unit="percentunit")
d.panel("timeseries", "Client p95", [t(f'histogram_quantile(0.95, sum by (le, job, server_address) (rate({C}_bucket{{{srv}}}[{RI}])))', "{{job}} → {{server_address}}")], w=8, unit="s")
d.row("gRPC")
G = "rpc_server_call_duration_seconds"
GC = "rpc_client_call_duration_seconds"
d.panel("timeseries", "Calls served by method", [t(f'sum by (job, rpc_method) (rate({G}_count{{{srv}}}[{RI}]))', "{{job}} {{rpc_method}}")], w=8, unit="reqps")
d.panel("timeseries", "Server calls by status", [t(f'sum by (job, rpc_response_status_code) (rate({G}_count{{{srv}}}[{RI}]))', "{{job}} {{rpc_response_status_code}}")], w=8, unit="reqps")
d.panel("timeseries", "Call p95 (server / client)", [
    t(f'histogram_quantile(0.95, sum by (le, job, rpc_method) (rate({G}_bucket{{{srv}}}[{RI}])))', "server {{job}} {{rpc_method}}"),
    t(f'histogram_quantile(0.95, sum by (le, job, rpc_method) (rate({GC}_bucket{{{srv}}}[{RI}])))', "client {{job}} {{rpc_method}}")], w=8, unit="s")
d.write("red.json")

# 2. Service graph.
SG = "traces_service_graph_request"
d = D("otel-ebpf-service-graph", "otel-ebpf-receiver / Service graph",
      "Edges between services (client → server) from the service graph metrics: request rate, failures and latency seen by each end.",
      [q_var("client", "Client", f"label_values({SG}_total, client)"),
       q_var("server", "Server", f"label_values({SG}_total, server)")],
      ["otel-ebpf-receiver", "service-graph"])
e = 'client=~"$client", server=~"$server"'
d.row("Edges")
d.panel("nodeGraph", "Service graph", [
    t(f'sum by (client, server) (rate({SG}_total{{{e}}}[{RI}]))', fmt="table", instant=True)], w=24, h=12,
    desc="Each edge is a client → server pair; use Grafana's node graph with a Prometheus data source, or the table below.")
d.panel("table", "Edges: rate, failures, p95", [
    t(f'sum by (client, server) (rate({SG}_total{{{e}}}[{RI}]))', fmt="table", instant=True),
    t(f'sum by (client, server) (rate({SG}_failed_total{{{e}}}[{RI}]))', fmt="table", instant=True),
    t(f'histogram_quantile(0.95, sum by (le, client, server) (rate({SG}_server_seconds_bucket{{{e}}}[{RI}])))', fmt="table", instant=True),
    t(f'histogram_quantile(0.95, sum by (le, client, server) (rate({SG}_client_seconds_bucket{{{e}}}[{RI}])))', fmt="table", instant=True)],
    w=24, h=10, extra={"transformations": [{"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {"Time": True},
         "renameByName": {"Value #A": "req/s", "Value #B": "failed/s", "Value #C": "server p95 (s)", "Value #D": "client p95 (s)"}}}]})
d.panel("timeseries", "Requests per edge", [t(f'sum by (client, server) (rate({SG}_total{{{e}}}[{RI}]))', "{{client}} → {{server}}")], unit="reqps")
d.panel("timeseries", "Failure ratio per edge", [t(f'sum by (client, server) (rate({SG}_failed_total{{{e}}}[{RI}])) / sum by (client, server) (rate({SG}_total{{{e}}}[{RI}]))', "{{client}} → {{server}}")], unit="percentunit")
d.panel("timeseries", "Server-side p95 per edge", [t(f'histogram_quantile(0.95, sum by (le, client, server) (rate({SG}_server_seconds_bucket{{{e}}}[{RI}])))', "{{client}} → {{server}}")], unit="s")
d.panel("timeseries", "Client minus server time (network + queueing), mean", [
    t(f'(sum by (client, server) (rate({SG}_client_seconds_sum{{{e}}}[{RI}])) / sum by (client, server) (rate({SG}_client_seconds_count{{{e}}}[{RI}]))) - (sum by (client, server) (rate({SG}_server_seconds_sum{{{e}}}[{RI}])) / sum by (client, server) (rate({SG}_server_seconds_count{{{e}}}[{RI}])))', "{{client}} → {{server}}")], unit="s")
d.write("service-graph.json")

# 3. Kernel timing.
d = D("otel-ebpf-kernel-timing", "otel-ebpf-receiver / Kernel timing per layer",
      "Where packets spend time inside the kernel, per layer (receiver.kernel_timing.layers: true), and TCP handshake and RTT histograms.",
      [q_var("peer", "Peer address", "label_values(otel_ebpf_kernel_send_duration_seconds_bucket, network_peer_address)")],
      ["otel-ebpf-receiver", "kernel"])
p = 'network_peer_address=~"$peer"'
KS, KR = "otel_ebpf_kernel_send_duration_seconds", "otel_ebpf_kernel_receive_duration_seconds"
d.row("Send path (socket → ip → qdisc → driver)")
for layer in ["socket", "ip", "qdisc", "driver"]:
    d.panel("heatmap", f"send: {layer}", [heat(f'sum by (le) (increase({KS}_bucket{{otel_ebpf_kernel_layer="{layer}", {p}}}[{RI}]))')], w=6, h=8, extra=HEATMAP)
d.row("Receive path (ip → socket)")
for layer in ["ip", "socket"]:
    d.panel("heatmap", f"receive: {layer}", [heat(f'sum by (le) (increase({KR}_bucket{{otel_ebpf_kernel_layer="{layer}", {p}}}[{RI}]))')], w=12, h=8, extra=HEATMAP)
d.row("Per-layer p99 and TCP timing")
d.panel("timeseries", "p99 per layer", [
    t(f'histogram_quantile(0.99, sum by (le, otel_ebpf_kernel_layer) (rate({KS}_bucket{{{p}}}[{RI}])))', "send {{otel_ebpf_kernel_layer}}"),
    t(f'histogram_quantile(0.99, sum by (le, otel_ebpf_kernel_layer) (rate({KR}_bucket{{{p}}}[{RI}])))', "receive {{otel_ebpf_kernel_layer}}")], unit="s")
d.panel("heatmap", "Smoothed RTT", [heat(f'sum by (le) (increase(otel_ebpf_tcp_srtt_seconds_bucket{{{p}}}[{RI}]))')], extra=HEATMAP)
d.panel("heatmap", "Connect duration (client handshake)", [heat(f'sum by (le) (increase(otel_ebpf_tcp_connect_duration_seconds_bucket{{{p}}}[{RI}]))')], extra=HEATMAP)
d.panel("heatmap", "Accept duration (server handshake)", [heat(f'sum by (le) (increase(otel_ebpf_tcp_accept_duration_seconds_bucket{{{p}}}[{RI}]))')], extra=HEATMAP)
d.write("kernel-timing.json")

# 4. TCP health and anomalies.
d = D("otel-ebpf-tcp-health", "otel-ebpf-receiver / TCP health and anomalies",
      "Retransmits, resets, kernel drops, connection churn and the TCP anomaly detector's findings.",
      [q_var("service", "Service", "label_values(otel_ebpf_tcp_connections_opened_total, job)")],
      ["otel-ebpf-receiver", "tcp"])
d.row("Anomalies")
d.panel("timeseries", "Anomalies by type", [t(f'sum by (otel_ebpf_anomaly_type) (increase(otel_ebpf_tcp_anomalies_total[{RI}]))', "{{otel_ebpf_anomaly_type}}")], w=24, h=7,
        desc="tcp.reset_storm, tcp.connect_failures, tcp.peer_connection_spike (the log records carry the details).", extra={"fieldConfig": {"defaults": {"custom": {"drawStyle": "bars"}}}})
d.row("Segments and packets")
d.panel("timeseries", "Retransmits by peer", [t(f'topk(10, sum by (network_peer_address) (rate(otel_ebpf_tcp_retransmits_total{{{srv}}}[{RI}])))', "{{network_peer_address}}")], w=8, unit="pps")
d.panel("timeseries", "Resets sent / received", [t(f'sum by (network_io_direction, otel_ebpf_tcp_reset_reason) (rate(otel_ebpf_tcp_resets_total{{{srv}}}[{RI}]))', "{{network_io_direction}} {{otel_ebpf_tcp_reset_reason}}")], w=8, unit="pps")
d.panel("timeseries", "Kernel drops by reason", [t(f'sum by (otel_ebpf_kernel_drop_reason) (rate(otel_ebpf_kernel_drops_total{{{srv}}}[{RI}]))', "{{otel_ebpf_kernel_drop_reason}}")], w=8, unit="pps")
d.row("Connections")
d.panel("timeseries", "Connections opened", [t(f'sum by (job, otel_ebpf_tcp_role) (rate(otel_ebpf_tcp_connections_opened_total{{{srv}}}[{RI}]))', "{{job}} {{otel_ebpf_tcp_role}}")], unit="cps")
d.panel("timeseries", "Connections closed by state left", [t(f'sum by (otel_ebpf_tcp_state) (rate(otel_ebpf_tcp_connections_closed_total{{{srv}}}[{RI}]))', "{{otel_ebpf_tcp_state}}")], unit="cps",
        desc="ESTABLISHED = aborted or reset, SYN_SENT = connect failed, the FIN states = orderly close.")
d.panel("timeseries", "Failed connects (closed from SYN_SENT)", [t(f'sum by (job) (rate(otel_ebpf_tcp_connections_closed_total{{{srv}, otel_ebpf_tcp_state="SYN_SENT"}}[{RI}]))', "{{job}}")], unit="cps")
d.panel("timeseries", "Connect p99", [t(f'histogram_quantile(0.99, sum by (le, job) (rate(otel_ebpf_tcp_connect_duration_seconds_bucket{{{srv}}}[{RI}])))', "{{job}}")], unit="s")
d.write("tcp-health.json")

# 5. Receiver self-health.
d = D("otel-ebpf-receiver-health", "otel-ebpf-receiver / Receiver health",
      "The receiver's own telemetry (its :8888/metrics, scraped directly): event loss, parse errors, export queue and drops, TLS attach failures, the probe plan. The otelcol_* panels are the same ones a Collector dashboard shows.",
      [q_var("instance", "Instance", "label_values(otel_ebpf_events_read_total, instance)")],
      ["otel-ebpf-receiver", "self"])
i = 'instance=~"$instance"'
d.row("Spans through the pipeline (Collector names)")
d.panel("timeseries", "Accepted / refused spans", [
    t(f'sum by (instance) (rate(otelcol_receiver_accepted_spans_total{{{i}}}[{RI}]))', "accepted {{instance}}"),
    t(f'sum by (instance) (rate(otelcol_receiver_refused_spans_total{{{i}}}[{RI}]))', "refused {{instance}}")], w=8, unit="ops")
d.panel("timeseries", "Sent / failed / enqueue failed", [
    t(f'sum by (instance, exporter) (rate(otelcol_exporter_sent_spans_total{{{i}}}[{RI}]))', "sent {{exporter}} {{instance}}"),
    t(f'sum by (instance, exporter) (rate(otelcol_exporter_send_failed_spans_total{{{i}}}[{RI}]))', "send failed {{exporter}} {{instance}}"),
    t(f'sum by (instance, exporter) (rate(otelcol_exporter_enqueue_failed_spans_total{{{i}}}[{RI}]))', "enqueue failed {{exporter}} {{instance}}")], w=8, unit="ops")
d.panel("timeseries", "Export queue fill", [
    t(f'max by (instance, exporter) (otelcol_exporter_queue_size{{{i}}}) / max by (instance, exporter) (otelcol_exporter_queue_capacity{{{i}}})', "{{exporter}} {{instance}}")], w=8, unit="percentunit")
d.row("Capture")
d.panel("timeseries", "Events read / lost in the kernel", [
    t(f'sum by (instance) (rate(otel_ebpf_events_read_total{{{i}}}[{RI}]))', "read {{instance}}"),
    t(f'sum by (instance) (rate(otel_ebpf_events_lost_kernel_total{{{i}}}[{RI}]))', "lost {{instance}}")], w=8, unit="ops")
d.panel("timeseries", "Kernel counters (losses and map pressure)", [
    t(f'sum by (counter) (rate(otel_ebpf_kernel_events_total{{{i}, counter!~"data_events|tls_events"}}[{RI}]))', "{{counter}}")], w=8, unit="ops")
d.panel("timeseries", "Parse and decode errors", [
    t(f'sum(rate(otel_ebpf_decode_errors_total{{{i}}}[{RI}]))', "decode"),
    t(f'sum(rate(otel_ebpf_parse_errors_total{{{i}}}[{RI}]))', "HTTP/1 parse"),
    t(f'sum(rate(otel_ebpf_http2_frame_errors_total{{{i}}}[{RI}]))', "HTTP/2 frames"),
    t(f'sum(rate(otel_ebpf_hpack_errors_total{{{i}}}[{RI}]))', "HPACK"),
    t(f'sum(rate(otel_ebpf_http2_header_blocks_lost_total{{{i}}}[{RI}]))', "HTTP/2 header blocks lost"),
    t(f'sum(rate(otel_ebpf_http2_streams_dropped_total{{{i}}}[{RI}]))', "HTTP/2 streams dropped")], w=8, unit="ops")
d.row("Spans and records")
d.panel("timeseries", "Spans produced / exported / dropped / filtered / sampled out", [
    t(f'sum(rate(otel_ebpf_spans_produced_total{{{i}}}[{RI}]))', "produced"),
    t(f'sum(rate(otel_ebpf_spans_exported_total{{{i}}}[{RI}]))', "exported"),
    t(f'sum(rate(otel_ebpf_spans_dropped_total{{{i}}}[{RI}]))', "dropped"),
    t(f'sum(rate(otel_ebpf_spans_filtered_total{{{i}}}[{RI}]))', "filtered"),
    t(f'sum(rate(otel_ebpf_spans_sampled_out_total{{{i}}}[{RI}]))', "sampled out")], w=12, unit="ops")
d.panel("timeseries", "Export failures, log records, route overflow", [
    t(f'sum(rate(otel_ebpf_export_failures_total{{{i}}}[{RI}]))', "export failures"),
    t(f'sum(rate(otel_ebpf_log_records_exported_total{{{i}}}[{RI}]))', "log records exported"),
    t(f'sum(rate(otel_ebpf_log_records_dropped_total{{{i}}}[{RI}]))', "log records dropped"),
    t(f'sum(rate(otel_ebpf_routes_overflowed_total{{{i}}}[{RI}]))', "route overflow")], w=12, unit="ops")
d.row("Attachment")
d.panel("stat", "TLS files attached", [t(f'sum(otel_ebpf_tls_attached_files{{{i}}})', instant=True)], w=6, h=6)
d.panel("table", "TLS files not traced (attach failures and others)", [t(f'sum by (reason, file) (otel_ebpf_tls_skipped_total{{{i}}})', fmt="table", instant=True)], w=10, h=6)
d.panel("table", "Kernel timing probe plan (0 = point not hooked)", [t(f'max by (point, hook) (otel_ebpf_kernel_timing_hook{{{i}}})', fmt="table", instant=True)], w=8, h=6)
d.write("receiver-health.json")
print("ok")
