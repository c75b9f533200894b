//! The HTTP stack of `serve`: hyper's HTTP/1.1 server on a tokio runtime, with a cap or a
//! timeout on everything a client can make it wait for or hold.
//!
//! hyper directly rather than axum: the routes are five fixed paths that `api::route` already
//! matches, and what this server must control is the connection itself (the header buffer, the
//! header timeout, the socket's read and write timeouts, the accept loop), which hyper's
//! `http1::Builder` exposes and `axum::serve` hides. axum would add a router that goes unused.
//!
//! | what a client could hold | the limit |
//! | --- | --- |
//! | the request line and headers | [`MAX_HEADER_BYTES`], within [`HEADER_TIMEOUT`]; past it 431 |
//! | a body | [`api::MAX_BODY_BYTES`], read within [`BODY_TIMEOUT`]; past either the answer (413, 408) closes the connection, and what is left is never read |
//! | a socket that sends or reads nothing | [`IO_TIMEOUT`] for each read and each write; then the connection is closed |
//! | connections | [`MAX_CONNECTIONS`] at once; one more is closed at once |
//! | work | decoding and the forward pass run off the async threads, `--threads` at a time |
//!
//! A failed accept (out of file descriptors, say) is logged and retried after
//! [`ACCEPT_BACKOFF`]; it never ends the server.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;

use super::api::{self, Incoming as ApiRequest, MAX_BODY_BYTES, Reply};
use super::predictor::Predictor;
use crate::console::note;

/// The most bytes of request line and headers: a browser sends one or two KiB.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Time to send the request line and headers, from the first byte.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Time to send a whole body: 5 MiB in 10 s is 4 Mbit/s.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a read or a write of the socket may wait, idle keep-alive connections included.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once; each costs a task and two buffers of at most 16 KiB.
pub const MAX_CONNECTIONS: usize = 512;
/// The wait after a failed accept before the next one.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A response body: whole, or a stream of events.
pub type ResponseBody = BoxBody<Bytes, Infallible>;

/// What a server answers: its names, and a response to each request.
pub trait Site: Send + Sync + 'static {
    /// The host names a request may give in its Host header.
    fn hosts(&self) -> &[String];

    /// How long a read of the socket may wait. A page that streams events sends nothing
    /// back for as long as it watches, and hyper reads meanwhile to notice a close: such a
    /// site has none, and relies on the header and body timeouts alone.
    fn read_timeout(&self) -> Option<Duration> {
        Some(IO_TIMEOUT)
    }

    /// The answer to `request`, whose Host header has been checked.
    fn answer(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>>;
}

/// What `serve`'s requests are answered from: a saved model.
pub struct App {
    pub predictor: Predictor,
    /// The model's file name, without its directories.
    pub model_name: String,
    /// The host names a request may give in its Host header.
    pub hosts: Vec<String>,
    /// Requests computed at once (`--threads`).
    pub compute: Arc<Semaphore>,
}

impl Site for App {
    fn hosts(&self) -> &[String] {
        &self.hosts
    }

    fn answer(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>> {
        Box::pin(answer(self, request))
    }
}

/// A socket listening on `addr`, with a backlog for bursts of connections.
pub fn listen(addr: SocketAddr) -> Result<std::net::TcpListener> {
    let cannot = |e: std::io::Error| anyhow!("cannot listen on {addr}: {e}");
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(cannot)?;
    socket.set_reuse_address(true).map_err(cannot)?;
    socket.bind(&addr.into()).map_err(cannot)?;
    socket.listen(1024).map_err(cannot)?;
    Ok(socket.into())
}

/// Serves `listener` until the process ends.
pub fn serve(listener: std::net::TcpListener, site: Arc<dyn Site>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    listener.set_nonblocking(true)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        accept_loop(listener, site).await
    })
}

async fn accept_loop(listener: tokio::net::TcpListener, site: Arc<dyn Site>) -> Result<()> {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut failing = false;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                if !failing {
                    note!("cannot accept a connection ({error}); retrying every 100 ms");
                }
                failing = true;
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if failing {
            note!("accepting connections again");
            failing = false;
        }
        // Past the bound the connection is closed at once: the client sees a reset, and
        // nothing of it is held.
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            continue;
        };
        let site = site.clone();
        tokio::spawn(async move {
            serve_connection(stream, site).await;
            drop(permit);
        });
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, site: Arc<dyn Site>) {
    // Answers are written whole at once; without this a kept-alive client's next answer
    // could wait for its delayed acknowledgement.
    let _ = stream.set_nodelay(true);
    let mut timed = TimeoutStream::new(stream);
    timed.set_read_timeout(site.read_timeout());
    timed.set_write_timeout(Some(IO_TIMEOUT));
    let io = TokioIo::new(Box::pin(timed));
    let service = service_fn(move |request: Request<Incoming>| {
        let site = site.clone();
        async move {
            let response = match check_host(site.hosts(), &request) {
                Ok(()) => site.answer(request).await,
                Err(reply) => respond(reply, true),
            };
            Ok::<_, Infallible>(response)
        }
    });
    // An error here is the client's (a timeout, a reset, a malformed request that hyper has
    // answered itself): the connection ends and nothing else does.
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .serve_connection(io, service)
        .await;
}

