//! Frame decoder: splits, many frames per syscall, padding, capture losses, resync.

use super::enc::*;
use crate::protocol::http2::PREFACE;
use crate::protocol::http2::detect;
use crate::protocol::http2::frame::{FrameDecoder, FrameHeader, FrameSink, flag, kind};

#[derive(Default)]
struct Rec(Vec<String>);

impl FrameSink for Rec {
    fn frame(&mut self, h: FrameHeader, payload: &[u8], start_ns: u64, end_ns: u64) {
        self.0.push(format!(
            "frame t{} s{} len{} {:?} {start_ns}-{end_ns}",
            h.kind,
            h.stream_id,
            h.length,
            String::from_utf8_lossy(payload)
        ));
    }
    fn data(&mut self, h: FrameHeader, content: u64, end_ns: u64) {
        self.0.push(format!(
            "data s{} {content} end={} @{end_ns}",
            h.stream_id,
            h.has(flag::END_STREAM)
        ));
    }
    fn lost(&mut self, h: FrameHeader, start_ns: u64, end_ns: u64) {
        self.0.push(format!(
            "lost t{} s{} {start_ns}-{end_ns}",
            h.kind, h.stream_id
        ));
    }
    fn desync(&mut self, ts_ns: u64) {
        self.0.push(format!("desync @{ts_ns}"));
    }
}

fn stream() -> Vec<u8> {
    let mut b = PREFACE.to_vec();
    b.extend(settings(&[(1, 4096)]));
    b.extend(headers(1, 0, b"abc"));
    b.extend(data(1, true, b"hello"));
    b.extend(frame(kind::PING, 0, 0, b"12345678"));
    b
}

fn expected() -> Vec<String> {
    vec![
        "frame t4 s0 len6 \"\\0\\u{1}\\0\\0\\u{10}\\0\" 0-0".into(),
        "frame t1 s1 len3 \"abc\" 0-0".into(),
        "data s1 5 end=true @0".into(),
        "frame t6 s0 len8 \"12345678\" 0-0".into(),
    ]
}

#[test]
fn every_split_of_the_stream_decodes_the_same() {
    let b = stream();
    for cut in 0..=b.len() {
        let mut d = FrameDecoder::new(true, 1024);
        let mut r = Rec::default();
        d.feed(0, &b[..cut], cut as u64, &mut r);
        d.feed(0, &b[cut..], (b.len() - cut) as u64, &mut r);
        assert_eq!(r.0, expected(), "cut at {cut}");
    }
    // Byte by byte, with increasing timestamps: start and end times follow the bytes.
    let mut d = FrameDecoder::new(true, 1024);
    let mut r = Rec::default();
    for (i, byte) in b.iter().enumerate() {
        d.feed(i as u64, std::slice::from_ref(byte), 1, &mut r);
    }
    assert_eq!(r.0[1], "frame t1 s1 len3 \"abc\" 39-50");
    assert_eq!(r.0[2], "data s1 5 end=true @64");
}

#[test]
fn preface_is_optional_and_zero_length_frames_complete_at_once() {
    let mut d = FrameDecoder::new(true, 1024);
    let mut r = Rec::default();
    let b = frame(kind::SETTINGS, flag::ACK, 0, b"");
    d.feed(5, &b, b.len() as u64, &mut r);
    assert_eq!(r.0, ["frame t4 s0 len0 \"\" 5-5"]);
}

#[test]
fn padding_is_removed_from_data() {
    let mut payload = vec![3u8];
    payload.extend_from_slice(b"body");
    payload.extend_from_slice(&[0, 0, 0]);
    let b = frame(kind::DATA, flag::PADDED | flag::END_STREAM, 3, &payload);
    let mut d = FrameDecoder::new(false, 1024);
    let mut r = Rec::default();
    d.feed(1, &b, b.len() as u64, &mut r);
    assert_eq!(r.0, ["data s3 4 end=true @1"]);
}

