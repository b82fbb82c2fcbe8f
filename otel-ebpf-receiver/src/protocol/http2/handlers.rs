//! What each HTTP/2 frame does to the streams of a connection (RFC 9113 §5.1, §6, §8.1).
//!
//! Stage: protocol::http2::connection (inner step). Input: one frame of one direction, already
//! delimited by the frame decoder (`None` payload: lost to capture). Output: changes to the
//! connection's [`State`] — header blocks assembled and decoded, streams opened, updated and
//! ended into exchanges (pushed to `State::out`), errors counted. No IO, no panics.

use super::connection::{Block, MAX_HEADER_BLOCK, MAX_STREAMS, State, di, other, side_of};
use super::frame::{FrameHeader, flag, kind};
use super::hpack::{HeaderList, HpackError};
use super::stream::{Request, Stream};
use crate::protocol::ExchangeError;
use otel_ebpf_common::Direction;

/// RST_STREAM error code REFUSED_STREAM (RFC 9113 §7).
pub const REFUSED_STREAM: u32 = 0x7;

/// A HEADERS or PUSH_PROMISE frame: starts a header block (§6.2, §6.6).
pub(super) fn block_start(
    st: &mut State,
    d: Direction,
    h: FrameHeader,
    payload: Option<&[u8]>,
    start_ns: u64,
    end_ns: u64,
) {
    let i = di(d);
    if st.block[i].take().is_some() {
        // The previous block never got its END_HEADERS (§4.3): it is lost.
        st.stats.frame_errors += 1;
        lose_block(st, d);
    }
    let push = h.kind == kind::PUSH_PROMISE;
    let mut block = Block {
        stream_id: h.stream_id,
        promised: None,
        end_stream: !push && h.has(flag::END_STREAM),
        start_ns,
        buf: Vec::new(),
        lost: payload.is_none(),
    };
    if let Some(p) = payload {
        match fragment(h, p) {
            Some((frag, promised)) => {
                block.promised = promised;
                block.buf.extend_from_slice(frag);
            }
            None => {
                st.stats.frame_errors += 1;
                block.lost = true;
            }
        }
    } else if push {
        // The promised stream id was in the lost payload: nothing to attach the block to.
        lose_block(st, d);
        return;
    }
    st.block[i] = Some(block);
    if h.has(flag::END_HEADERS) {
        complete_block(st, d, end_ns);
    }
}

/// Strips padding, priority and the promised stream id (§6.2, §6.6). `None` when the
/// lengths do not add up.
fn fragment(h: FrameHeader, p: &[u8]) -> Option<(&[u8], Option<u32>)> {
    let (pad, mut p) = if h.has(flag::PADDED) {
        let (&n, rest) = p.split_first()?;
        (usize::from(n), rest)
    } else {
        (0, p)
    };
    let mut promised = None;
    if h.kind == kind::PUSH_PROMISE {
        let id = p.get(..4)?;
        promised = Some(u32::from_be_bytes([id[0], id[1], id[2], id[3]]) & 0x7fff_ffff);
        p = &p[4..];
    } else if h.has(flag::PRIORITY) {
        p = p.get(5..)?;
    }
    let end = p.len().checked_sub(pad)?;
    Some((&p[..end], promised))
}

/// A CONTINUATION frame (§6.10).
pub(super) fn continuation(
    st: &mut State,
    d: Direction,
    h: FrameHeader,
    payload: Option<&[u8]>,
    end_ns: u64,
) {
    let i = di(d);
    let Some(b) = st.block[i].as_mut().filter(|b| b.stream_id == h.stream_id) else {
        // No block open (its start was lost, or a protocol error).
        st.stats.frame_errors += 1;
        return;
    };
    match payload {
        Some(p) if !b.lost && b.buf.len() + p.len() <= MAX_HEADER_BLOCK => {
            b.buf.extend_from_slice(p)
        }
        _ => {
            b.lost = true;
            b.buf = Vec::new();
        }
    }
    if h.has(flag::END_HEADERS) {
        complete_block(st, d, end_ns);
    }
}

/// A header block can no longer be decoded: the HPACK table of `d` is unknown from here on.
fn lose_block(st: &mut State, d: Direction) {
    st.stats.header_blocks_lost += 1;
    st.hpack[di(d)].mark_unknown();
    st.headers_seen = true;
}

