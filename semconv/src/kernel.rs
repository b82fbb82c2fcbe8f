//! Kernel network timing and TCP health: metric and attribute names (our own, under
//! `otel_ebpf.`; OpenTelemetry semantic conventions have no per-layer kernel timing). Where an
//! OTel name exists (`network.peer.address`, `network.io.direction`, `error.type`) it is used.
//!
//! Layers (see the README's "Kernel network timing" diagram), as `otel_ebpf.kernel.layer`:
//! - send: `socket` (written by the application → TCP transmit; waiting in the socket's send
//!   queue for cwnd/rwnd/pacing), `ip` (TCP transmit → qdisc enqueue: IP, netfilter,
//!   neighbour), `qdisc` (enqueue → driver start), `driver` (driver start → transmit done);
//! - receive: `ip` (`netif_receive_skb` → TCP: IP, netfilter, socket lookup), `socket` (TCP →
//!   copied to the user: waiting in the socket receive queue until the application reads).

/// Metric names, units and instruments.
pub mod metric {
    /// Histogram (s): kernel time of each transmitted skb per layer; attributes
    /// `otel_ebpf.kernel.layer` (socket, ip, qdisc, driver), `network.peer.address`.
    pub const SEND_DURATION: &str = "otel_ebpf.kernel.send.duration";
    /// Histogram (s): kernel time of each received skb per layer; attributes
    /// `otel_ebpf.kernel.layer` (ip, socket), `network.peer.address`.
    pub const RECEIVE_DURATION: &str = "otel_ebpf.kernel.receive.duration";
    /// Histogram (s): outgoing connect, SYN_SENT → ESTABLISHED (or → CLOSE with `error.type`
    /// `connection_refused` / `connect_failed`); attribute `network.peer.address`.
    pub const CONNECT_DURATION: &str = "otel_ebpf.tcp.connect.duration";
    /// Histogram (s): incoming connection's handshake on the server, SYN-ACK sent → final ACK
    /// (ESTABLISHED): the kernel's first RTT sample of the connection (`tcp_sock.srtt_us` at
    /// `sock:inet_sock_set_state` SYN_RECV → ESTABLISHED; SYN → SYN-ACK is the same softirq).
    /// Under the resource of the process listening on the port (known from its `listen()`, or
    /// from /proc at start-up); attribute `network.peer.address`. Not the wait in the accept
    /// queue (ESTABLISHED → `accept()` returned): that needs a hook in `accept()` (a syscall
    /// tracepoint slows every syscall of the host; fentry/kprobe on `inet_csk_accept` is not
    /// built).
    pub const ACCEPT_DURATION: &str = "otel_ebpf.tcp.accept.duration";
    /// Histogram (s): smoothed RTT (`tcp_sock.srtt_us`) sampled with each received skb.
    pub const SRTT: &str = "otel_ebpf.tcp.srtt";
    /// Counter ({segment}): retransmitted segments (`tcp:tcp_retransmit_skb`).
    pub const RETRANSMITS: &str = "otel_ebpf.tcp.retransmits";
    /// Counter ({segment}): RSTs, `network.io.direction` = `transmit` (sent) or `receive`;
    /// sent ones also carry `otel_ebpf.tcp.reset_reason` (`enum sk_rst_reason`).
    pub const RESETS: &str = "otel_ebpf.tcp.resets";
    /// Counter ({packet}): TCP packets dropped by the kernel, by `otel_ebpf.kernel.drop_reason`.
    pub const DROPS: &str = "otel_ebpf.kernel.drops";
    /// Counter ({connection}): connections opened, `otel_ebpf.tcp.role` = client (connect
    /// succeeded, under the connecting process) or server (accepted, under the listening
    /// process).
    pub const CONNECTIONS_OPENED: &str = "otel_ebpf.tcp.connections.opened";
    /// Counter ({connection}): connections closed, by `otel_ebpf.tcp.state` (the state left for
    /// TCP_CLOSE: ESTABLISHED = aborted/reset, SYN_SENT = connect failed, LAST_ACK /
    /// FIN_WAIT1 / FIN_WAIT2 / CLOSING / TIME_WAIT = orderly).
    pub const CONNECTIONS_CLOSED: &str = "otel_ebpf.tcp.connections.closed";
    /// Counter ({anomaly}): TCP anomalies detected, by `otel_ebpf.anomaly.type`.
    pub const ANOMALIES: &str = "otel_ebpf.tcp.anomalies";
    /// Unit of the duration histograms.
    pub const UNIT_SECONDS: &str = "s";
    /// Buckets of the layer histograms (s): 1 µs … 1 s (kernel layers are µs-scale; queueing
    /// and retransmission push them to ms).
    pub const LAYER_BUCKETS: [f64; 16] = [
        0.000_001,
        0.000_002_5,
        0.000_005,
        0.000_01,
        0.000_025,
        0.000_05,
        0.000_1,
        0.000_25,
        0.000_5,
        0.001,
        0.002_5,
        0.005,
        0.01,
        0.025,
        0.1,
        1.0,
    ];
}