/// The answer to one request, and whether the connection closes after it.
async fn answer(app: Arc<App>, request: Request<Incoming>) -> Response<ResponseBody> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let method = parts.method.as_str().to_string();
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let reads_body = method == "POST" && path == "/api/predict";
    let bytes = if reads_body {
        match read_body(body).await {
            Ok(bytes) => bytes,
            Err(reply) => return respond(reply, true),
        }
    } else {
        Bytes::new()
    };
    // A body that no route reads is not read: the connection ends after the answer instead.
    let unread_body = !reads_body && !body_is_empty(&parts.headers);
    let reply = run_route(app, method, path, content_type, bytes).await;
    respond(reply, unread_body)
}

/// Whether a request's headers announce no body.
pub fn body_is_empty(headers: &hyper::HeaderMap) -> bool {
    let chunked = headers.contains_key(hyper::header::TRANSFER_ENCODING);
    let length = headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    !chunked && length.is_none_or(|n| n == 0)
}

/// The body, refused past [`MAX_BODY_BYTES`] (by its announced length before a byte is read,
/// else as it arrives) or past [`BODY_TIMEOUT`].
pub async fn read_body(body: Incoming) -> Result<Bytes, Reply> {
    let too_large = || {
        Reply::error(
            413,
            &format!("the body is over {MAX_BODY_BYTES} bytes (5 MiB): send a smaller picture"),
        )
    };
    if body.size_hint().lower() > MAX_BODY_BYTES as u64 {
        return Err(too_large());
    }
    let collected =
        tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY_BYTES).collect());
    match collected.await {
        Err(_) => Err(Reply::error(
            408,
            &format!(
                "the body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        )),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(error)) => Err(Reply::error(400, &format!("cannot read the body: {error}"))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// `api::route` on a blocking thread, holding one of the `--threads` permits: decoding a
/// picture and the forward pass never stall the threads that read and write sockets, and at
/// most `--threads` pictures are decoded at once.
async fn run_route(
    app: Arc<App>,
    method: String,
    path: String,
    content_type: Option<String>,
    body: Bytes,
) -> Reply {
    let failed = || Reply::error(500, "the server failed on this request; it goes on serving");
    let Ok(permit) = app.compute.clone().acquire_owned().await else {
        return failed();
    };
    let work = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        catch_unwind(AssertUnwindSafe(|| {
            let mut reader: &[u8] = &body;
            api::route(
                &app.predictor,
                &app.model_name,
                ApiRequest {
                    method: &method,
                    path: &path,
                    content_type: content_type.as_deref(),
                    body_length: Some(body.len()),
                    body: &mut reader,
                },
            )
        }))
    });
    match work.await {
        Ok(Ok(reply)) => reply,
        _ => failed(),
    }
}

/// A reply as hyper's response; `close` ends the connection after it.
pub fn respond(reply: Reply, close: bool) -> Response<ResponseBody> {
    let mut response = Response::builder()
        .status(reply.status)
        .header(CONTENT_TYPE, reply.content_type);
    if close {
        response = response.header(CONNECTION, "close");
    }
    let body = |bytes: Bytes| Full::new(bytes).boxed();
    response
        .body(body(Bytes::from(reply.body)))
        .unwrap_or_else(|_| Response::new(body(Bytes::from_static(b"{}"))))
}

/// Refuses a request whose Host header names another server: a page on another site that
/// resolves its own name to this machine (DNS rebinding) sends its name, not ours.
fn check_host(hosts: &[String], request: &Request<Incoming>) -> Result<(), Reply> {
    let Some(host) = request.headers().get(HOST).and_then(|v| v.to_str().ok()) else {
        return Err(Reply::error(400, "the request has no Host header"));
    };
    let name = host_name(host).to_ascii_lowercase();
    if hosts.contains(&name) {
        Ok(())
    } else {
        Err(Reply::error(
            421,
            &format!(
                "this server answers to {}, not to {host:?}; --host NAME adds a name",
                hosts.join(", ")
            ),
        ))
    }
}

/// The name of a Host header's value, without its port: `[::1]:8080` is `[::1]`.
fn host_name(host: &str) -> &str {
    match host.rfind(':') {
        Some(colon) if !host[colon..].contains(']') => &host[..colon],
        _ => host,
    }
}

/// The names a server bound to `addr` answers to: loopback's, the address itself, and
/// `extra` (`--host`).
pub fn host_names(addr: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
        .into_iter()
        .map(String::from)
        .collect();
    let ip = match addr.ip() {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    if !addr.ip().is_unspecified() && !names.contains(&ip) {
        names.push(ip);
    }
    names.extend(extra.iter().map(|h| h.to_ascii_lowercase()));
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_header_s_port_is_dropped_and_brackets_kept() {
        assert_eq!(host_name("localhost:8080"), "localhost");
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("[::1]"), "[::1]");
        assert_eq!(host_name("example.com"), "example.com");
    }

    #[test]
    fn the_names_are_loopback_s_the_address_and_those_given() {
        let any: SocketAddr = "0.0.0.0:80".parse().unwrap();
        let names = host_names(any, &["Pi.Local".into()]);
        assert_eq!(names, ["localhost", "127.0.0.1", "[::1]", "pi.local"]);
        let lan: SocketAddr = "192.0.2.7:80".parse().unwrap();
        assert!(host_names(lan, &[]).contains(&"192.0.2.7".to_string()));
    }
}
