//! Ring buffer record decoding.
//!
//! Stage: probes → **events** → conn. Input: one BPF ring buffer record (bytes, laid out as
//! [`otel_ebpf_common::EventHeader`] + payload). Output: an owned [`Event`].
//! Errors: short records, unknown kinds or lengths that disagree with the header give a
//! [`DecodeError`]; the caller counts it and goes on.

pub mod net;

use bytes::Bytes;
use otel_ebpf_common::{
    AF_INET, AF_INET6, Direction, EventHeader, EventKind, HEADER_LEN, MAX_CAPTURE, SockRole,
    Syscall, TlsSource,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A TCP connection's endpoints as seen from the traced process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Tuple {
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// Bytes moved by one syscall on a TCP socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataEvent {
    pub pid: u32,
    pub tid: u32,
    pub fd: i32,
    /// Unique per (pid, fd) lifetime; survives fd reuse.
    pub conn_id: u64,
    /// CLOCK_MONOTONIC ns at syscall exit.
    pub ts_ns: u64,
    pub direction: Direction,
    pub role: SockRole,
    pub syscall: Syscall,
    /// Syscall's full byte count (bytes); may exceed `payload.len()`.
    pub total_len: u64,
    pub tuple: Option<Tuple>,
    /// First `min(total_len, capture_bytes)` bytes.
    pub payload: Bytes,
    /// Set for plaintext seen by a TLS library uprobe (then `syscall` is `Read`/`Write` by
    /// direction, `fd` is -1, and `conn_id`/`tuple`/`role` are the socket's when the probes
    /// associated one, else 0/None/Unknown).
    pub tls: Option<TlsInfo>,
}

/// Where TLS plaintext came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    /// The library.
    pub source: TlsSource,
    /// The session pointer in the process (`SSL *`, `gnutls_session_t`, Go `*tls.Conn`),
    /// low 48 bits: identifies the TLS stream.
    pub session: u64,
}

/// One decoded ring buffer record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Data(DataEvent),
    /// A tracked socket fd was closed (syscalls:sys_enter_close).
    Close {
        pid: u32,
        fd: i32,
        conn_id: u64,
        ts_ns: u64,
    },
    /// A process exited (sched:sched_process_exit).
    ProcessExit {
        pid: u32,
        ts_ns: u64,
    },
    /// A process exec'd a new image (sched:sched_process_exec).
    ProcessExec {
        pid: u32,
        ts_ns: u64,
    },
    /// `parent` forked the new process `child` (sched:sched_process_fork; not threads).
    ProcessFork {
        parent: u32,
        child: u32,
        ts_ns: u64,
    },
    /// Kernel network timing or TCP health (skb/net/tcp tracepoints; see [`crate::kernel`]).
    Net(net::NetSample),
    /// TCP state change (sock:inet_sock_set_state); states as in `include/net/tcp_states.h`.
    TcpState {
        old: u8,
        new: u8,
        tuple: Option<Tuple>,
        ts_ns: u64,
    },
}

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than the {HEADER_LEN}-byte header")]
    Short(usize),
    #[error("unknown event kind {0}")]
    UnknownKind(u8),
    #[error("bad field {field}={value}")]
    BadField { field: &'static str, value: u64 },
    #[error("captured_len {captured} does not fit a {record}-byte record")]
    Length { captured: u32, record: usize },
}

fn header_from(bytes: &[u8]) -> Result<EventHeader, DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::Short(bytes.len()));
    }
    // SAFETY: EventHeader is repr(C), plain integers and arrays (every bit pattern valid), and
    // `bytes` holds at least HEADER_LEN bytes; read_unaligned has no alignment requirement.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<EventHeader>()) })
}

pub(crate) fn addr(family: u16, raw: &[u8; 16], port: u16) -> Option<SocketAddr> {
    let ip = match family {
        AF_INET => IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])),
        AF_INET6 => {
            let v6 = Ipv6Addr::from(*raw);
            match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            }
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

fn tuple(h: &EventHeader) -> Option<Tuple> {
    Some(Tuple {
        local: addr(h.family, &h.laddr, h.lport)?,
        remote: addr(h.family, &h.raddr, h.rport)?,
    })
}

fn direction(v: u8) -> Result<Direction, DecodeError> {
    match v {
        0 => Ok(Direction::Egress),
        1 => Ok(Direction::Ingress),
        _ => Err(DecodeError::BadField {
            field: "direction",
            value: v.into(),
        }),
    }
}

fn role(v: u8) -> Result<SockRole, DecodeError> {
    match v {
        0 => Ok(SockRole::Unknown),
        1 => Ok(SockRole::Client),
        2 => Ok(SockRole::Server),
        _ => Err(DecodeError::BadField {
            field: "role",
            value: v.into(),
        }),
    }
}

