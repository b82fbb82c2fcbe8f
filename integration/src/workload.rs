//! Workloads the tests drive: a hyper HTTP/1.1 server with a few routes.
//!
//! Routes: `/` (200, 5-byte body), `/chunked` (200, chunked transfer coding, 4 chunks),
//! `/big` (200, 1 MiB body), `/upload` (POST: reads the body, answers its length),
//! `/status/NNN` (that status), `/never` (never answers).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use std::convert::Infallible;
use std::net::SocketAddr;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// Size of `/big`'s body (bytes).
pub const BIG: usize = 1 << 20;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

async fn handle(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    Ok(match path.as_str() {
        "/" => Response::new(full("hello")),
        "/big" => Response::new(full(vec![b'x'; BIG])),
        "/upload" => {
            let n = req.into_body().collect().await.map(|c| c.to_bytes().len()).unwrap_or(0);
            Response::new(full(n.to_string()))
        }
        "/chunked" => {
            let chunks: Vec<Result<Frame<Bytes>, Infallible>> =
                ["one,", "two,", "three,", "four"].iter().map(|c| Ok(Frame::data(Bytes::from(*c)))).collect();
            Response::new(StreamBody::new(futures_iter(chunks)).boxed())
        }
        "/never" => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        p if p.starts_with("/status/") => {
            let code: u16 = p[8..].parse().unwrap_or(500);
            let mut r = Response::new(full("status"));
            *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
            r
        }
        _ => {
            let mut r = Response::new(full("not found"));
            *r.status_mut() = hyper::StatusCode::NOT_FOUND;
            r
        }
    })
}

/// A stream that yields each item after a yield point, so hyper writes each as its own chunk.
fn futures_iter(
    items: Vec<Result<Frame<Bytes>, Infallible>>,
) -> impl tokio_stream::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + Sync + 'static {
    tokio_stream::iter(items)
}

/// Starts the server on 127.0.0.1:`port` in the given runtime; returns its address.
pub fn spawn_server(rt: &tokio::runtime::Runtime, port: u16) -> SocketAddr {
    let listener = rt.block_on(tokio::net::TcpListener::bind(("127.0.0.1", port))).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .pipeline_flush(true)
                    .serve_connection(io, hyper::service::service_fn(handle))
                    .await;
            });
        }
    });
    addr
}
