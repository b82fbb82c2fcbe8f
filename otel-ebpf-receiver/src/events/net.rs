//! Decoding of kernel network timing / TCP health records (used by `kernel/`).
//!
//! Stage: probes → **events** (the [`EventKind::Net`] branch of `events::decode`). Input: one
//! ring buffer record laid out as [`otel_ebpf_common::NetEvent`] (112 bytes). Output: an owned
//! [`NetSample`]. Errors: a short record or an unknown [`NetKind`] is a [`DecodeError`].

use super::{DecodeError, Tuple, addr};

use otel_ebpf_common::{
    CONNECT_FAILED, CONNECT_OK, CONNECT_REFUSED, EventKind, NET_EVENT_LEN, NOT_MEASURED, NetEvent,
    NetKind, SockRole,
};

/// One kernel network timing or TCP health event (see [`NetKind`] for what each carries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetSample {
    pub kind: NetKind,
    /// Owning process (tgid); 0 = not known.
    pub pid: u32,
    /// Connection id as in data events; 0 = no tracked connection.
    pub conn_id: u64,
    /// CLOCK_MONOTONIC ns.
    pub ts_ns: u64,
    /// Per-layer durations (ns); `None` = not measured. Order per kind: see
    /// [`NetEvent::d`] (Tx: socket, ip, qdisc, driver; Rx: ip, socket).
    pub d: [Option<u64>; 4],
    /// Bytes (`skb->len`).
    pub len: u32,
    pub aux: u32,
    pub aux2: u32,
    pub role: SockRole,
    pub tuple: Option<Tuple>,
}

/// Result of a [`NetKind::Connect`] (`aux`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectResult {
    Ok,
    /// SYN_SENT → CLOSE without a RST (timeout, unreachable, aborted).
    Failed,
    /// The peer answered with RST.
    Refused,
}

impl NetSample {
    /// Connect result (Connect events; `None` for others or an unknown value).
    pub fn connect_result(&self) -> Option<ConnectResult> {
        if self.kind != NetKind::Connect {
            return None;
        }
        match self.aux {
            CONNECT_OK => Some(ConnectResult::Ok),
            CONNECT_FAILED => Some(ConnectResult::Failed),
            CONNECT_REFUSED => Some(ConnectResult::Refused),
            _ => None,
        }
    }
}

fn role(v: u8) -> SockRole {
    match v {
        1 => SockRole::Client,
        2 => SockRole::Server,
        _ => SockRole::Unknown,
    }
}

/// Decodes a [`EventKind::Net`] record.
pub fn decode(record: &[u8]) -> Result<NetSample, DecodeError> {
    if record.len() < NET_EVENT_LEN {
        return Err(DecodeError::Short(record.len()));
    }
    // SAFETY: NetEvent is repr(C) of integers and byte arrays (every bit pattern valid) and
    // `record` holds at least NET_EVENT_LEN bytes; read_unaligned has no alignment need.
    let e = unsafe { std::ptr::read_unaligned(record.as_ptr().cast::<NetEvent>()) };
    let kind = NetKind::from_u8(e.net).ok_or(DecodeError::BadField {
        field: "net",
        value: e.net.into(),
    })?;
    let tuple = match (
        addr(e.family, &e.laddr, e.lport),
        addr(e.family, &e.raddr, e.rport),
    ) {
        (Some(local), Some(remote)) => Some(Tuple { local, remote }),
        _ => None,
    };
    Ok(NetSample {
        kind,
        pid: e.pid,
        conn_id: e.conn_id,
        ts_ns: e.ts_ns,
        d: e.d.map(|v| (v != NOT_MEASURED).then_some(v)),
        len: e.len,
        aux: e.aux,
        aux2: e.aux2,
        role: role(e.role),
        tuple,
    })
}

/// Encodes a sample back into record bytes (inverse of [`decode`]; golden tests, fuzz seeds).
pub fn encode(s: &NetSample) -> Vec<u8> {
    let mut e = NetEvent {
        kind: EventKind::Net as u8,
        net: s.kind as u8,
        pid: s.pid,
        conn_id: s.conn_id,
        ts_ns: s.ts_ns,
        d: s.d.map(|v| v.unwrap_or(NOT_MEASURED)),
        len: s.len,
        aux: s.aux,
        aux2: s.aux2,
        role: s.role as u8,
        ..NetEvent::default()
    };
    if let Some(t) = &s.tuple {
        let (fam, l, r) = crate::events::raw_tuple(t);
        e.family = fam;
        e.laddr = l;
        e.raddr = r;
        e.lport = t.local.port();
        e.rport = t.remote.port();
    }
    // SAFETY: NetEvent is repr(C) plain data with explicit padding fields (all initialised).
    let bytes =
        unsafe { std::slice::from_raw_parts((&e as *const NetEvent).cast::<u8>(), NET_EVENT_LEN) };
    bytes.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: NetKind) -> NetSample {
        NetSample {
            kind,
            pid: 42,
            conn_id: 7 << 12,
            ts_ns: 123_456_789,
            d: [Some(0), Some(1500), None, Some(20)],
            len: 1448,
            aux: 2,
            aux2: 10,
            role: SockRole::Client,
            tuple: Some(Tuple {
                local: "10.0.0.1:40000".parse().unwrap(),
                remote: "10.0.0.2:80".parse().unwrap(),
            }),
        }
    }

    #[test]
    fn round_trips_every_kind() {
        for k in 1..=9u8 {
            let s = sample(NetKind::from_u8(k).unwrap());
            assert_eq!(decode(&encode(&s)).unwrap(), s);
        }
        let mut v6 = sample(NetKind::Rx);
        v6.tuple = Some(Tuple {
            local: "[2001:db8::1]:443".parse().unwrap(),
            remote: "[2001:db8::2]:5000".parse().unwrap(),
        });
        assert_eq!(decode(&encode(&v6)).unwrap(), v6);
    }

    #[test]
    fn refuses_short_and_unknown_records() {
        let s = encode(&sample(NetKind::Tx));
        assert_eq!(decode(&s[..50]), Err(DecodeError::Short(50)));
        let mut bad = s.clone();
        bad[1] = 200;
        assert!(matches!(
            decode(&bad),
            Err(DecodeError::BadField { field: "net", .. })
        ));
    }

    #[test]
    fn connect_result_follows_aux() {
        let mut s = sample(NetKind::Connect);
        assert_eq!(s.connect_result(), Some(ConnectResult::Refused));
        s.aux = CONNECT_OK;
        assert_eq!(s.connect_result(), Some(ConnectResult::Ok));
        s.aux = 99;
        assert_eq!(s.connect_result(), None);
        assert_eq!(sample(NetKind::Tx).connect_result(), None);
    }
}