/// END_HEADERS: decodes the block of direction `d` and applies it to its stream.
fn complete_block(st: &mut State, d: Direction, end_ns: u64) {
    let Some(block) = st.block[di(d)].take() else {
        return;
    };
    let mut list = std::mem::take(&mut st.scratch);
    let decoded = if block.lost {
        lose_block(st, d);
        false
    } else {
        st.headers_seen = true;
        match st.hpack[di(d)].decode(&block.buf, &mut list) {
            Ok(()) => true,
            Err(e) => {
                st.stats.hpack_errors += 1;
                // Fields before the error are right; the rest are missing.
                list.dropped += u32::from(!matches!(e, HpackError::ListTooLarge));
                true
            }
        }
    };
    apply_block(st, d, &block, decoded.then_some(&list), end_ns);
    st.scratch = list;
}

/// Applies a decoded (or lost: `None`) header block to its stream.
fn apply_block(
    st: &mut State,
    d: Direction,
    block: &Block,
    list: Option<&HeaderList>,
    end_ns: u64,
) {
    let request_dir = match st.request_dir {
        Some(r) => r,
        None => {
            let Some(l) = list else { return };
            let r = if l.get(":method").is_some() || l.get(":path").is_some() {
                d
            } else if l.get(":status").is_some() || block.promised.is_some() {
                other(d)
            } else {
                return; // cannot tell a request from a response yet
            };
            st.request_dir = Some(r);
            r
        }
    };
    if let Some(promised) = block.promised {
        // A pushed request (§8.4): its response comes on the promised stream.
        if d != request_dir {
            open(st, promised, Request::from_list(list), block.start_ns, true);
        }
        return;
    }
    let id = block.stream_id;
    if d == request_dir {
        if let Some(s) = st.streams.get_mut(&id) {
            // Request trailers.
            s.request_ended |= block.end_stream;
            s.last_ns = end_ns;
        } else {
            open(
                st,
                id,
                Request::from_list(list),
                block.start_ns,
                block.end_stream,
            );
        }
        return;
    }
    let Some(s) = st.streams.get_mut(&id) else {
        return; // a response to a request we did not see (joined mid-way)
    };
    s.on_response_block(list);
    s.last_ns = end_ns;
    if block.end_stream {
        end_stream(st, id, end_ns, None);
    }
}

fn open(st: &mut State, id: u32, request: Request, start_ns: u64, ended: bool) {
    if st.streams.len() >= MAX_STREAMS {
        st.stats.streams_dropped += 1;
        return;
    }
    let mut s = Stream::new(id, request, start_ns, ended);
    s.tid = st.tid;
    st.streams.insert(id, s);
}

/// A DATA frame's end (§6.1).
pub(super) fn data(st: &mut State, d: Direction, h: FrameHeader, bytes: u64, end_ns: u64) {
    let request = st.request_dir == Some(d);
    let Some(s) = st.streams.get_mut(&h.stream_id) else {
        return;
    };
    s.last_ns = end_ns;
    if request {
        s.request_body_bytes = s.request_body_bytes.saturating_add(bytes);
        s.request_ended |= h.has(flag::END_STREAM);
    } else {
        s.response_body_bytes = s.response_body_bytes.saturating_add(bytes);
        if h.has(flag::END_STREAM) {
            end_stream(st, h.stream_id, end_ns, None);
        }
    }
}

/// Stream `id` ended at `end_ns` (response END_STREAM, or `error`): its exchange is emitted.
pub(super) fn end_stream(st: &mut State, id: u32, end_ns: u64, error: Option<ExchangeError>) {
    let Some(request_dir) = st.request_dir else {
        return;
    };
    if let Some(s) = st.streams.remove(&id) {
        let ex = s.into_exchange(&st.info, side_of(request_dir), end_ns, error);
        st.out.push(ex);
    }
}

/// GOAWAY sent on direction `d` (§6.8): streams the receiver initiated above `last` were not
/// processed; they end as refused.
pub(super) fn goaway(st: &mut State, d: Direction, last: u32, end_ns: u64) {
    let Some(request_dir) = st.request_dir else {
        return;
    };
    // Sent by the server: client (odd) streams; sent by the client: pushed (even) streams.
    let parity = u32::from(d != request_dir);
    let refused: Vec<u32> = st
        .streams
        .range(last.saturating_add(1)..)
        .map(|(&id, _)| id)
        .filter(|id| id % 2 == parity)
        .collect();
    for id in refused {
        end_stream(
            st,
            id,
            end_ns,
            Some(ExchangeError::StreamReset(REFUSED_STREAM)),
        );
    }
}