/// Attribute names.
pub mod attribute {
    /// The layer of a duration metric (see the module docs).
    pub const LAYER: &str = "otel_ebpf.kernel.layer";
    /// Kernel drop reason (`enum skb_drop_reason` without `SKB_DROP_REASON_`), e.g.
    /// `NETFILTER_DROP`, `NO_SOCKET`, `QDISC_DROP`.
    pub const DROP_REASON: &str = "otel_ebpf.kernel.drop_reason";
    /// Reset reason (`enum sk_rst_reason` without `SK_RST_REASON_`), e.g. `NO_SOCKET`.
    pub const RESET_REASON: &str = "otel_ebpf.tcp.reset_reason";
    /// `client` or `server`.
    pub const ROLE: &str = "otel_ebpf.tcp.role";
    /// TCP state name (`include/net/tcp_states.h` without `TCP_`).
    pub const STATE: &str = "otel_ebpf.tcp.state";
    /// OTel `network.io.direction`: `transmit` / `receive`.
    pub const IO_DIRECTION: &str = "network.io.direction";
    /// Span attribute prefix of the request's kernel time per layer (s, double):
    /// `otel_ebpf.kernel.request.<layer>_duration` = the longest time one skb of the request
    /// spent in that layer (per-skb times overlap; the slowest bounds what the layer added),
    /// and `otel_ebpf.kernel.request.skbs` (int) = skbs counted. The request is sent by a
    /// client (send layers) and received by a server (receive layers); the response the other
    /// way.
    pub const REQUEST_PREFIX: &str = "otel_ebpf.kernel.request.";
    /// Span attribute prefix of the response's kernel time per layer (s, double).
    pub const RESPONSE_PREFIX: &str = "otel_ebpf.kernel.response.";
    /// Span attribute suffix after the layer name.
    pub const DURATION_SUFFIX: &str = "_duration";
    /// Span attribute (bool, `true`): the span's skbs were timed through the kernel's layers
    /// (layer timing is sampled, `receiver.kernel_timing.sampling`); present exactly when the
    /// span carries `…request.*` / `…response.*` layer attributes.
    pub const SAMPLED: &str = "otel_ebpf.kernel.sampled";
    /// Span attribute (int): segments retransmitted on the span's connection during it.
    pub const SPAN_RETRANSMITS: &str = "otel_ebpf.tcp.retransmits";
    /// Span attribute (double, s): the connection's last smoothed RTT seen during the span.
    pub const SPAN_SRTT: &str = "otel_ebpf.tcp.srtt";
    /// The full per-layer span attribute names, `[request, response]` × the layer:
    /// `{REQUEST_PREFIX|RESPONSE_PREFIX}{layer}{DURATION_SUFFIX}` for every layer of
    /// [`super::layer::SEND`] (`socket`, `ip`, `qdisc`, `driver`; the receive layers are
    /// `ip` and `socket` of the same table).
    pub const LAYER_DURATION: [[&str; 4]; 2] = [
        [
            "otel_ebpf.kernel.request.socket_duration",
            "otel_ebpf.kernel.request.ip_duration",
            "otel_ebpf.kernel.request.qdisc_duration",
            "otel_ebpf.kernel.request.driver_duration",
        ],
        [
            "otel_ebpf.kernel.response.socket_duration",
            "otel_ebpf.kernel.response.ip_duration",
            "otel_ebpf.kernel.response.qdisc_duration",
            "otel_ebpf.kernel.response.driver_duration",
        ],
    ];
    /// `{REQUEST_PREFIX|RESPONSE_PREFIX}skbs` (int): skbs timed in that direction.
    pub const SKBS: [&str; 2] = [
        "otel_ebpf.kernel.request.skbs",
        "otel_ebpf.kernel.response.skbs",
    ];
}

/// Layer names (`otel_ebpf.kernel.layer` values), in path order.
pub mod layer {
    /// Send layers, in [`crate::kernel`] `Tx` record order.
    pub const SEND: [&str; 4] = ["socket", "ip", "qdisc", "driver"];
    /// Receive layers, in `Rx` record order.
    pub const RECEIVE: [&str; 2] = ["ip", "socket"];
}

/// TCP state names by `TCP_*` value (`include/net/tcp_states.h`), index = value.
pub const TCP_STATES: [&str; 13] = [
    "UNKNOWN",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
    "NEW_SYN_RECV",
];