#[test]
fn uncaptured_data_is_counted_and_sync_kept() {
    // A 10,000-byte DATA frame of which the first syscall captured 100 bytes, then a frame.
    let body = vec![b'x'; 10_000];
    let mut b = data(1, true, &body);
    b.extend(frame(kind::PING, 0, 0, b"abcdefgh"));
    let mut d = FrameDecoder::new(false, 1024);
    let mut r = Rec::default();
    d.feed(1, &b[..100], 10_009, &mut r);
    d.feed(2, &b[10_009..], 17, &mut r);
    assert_eq!(
        r.0,
        [
            "data s1 10000 end=true @1",
            "frame t6 s0 len8 \"abcdefgh\" 2-2"
        ]
    );
}

#[test]
fn uncaptured_header_block_is_lost_but_its_header_kept() {
    let block = vec![b'h'; 500];
    let mut b = headers(1, flag::END_STREAM, &block);
    b.extend(data(3, false, b"z"));
    let mut d = FrameDecoder::new(false, 1024);
    let mut r = Rec::default();
    d.feed(1, &b[..50], 509, &mut r);
    d.feed(2, &b[509..], 10, &mut r);
    assert_eq!(r.0, ["lost t1 s1 1-1", "data s3 1 end=false @2"]);
    // Too large to buffer: lost as well.
    let mut d = FrameDecoder::new(false, 100);
    let mut r = Rec::default();
    d.feed(1, &b, b.len() as u64, &mut r);
    assert_eq!(r.0, ["lost t1 s1 1-1", "data s3 1 end=false @1"]);
}

#[test]
fn lost_frame_header_resyncs_at_a_plausible_syscall() {
    let a = data(1, false, b"aaaa");
    let mut b = a.clone();
    b.extend(data(1, true, b"bb"));
    let mut d = FrameDecoder::new(false, 1024);
    let mut r = Rec::default();
    // The whole first frame and the second's header go by uncaptured after 4 captured bytes.
    d.feed(1, &b[..4], b.len() as u64 + 5, &mut r);
    assert!(d.is_resyncing());
    // Garbage syscall: skipped. Then a syscall made of valid frames: decoded.
    d.feed(2, b"garbage!", 8, &mut r);
    let c = headers(3, flag::END_STREAM, b"q");
    d.feed(3, &c, c.len() as u64, &mut r);
    assert_eq!(r.0, ["desync @1", "frame t1 s3 len1 \"q\" 3-3"]);
}

#[test]
fn frame_chain_is_conservative() {
    let mut two = data(1, false, b"abc");
    two.extend(headers(3, 0, b"x"));
    assert_eq!(
        detect::frame_chain(&two, two.len() as u64).map(|c| (c.frames, c.has_headers)),
        Some((2, true))
    );
    // Cut short of its end: not a chain.
    assert!(detect::frame_chain(&two[..two.len() - 1], two.len() as u64 - 1).is_none());
    // Truncated capture whose last frame runs into the uncaptured bytes: plausible.
    let big = data(1, false, &[0; 5000]);
    assert!(detect::frame_chain(&big[..100], big.len() as u64).is_some());
    // Bad stream ids, unknown types, undefined flags, wrong fixed lengths.
    for bad in [
        frame(kind::DATA, 0, 0, b"a"),
        frame(kind::SETTINGS, 0, 1, b""),
        frame(0x20, 0, 1, b""),
        frame(kind::DATA, 0x40, 1, b""),
        frame(kind::PING, 0, 0, b"1234"),
        frame(kind::RST_STREAM, 0, 1, b"12345"),
    ] {
        assert!(
            detect::frame_chain(&bad, bad.len() as u64).is_none(),
            "{bad:?}"
        );
    }
    assert!(detect::frame_chain(b"GET / HTTP/1.1\r\n\r\n", 18).is_none());
    assert!(detect::frame_chain(b"", 0).is_none());
    assert!(detect::is_server_preface(&settings(&[(3, 100)])));
    assert!(!detect::is_server_preface(&frame(
        kind::SETTINGS,
        1,
        0,
        b""
    )));
    assert!(detect::is_preface(b"PRI * HT"));
    assert!(!detect::is_preface(b"PRI * HTTP/1.1"));
}