fn syscall(v: u8) -> Result<Syscall, DecodeError> {
    Ok(match v {
        0 => Syscall::Read,
        1 => Syscall::Write,
        2 => Syscall::Readv,
        3 => Syscall::Writev,
        4 => Syscall::Sendto,
        5 => Syscall::Recvfrom,
        6 => Syscall::Sendmsg,
        7 => Syscall::Recvmsg,
        8 => Syscall::Sendfile,
        _ => {
            return Err(DecodeError::BadField {
                field: "syscall",
                value: v.into(),
            });
        }
    })
}

/// Decodes one ring buffer record. The payload is copied once into an owned [`Bytes`].
pub fn decode(record: &[u8]) -> Result<Event, DecodeError> {
    if record.first() == Some(&(EventKind::Net as u8)) {
        return net::decode(record).map(Event::Net);
    }
    let h = header_from(record)?;
    let kind = EventKind::from_u8(h.kind).ok_or(DecodeError::UnknownKind(h.kind))?;
    Ok(match kind {
        EventKind::Data | EventKind::TlsData => {
            let captured = h.captured_len as usize;
            if captured > MAX_CAPTURE
                || HEADER_LEN + captured > record.len()
                || captured as u64 > h.total_len
            {
                return Err(DecodeError::Length {
                    captured: h.captured_len,
                    record: record.len(),
                });
            }
            Event::Data(DataEvent {
                pid: h.pid,
                tid: h.tid,
                fd: h.fd,
                conn_id: h.conn_id,
                ts_ns: h.ts_ns,
                direction: direction(h.direction)?,
                role: role(h.role)?,
                syscall: if kind == EventKind::TlsData {
                    match direction(h.direction)? {
                        Direction::Egress => Syscall::Write,
                        Direction::Ingress => Syscall::Read,
                    }
                } else {
                    syscall(h.syscall)?
                },
                total_len: h.total_len,
                tuple: tuple(&h),
                payload: Bytes::copy_from_slice(&record[HEADER_LEN..HEADER_LEN + captured]),
                tls: if kind == EventKind::TlsData {
                    let mut ctx = [0u8; 8];
                    ctx[..6].copy_from_slice(&h.tls_ctx);
                    Some(TlsInfo {
                        source: TlsSource::from_u8(h.syscall).ok_or(DecodeError::BadField {
                            field: "tls_source",
                            value: h.syscall.into(),
                        })?,
                        session: u64::from_le_bytes(ctx),
                    })
                } else {
                    None
                },
            })
        }
        EventKind::ProcessExec => Event::ProcessExec {
            pid: h.pid,
            ts_ns: h.ts_ns,
        },
        EventKind::ProcessFork => Event::ProcessFork {
            parent: h.pid,
            child: h.total_len as u32,
            ts_ns: h.ts_ns,
        },
        EventKind::Close => Event::Close {
            pid: h.pid,
            fd: h.fd,
            conn_id: h.conn_id,
            ts_ns: h.ts_ns,
        },
        EventKind::ProcessExit => Event::ProcessExit {
            pid: h.pid,
            ts_ns: h.ts_ns,
        },
        EventKind::TcpState => Event::TcpState {
            old: h.syscall,
            new: h.total_len as u8,
            tuple: tuple(&h),
            ts_ns: h.ts_ns,
        },
        EventKind::Net => unreachable!("Net records are decoded above"),
    })
}

/// A tuple as the probes lay it out: (family, local address, remote address), addresses in
/// network byte order (IPv4 in the first 4 bytes; mixed families as IPv4-mapped IPv6).
pub(crate) fn raw_tuple(t: &Tuple) -> (u16, [u8; 16], [u8; 16]) {
    match (t.local.ip(), t.remote.ip()) {
        (IpAddr::V4(l), IpAddr::V4(r)) => {
            let mut lb = [0u8; 16];
            let mut rb = [0u8; 16];
            lb[..4].copy_from_slice(&l.octets());
            rb[..4].copy_from_slice(&r.octets());
            (AF_INET, lb, rb)
        }
        (l, r) => (AF_INET6, v6(l).octets(), v6(r).octets()),
    }
}

