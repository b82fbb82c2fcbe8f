//! Parser-level tests: what the parser tells its sink for byte streams split every way.

use super::*;

/// What a parser told its sink.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Req(String, String, u64),
    Resp(u16, u64),
    End(u64, u64, EndKind),
    Err(ParseError, u64),
}

/// Records calls; answers `response_head` with `answers` in order (then `Other`).
#[derive(Default)]
struct Rec {
    evs: Vec<Ev>,
    answers: Vec<Answered>,
}

impl MessageSink for Rec {
    fn request_head(&mut self, head: RequestHead, start_ns: u64) {
        self.evs.push(Ev::Req(head.method, head.target, start_ns));
    }
    fn response_head(&mut self, status: u16, start_ns: u64) -> Answered {
        self.evs.push(Ev::Resp(status, start_ns));
        if self.answers.is_empty() {
            Answered::Other
        } else {
            self.answers.remove(0)
        }
    }
    fn message_end(&mut self, end_ns: u64, body_bytes: u64, how: EndKind) {
        self.evs.push(Ev::End(end_ns, body_bytes, how));
    }
    fn parse_error(&mut self, err: ParseError, ts_ns: u64) {
        self.evs.push(Ev::Err(err, ts_ns));
    }
}

fn req(m: &str, t: &str, ts: u64) -> Ev {
    Ev::Req(m.into(), t.into(), ts)
}

fn end(ts: u64, body: u64) -> Ev {
    Ev::End(ts, body, EndKind::Complete)
}

fn requests() -> Http1Parser {
    Http1Parser::new(MessageKind::Request, 1024)
}

fn responses() -> Http1Parser {
    Http1Parser::new(MessageKind::Response, 1024)
}

fn feed_all(p: &mut Http1Parser, rec: &mut Rec, chunks: &[(u64, &[u8])]) {
    for (ts, c) in chunks {
        p.feed(*ts, c, c.len() as u64, rec);
    }
}

#[test]
fn every_two_way_split_of_a_keep_alive_stream_gives_the_same_events() {
    let stream: &[u8] = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\
        \r\nGET /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n\
        GET /c HTTP/1.0\r\n\r\n";
    for split in 0..=stream.len() {
        let (mut p, mut rec) = (requests(), Rec::default());
        feed_all(
            &mut p,
            &mut rec,
            &[(1, &stream[..split]), (2, &stream[split..])],
        );
        let ts = |at: usize| if split > at { 1 } else { 2 };
        let find = |pat: &[u8]| stream.windows(pat.len()).position(|w| w == pat).unwrap();
        let (a_end, b_start, c_start) = (find(b"abc") + 2, find(b"GET /b"), find(b"GET /c"));
        let want = vec![
            req("POST", "/a", ts(0)),
            end(ts(a_end), 3),
            req("GET", "/b", ts(b_start)),
            end(ts(c_start - 1), 2),
            req("GET", "/c", ts(c_start)),
            end(ts(stream.len() - 1), 0),
        ];
        assert_eq!(rec.evs, want, "split {split}");
        assert!(p.is_idle());
    }
}

#[test]
fn request_with_non_chunked_transfer_coding_is_an_error() {
    let (mut p, mut rec) = (requests(), Rec::default());
    let bad = b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nzzzz";
    feed_all(
        &mut p,
        &mut rec,
        &[(1, bad), (2, b"GET /y HTTP/1.1\r\n\r\n")],
    );
    let want = vec![
        req("POST", "/x", 1),
        Ev::Err(ParseError::BadTransferCoding, 1),
        req("GET", "/y", 2),
        end(2, 0),
    ];
    assert_eq!(rec.evs, want);
}

