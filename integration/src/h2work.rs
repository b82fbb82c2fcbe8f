//! HTTP/2 workloads: an `h2` (the crate under hyper) cleartext server with a few routes, an
//! `h2` client helper, and a raw-socket client that splits a header block into CONTINUATION
//! frames.
//!
//! Server routes: `/` (200, 5-byte body), `/big` ([`BIG`] bytes, sent under flow control so
//! the client's WINDOW_UPDATEs pace it), `/status/NNN` (that status), `/reset` (the server
//! resets the stream with RST_STREAM CANCEL), anything else 404. Request bodies are read and
//! their flow-control capacity released.

use bytes::Bytes;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

/// Size of `/big`'s body (bytes).
pub const BIG: usize = 1 << 20;

async fn handle(req: http::Request<h2::RecvStream>, mut respond: h2::server::SendResponse<Bytes>) {
    let path = req.uri().path().to_string();
    let mut body = req.into_body();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let (status, payload): (u16, Bytes) = match path.as_str() {
        "/reset" => {
            respond.send_reset(h2::Reason::CANCEL);
            return;
        }
        "/" => (200, Bytes::from_static(b"hello")),
        "/big" => (200, Bytes::from(vec![b'x'; BIG])),
        p if p.starts_with("/status/") => {
            (p[8..].parse().unwrap_or(500), Bytes::from_static(b"status"))
        }
        _ => (404, Bytes::from_static(b"not found")),
    };
    let resp = http::Response::builder().status(status).body(()).unwrap();
    let Ok(mut send) = respond.send_response(resp, false) else {
        return;
    };
    // Send within the flow-control window, chunk by chunk.
    let mut rest = payload;
    while !rest.is_empty() {
        send.reserve_capacity(rest.len().min(64 * 1024));
        let cap = match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(Ok(c)) if c > 0 => c,
            Some(Ok(_)) => continue,
            _ => return,
        };
        let chunk = rest.split_to(cap.min(rest.len()));
        if send.send_data(chunk, rest.is_empty()).is_err() {
            return;
        }
    }
}

/// Starts the h2c (prior knowledge) server on 127.0.0.1:`port` in `rt`.
pub fn spawn_server(rt: &tokio::runtime::Runtime, port: u16) -> SocketAddr {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::Builder::new()
                    .max_concurrent_streams(256)
                    .handshake::<_, Bytes>(stream)
                    .await
                else {
                    return;
                };
                while let Some(Ok((req, respond))) = conn.accept().await {
                    tokio::spawn(handle(req, respond));
                }
            });
        }
    });
    addr
}

/// Connects an `h2` client (prior knowledge) to 127.0.0.1:`port`.
pub async fn connect(port: u16) -> h2::client::SendRequest<Bytes> {
    // An 8 KiB receive buffer (16 KiB once the kernel doubles it) keeps every read at or under
    // the tests' 16 KiB `capture_bytes`. A larger read that ends past an uncaptured frame
    // header loses HTTP/2 frame sync by design (README, "Frames"; counted in
    // `otel_ebpf_http2_frame_errors_total`), and whether the client's reads grow that large
    // depends on timing, which made the zero-frame-error check fail about 1 run in 8.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(8192).unwrap();
    let tcp = sock
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// GET `path` on `client`; returns (status, body length) or the stream error.
pub async fn get(
    client: &h2::client::SendRequest<Bytes>,
    port: u16,
    path: &str,
) -> Result<(u16, usize), h2::Error> {
    let mut c = client.clone().ready().await?;
    let req = http::Request::get(format!("http://127.0.0.1:{port}{path}"))
        .header("user-agent", "h2-test")
        .body(())
        .unwrap();
    let (resp, _) = c.send_request(req, true)?;
    let resp = resp.await?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut n = 0;
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        n += chunk.len();
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    Ok((status, n))
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HPACK literal without indexing, new name, no Huffman (RFC 7541 §6.2.2); lengths < 2^14.
fn literal(name: &str, value: &str) -> Vec<u8> {
    let mut out = vec![0x00];
    for s in [name, value] {
        let n = s.len();
        if n < 127 {
            out.push(n as u8);
        } else {
            out.extend([
                0x7f,
                ((n - 127) % 128) as u8 | 0x80,
                ((n - 127) / 128) as u8,
            ]);
        }
        out.extend_from_slice(s.as_bytes());
    }
    out
}

/// Sends `GET path` with `extra` bytes of header fields on a new connection as HEADERS +
/// CONTINUATION + CONTINUATION (one write each), reads until the response ends; returns the
/// response's first HEADERS payload length (> 0 when a response came).
pub fn continuation_request(port: u16, path: &str, extra: usize) -> usize {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(frame(0x4, 0, 0, &[]));
    s.write_all(&hello).unwrap();
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
    block.extend(literal(":path", path));
    block.extend(literal(":authority", &format!("127.0.0.1:{port}")));
    block.extend(literal("user-agent", "raw-continuation"));
    let mut i = 0;
    while block.len() < extra {
        block.extend(literal(&format!("x-large-{i}"), &"v".repeat(1500)));
        i += 1;
    }
    let third = block.len() / 3;
    let parts = [
        &block[..third],
        &block[third..2 * third],
        &block[2 * third..],
    ];
    s.write_all(&frame(0x1, 0x1, 1, parts[0])).unwrap(); // HEADERS, END_STREAM
    std::thread::sleep(Duration::from_millis(20));
    s.write_all(&frame(0x9, 0, 1, parts[1])).unwrap(); // CONTINUATION
    std::thread::sleep(Duration::from_millis(20));
    s.write_all(&frame(0x9, 0x4, 1, parts[2])).unwrap(); // CONTINUATION, END_HEADERS
    // Read frames until END_STREAM on stream 1.
    let mut buf = Vec::new();
    let mut first_headers = 0;
    loop {
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            let (kind, flags) = (buf[3], buf[4]);
            let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]);
            if kind == 0x4 && flags & 1 == 0 {
                s.write_all(&frame(0x4, 0x1, 0, &[])).unwrap(); // SETTINGS ACK
            }
            if kind == 0x1 && stream == 1 && first_headers == 0 {
                first_headers = len;
            }
            buf.drain(..9 + len);
            if stream == 1 && flags & 1 != 0 && (kind == 0x0 || kind == 0x1) {
                let mut goaway = 1u32.to_be_bytes().to_vec();
                goaway.extend(0u32.to_be_bytes());
                let _ = s.write_all(&frame(0x7, 0, 0, &goaway));
                return first_headers;
            }
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return first_headers,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