/// Encodes an event back into record bytes: the inverse of [`decode`], used by golden tests
/// and fuzz seeds to replay recorded streams.
pub fn encode(ev: &Event) -> Vec<u8> {
    let mut h = EventHeader {
        fd: -1,
        ..Default::default()
    };
    let mut payload: &[u8] = &[];
    let put_tuple = |h: &mut EventHeader, t: &Option<Tuple>| {
        if let Some(t) = t {
            let (fam, l, r) = raw_tuple(t);
            h.family = fam;
            h.laddr = l;
            h.raddr = r;
            h.lport = t.local.port();
            h.rport = t.remote.port();
        }
    };
    match ev {
        Event::Net(s) => return net::encode(s),
        Event::Data(d) => {
            h.kind = EventKind::Data as u8;
            h.pid = d.pid;
            h.tid = d.tid;
            h.fd = d.fd;
            h.conn_id = d.conn_id;
            h.ts_ns = d.ts_ns;
            h.direction = d.direction as u8;
            h.role = d.role as u8;
            h.syscall = d.syscall as u8;
            h.total_len = d.total_len;
            h.captured_len = d.payload.len() as u32;
            put_tuple(&mut h, &d.tuple);
            payload = &d.payload;
            if let Some(t) = d.tls {
                h.kind = EventKind::TlsData as u8;
                h.syscall = t.source as u8;
                h.tls_ctx.copy_from_slice(&t.session.to_le_bytes()[..6]);
            }
        }
        Event::ProcessExec { pid, ts_ns } => {
            h.kind = EventKind::ProcessExec as u8;
            h.pid = *pid;
            h.ts_ns = *ts_ns;
        }
        Event::ProcessFork {
            parent,
            child,
            ts_ns,
        } => {
            h.kind = EventKind::ProcessFork as u8;
            h.pid = *parent;
            h.total_len = u64::from(*child);
            h.ts_ns = *ts_ns;
        }
        Event::Close {
            pid,
            fd,
            conn_id,
            ts_ns,
        } => {
            h.kind = EventKind::Close as u8;
            h.pid = *pid;
            h.fd = *fd;
            h.conn_id = *conn_id;
            h.ts_ns = *ts_ns;
        }
        Event::ProcessExit { pid, ts_ns } => {
            h.kind = EventKind::ProcessExit as u8;
            h.pid = *pid;
            h.ts_ns = *ts_ns;
        }
        Event::TcpState {
            old,
            new,
            tuple,
            ts_ns,
        } => {
            h.kind = EventKind::TcpState as u8;
            h.syscall = *old;
            h.total_len = u64::from(*new);
            h.ts_ns = *ts_ns;
            put_tuple(&mut h, tuple);
        }
    }
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    // SAFETY: EventHeader is repr(C) plain data of HEADER_LEN bytes with explicit padding.
    out.extend_from_slice(unsafe {
        std::slice::from_raw_parts((&h as *const EventHeader).cast::<u8>(), HEADER_LEN)
    });
    out.extend_from_slice(payload);
    out
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> DataEvent {
        DataEvent {
            pid: 10,
            tid: 11,
            fd: 3,
            conn_id: 99,
            ts_ns: 1234,
            direction: Direction::Egress,
            role: SockRole::Client,
            syscall: Syscall::Writev,
            total_len: 100,
            tuple: Some(Tuple {
                local: "127.0.0.1:5000".parse().unwrap(),
                remote: "127.0.0.1:80".parse().unwrap(),
            }),
            payload: Bytes::from_static(b"GET / HTTP/1.1\r\n"),
            tls: None,
        }
    }

    #[test]
    fn round_trips_every_kind() {
        let v6t = Some(Tuple {
            local: "[::1]:1".parse().unwrap(),
            remote: "[2001:db8::1]:443".parse().unwrap(),
        });
        for ev in [
            Event::Data(data()),
            Event::Close {
                pid: 1,
                fd: 7,
                conn_id: 3,
                ts_ns: 9,
            },
            Event::ProcessExit { pid: 5, ts_ns: 6 },
            Event::ProcessExec { pid: 7, ts_ns: 8 },
            Event::ProcessFork {
                parent: 7,
                child: 9,
                ts_ns: 10,
            },
            Event::Data(DataEvent {
                syscall: Syscall::Read,
                direction: Direction::Ingress,
                fd: -1,
                tls: Some(TlsInfo {
                    source: TlsSource::Go,
                    session: 0x7fff_1234_5678,
                }),
                ..data()
            }),
            Event::TcpState {
                old: 2,
                new: 1,
                tuple: v6t,
                ts_ns: 8,
            },
        ] {
            assert_eq!(decode(&encode(&ev)).unwrap(), ev);
        }
    }

    #[test]
    fn v4_mapped_v6_becomes_v4() {
        let mut h = EventHeader {
            kind: 1,
            family: AF_INET6,
            lport: 80,
            rport: 9,
            ..Default::default()
        };
        h.laddr = Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped().octets();
        h.raddr = h.laddr;
        assert_eq!(tuple(&h).unwrap().local, "127.0.0.1:80".parse().unwrap());
    }

    #[test]
    fn rejects_bad_records() {
        assert_eq!(decode(&[0u8; 10]), Err(DecodeError::Short(10)));
        let mut rec = encode(&Event::Data(data()));
        rec.truncate(rec.len() - 1);
        assert!(matches!(decode(&rec), Err(DecodeError::Length { .. })));
        let mut rec = encode(&Event::Data(data()));
        rec[0] = 77;
        assert_eq!(decode(&rec), Err(DecodeError::UnknownKind(77)));
        let mut rec = encode(&Event::Data(data()));
        rec[1] = 5;
        assert!(matches!(
            decode(&rec),
            Err(DecodeError::BadField {
                field: "direction",
                ..
            })
        ));
    }
}
