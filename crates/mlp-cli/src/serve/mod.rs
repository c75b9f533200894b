//! `mlp-cli serve --model FILE`: a page to draw a digit on and watch the model read it, and
//! the JSON API the page uses (`api`), served by a few threads from one listening socket.

mod api;
mod predictor;

use std::net::{SocketAddr, TcpListener};
use std::panic::{AssertUnwindSafe, catch_unwind};

use anyhow::{Result, anyhow};
use socket2::{Domain, Protocol, Socket, Type};
use tiny_http::{Header, Request, Response, Server};

use crate::args::ServeArgs;
use crate::console::{note, say};
use crate::session::{check_reads_pictures, load_model};
use api::{Incoming, Reply};
use predictor::Predictor;

pub fn run(args: &ServeArgs) -> Result<()> {
    args.device
        .gpu
        .check_for(args.device.backend)
        .map_err(anyhow::Error::msg)?;
    let model = load_model(&args.model)?;
    check_reads_pictures(&model, &args.model)?;
    let model_name = args.model.display().to_string();
    let predictor = Predictor::new(model, args.device.clone())?;
    let server = Server::from_listener(listen(args.addr)?, None)
        .map_err(|e| anyhow!("cannot listen on {}: {e}", args.addr))?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| anyhow!("the server listens on no IP address"))?;
    say!(
        "serving http://{addr}/ with the model {model_name} on the {} backend (Ctrl-C stops)",
        predictor.backend_name
    );
    if !addr.ip().is_loopback() {
        say!("note: {addr} is reachable from other machines, not only from this one");
    }
    std::thread::scope(|scope| {
        for _ in 0..args.threads {
            scope.spawn(|| {
                for request in server.incoming_requests() {
                    answer(&predictor, &model_name, request);
                }
            });
        }
    });
    Ok(())
}

/// A socket listening on `addr` whose connections send each write at once. tiny_http writes
/// an answer's headers and its body apart; with Nagle's algorithm on, the body then waits for
/// the client's delayed acknowledgement of the headers, 40 ms on Linux, on every request of a
/// kept-alive connection. Accepted connections inherit the option from the listener.
fn listen(addr: SocketAddr) -> Result<TcpListener> {
    let cannot = |e: std::io::Error| anyhow!("cannot listen on {addr}: {e}");
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(cannot)?;
    socket.set_reuse_address(true).map_err(cannot)?;
    socket.set_tcp_nodelay(true).map_err(cannot)?;
    socket.bind(&addr.into()).map_err(cannot)?;
    socket.listen(128).map_err(cannot)?;
    Ok(socket.into())
}

/// Answers one request. A handler that panics answers 500 and the thread goes on serving; a
/// client that left before its answer loses only that answer.
fn answer(predictor: &Predictor, model_name: &str, mut request: Request) {
    let method = request.method().as_str().to_string();
    let path = request.url().to_string();
    let content_type = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Content-Type"))
        .map(|h| h.value.as_str().to_string());
    let body_length = request.body_length();
    let incoming = Incoming {
        method: &method,
        path: &path,
        content_type: content_type.as_deref(),
        body_length,
        body: request.as_reader(),
    };
    let reply = catch_unwind(AssertUnwindSafe(|| {
        api::route(predictor, model_name, incoming)
    }))
    .unwrap_or_else(|_| Reply::error(500, "the server failed on this request; it goes on serving"));
    let header = Header::from_bytes("Content-Type", reply.content_type)
        .expect("the content types are valid header values");
    let response = Response::from_data(reply.body)
        .with_status_code(reply.status)
        .with_header(header);
    if let Err(error) = request.respond(response) {
        note!("{method} {path}: the answer could not be sent ({error})");
    }
}