#[test]
fn response_framing_follows_the_answered_request() {
    let (mut p, mut rec) = (responses(), Rec::default());
    rec.answers = vec![Answered::Head, Answered::Connect];
    feed_all(
        &mut p,
        &mut rec,
        &[
            (1, b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"),
            (
                2,
                b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01",
            ),
            (3, b"HTTP/1.1 200 OK\r\n\r\n"),
        ],
    );
    let want = vec![Ev::Resp(200, 1), end(1, 0), Ev::Resp(200, 2), end(2, 0)];
    assert_eq!(rec.evs, want);
    assert!(p.is_tunnel());
}

#[test]
fn response_with_unknown_length_or_final_coding_reads_until_close() {
    for head in [
        &b"HTTP/1.1 200 OK\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    ] {
        let (mut p, mut rec) = (responses(), Rec::default());
        feed_all(
            &mut p,
            &mut rec,
            &[
                (1, head),
                (2, b"0\r\n\r\n"),
                (3, b"HTTP/1.1 200 OK\r\n\r\n"),
            ],
        );
        p.feed(4, b"", 1000, &mut rec);
        p.finish(&mut rec);
        assert_eq!(rec.evs, vec![Ev::Resp(200, 1), end(4, 1024)]);
    }
}

#[test]
fn uncaptured_bytes_count_towards_content_length() {
    let (mut p, mut rec) = (responses(), Rec::default());
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n0123";
    p.feed(1, head, head.len() as u64 + 5000, &mut rec);
    p.feed(2, b"abcd", 4996, &mut rec);
    p.feed(
        3,
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        45,
        &mut rec,
    );
    let want = vec![Ev::Resp(200, 1), end(2, 10000), Ev::Resp(404, 3), end(3, 0)];
    assert_eq!(rec.evs, want);
}

#[test]
fn uncaptured_bytes_past_a_body_end_are_a_head_error() {
    let (mut p, mut rec) = (requests(), Rec::default());
    // The body ends inside the uncaptured part and the next head follows there too.
    let r = b"PUT /p HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123";
    p.feed(1, r, r.len() as u64 + 100, &mut rec);
    p.feed(2, b"body bytes of the lost request", 30, &mut rec);
    p.feed(3, b"GET /q HTTP/1.1\r\n\r\n", 19, &mut rec);
    let want = vec![
        req("PUT", "/p", 1),
        end(1, 10),
        Ev::Err(ParseError::HeadNotCaptured, 1),
        req("GET", "/q", 3),
        end(3, 0),
    ];
    assert_eq!(rec.evs, want);
}

#[test]
fn leading_empty_lines_are_ignored() {
    let (mut p, mut rec) = (requests(), Rec::default());
    feed_all(
        &mut p,
        &mut rec,
        &[(1, b"\r\n"), (2, b"\r\nGET / HTTP/1.1\r\n\r\n")],
    );
    assert_eq!(rec.evs, vec![req("GET", "/", 2), end(2, 0)]);
}

#[test]
fn resyncing_parser_waits_for_a_message_start() {
    let mut p = Http1Parser::resyncing(MessageKind::Response, 1024);
    let mut rec = Rec::default();
    feed_all(
        &mut p,
        &mut rec,
        &[
            (1, b"tail of a body"),
            (2, b"HTTP/1.1 2"),
            (3, b"04 No Content\r\n\r\n"),
        ],
    );
    assert_eq!(rec.evs, vec![Ev::Resp(204, 2), end(3, 0)]);
    // A cut start-line is not trusted when the syscall was not captured whole.
    let mut p = Http1Parser::resyncing(MessageKind::Response, 1024);
    let mut rec = Rec::default();
    p.feed(1, b"HTTP/1.1 2", 400, &mut rec);
    assert!(p.is_resyncing() && rec.evs.is_empty());
}

#[test]
fn garbage_never_panics_and_stays_bounded() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet: &[u8] =
        b"GET HTTP/1.1 200\r\n:;0aF chunked Content-Length Transfer-Encoding\x00\xff";
    for kind in [MessageKind::Request, MessageKind::Response] {
        let mut p = Http1Parser::new(kind, 512);
        let mut rec = Rec::default();
        for ts in 0..5_000 {
            let len = (next() % 64) as usize;
            let chunk: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let total = len as u64 + if next() % 4 == 0 { next() % 10_000 } else { 0 };
            p.feed(ts, &chunk, total, &mut rec);
            assert!(p.buffered() <= 4096, "head buffer {}", p.buffered());
        }
        p.finish(&mut rec);
    }
}
