//! `mlp-cli train --watch [ADDR]`: a page that shows a training run as it goes. The run
//! publishes events (`Watch::publish_*`), and every viewer receives them as Server-Sent Events
//! (`GET /api/events`): the run's description, the training loss every [`BATCH_EVERY`]
//! batches, and at each epoch's end its figures, the validation confusion matrix and the first
//! layer's weights as one picture per unit. A viewer that connects late first receives what
//! happened so far. A drawn digit is read by the latest epoch's parameters
//! (`POST /api/predict`); Stop ends the run as Ctrl-C does, and Save now writes the latest
//! epoch's model where `--save` names, atomically.
//!
//! The run never waits for a viewer. Each viewer has a queue of [`QUEUE_EVENTS`] events, and a
//! viewer too slow to empty it is dropped (its page reconnects and receives the backlog again).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response};
use mlp_core::metrics::ConfusionMatrix;
use mlp_core::train::EpochMetrics;
use mlp_core::{Model, ModelInfo, Parameters};
use ndarray::Array2;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::predict::class_shares;
use crate::serve::api::{Reply, TILES_JS, pixels_from_json, pixels_from_picture};
use crate::serve::http::{self, ResponseBody, Site};

/// The training loss is published every this many batches.
pub const BATCH_EVERY: usize = 50;
/// Events a viewer may have waiting before it is dropped.
const QUEUE_EVENTS: usize = 256;

const WATCH_HTML: &str = include_str!("page/watch.html");
const WATCH_JS: &str = include_str!("page/watch.js");
const PAGE_CSS: &str = include_str!("../serve/page/page.css");

/// The run as the page sees it, shared by the training thread and the server.
pub struct Watch {
    state: Mutex<State>,
    stop: AtomicBool,
    hosts: Vec<String>,
    /// Where Save now writes, and the model's description: `--save`'s path and what it records.
    save: Option<(PathBuf, ModelInfo)>,
}

#[derive(Default)]
struct State {
    /// Every event so far, as SSE text; an epoch's pictures only in the latest epoch's event.
    backlog: Vec<String>,
    /// The latest epoch's event with its pictures, and the same without them.
    latest_epoch: Option<(String, String)>,
    viewers: Vec<mpsc::Sender<Bytes>>,
    /// The latest epoch's number and parameters.
    parameters: Option<(usize, Model)>,
}

impl Watch {
    /// Starts the page's server on `addr` (a loopback address) in a thread of its own, and
    /// returns the run's side of it and the address it listens on.
    pub fn start(
        addr: SocketAddr,
        save: Option<(PathBuf, ModelInfo)>,
    ) -> Result<(Arc<Self>, SocketAddr)> {
        check_address(addr)?;
        let listener = http::listen(addr).context("--watch")?;
        let bound = listener.local_addr()?;
        let watch = Arc::new(Self {
            state: Mutex::new(State::default()),
            stop: AtomicBool::new(false),
            hosts: http::host_names(bound, &[]),
            save,
        });
        let site: Arc<dyn Site> = watch.clone();
        std::thread::Builder::new()
            .name("watch".into())
            .spawn(move || {
                if let Err(error) = http::serve(listener, site) {
                    crate::console::note!("the watch page stopped: {error:#}");
                }
            })?;
        Ok((watch, bound))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a viewer pressed Stop.
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The run's description: what every viewer sees first.
    pub fn publish_run(&self, run: Value) {
        self.publish("run", &run);
    }

    /// The training loss so far in `epoch`, after `batch` of `batches` batches.
    pub fn publish_batch(&self, epoch: usize, batch: usize, batches: usize, loss: f64) {
        let event = json!({ "epoch": epoch, "batch": batch, "batches": batches, "loss": loss });
        self.publish("batch", &event);
    }

    /// An epoch's end: its figures, its confusion matrix, its first layer's weights, and its
    /// parameters for the page's drawn digits and Save now.
    pub fn publish_epoch(&self, m: &EpochMetrics, confusion: &ConfusionMatrix, model: Model) {
        let figures = json!({
            "epoch": m.epoch,
            "train_loss": m.train_loss,
            "val_loss": m.val_loss,
            "val_accuracy": m.val_accuracy,
            "seconds": m.seconds,
        });
        let mut whole = figures.clone();
        whole["confusion"] = json!(confusion.counts);
        whole["weights"] = first_layer_pictures(&model.parameters);
        let (light, heavy) = (sse("epoch", &figures), sse("epoch", &whole));
        let mut state = self.state();
        if let Some((_, light)) = state.latest_epoch.take() {
            state.backlog.push(light);
        }
        state.latest_epoch = Some((heavy.clone(), light));
        state.parameters = Some((m.epoch, model));
        send(&mut state, heavy);
    }

    /// The run has ended, and why. Where viewers are watching, waits a moment for the event
    /// to reach them: the server ends with the process.
    pub fn publish_end(&self, reason: &str) {
        self.publish("end", &json!({ "reason": reason }));
        if !self.state().viewers.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }

    /// Sends an event to every viewer, and keeps it for those who come later.
    fn publish(&self, kind: &str, data: &Value) {
        let event = sse(kind, data);
        let mut state = self.state();
        state.backlog.push(event.clone());
        send(&mut state, event);
    }

    /// A new viewer's stream: the backlog, then every event as it comes.
    fn subscribe(&self) -> Events {
        let (sender, receiver) = mpsc::channel(QUEUE_EVENTS);
        let mut state = self.state();
        let mut backlog = state.backlog.concat();
        if let Some((heavy, _)) = &state.latest_epoch {
            backlog.push_str(heavy);
        }
        // The backlog goes first, whole, ahead of anything queued later.
        let _ = sender.try_send(Bytes::from(backlog));
        state.viewers.push(sender);
        Events { receiver }
    }

    /// `POST /api/predict`: the drawn digit read by the latest epoch's parameters.
    fn predict(&self, pixels: &[u8]) -> Reply {
        let Some((epoch, model)) = self.state().parameters.clone() else {
            return Reply::error(
                409,
                "no epoch has ended yet: there is no model to read with",
            );
        };
        if model.parameters.sizes()[0] != pixels.len() {
            return Reply::error(422, "this run's network does not read 28 x 28 pictures");
        }
        let input = Array2::from_shape_fn((1, pixels.len()), |(_, i)| f32::from(pixels[i]) / 255.0);
        let outputs = model.forward(input.view());
        let output = outputs.last().expect("a network has layers");
        let digit = mlp_core::cpu::argmax_rows(output.view())[0];
        Reply::json(
            200,
            &json!({ "epoch": epoch, "digit": digit, "scores": class_shares(output.row(0)) }),
        )
    }

    /// `POST /api/save`: the latest epoch's model written where `--save` names.
    fn save_now(&self) -> Reply {
        let Some((path, info)) = &self.save else {
            return Reply::error(
                409,
                "this run was given no --save FILE: there is nowhere to save",
            );
        };
        let Some((epoch, model)) = self.state().parameters.clone() else {
            return Reply::error(409, "no epoch has ended yet: there is nothing to save");
        };
        let mut info = info.clone();
        info.epochs += epoch;
        let model = Model {
            parameters: model.parameters,
            info,
        };
        match model.save(path) {
            Ok(()) => {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                Reply::json(200, &json!({ "saved": name, "epoch": epoch }))
            }
            Err(error) => Reply::error(500, &format!("{error:#}")),
        }
    }

    async fn answer_request(self: Arc<Self>, request: Request<Incoming>) -> Response<ResponseBody> {
        let (parts, body) = request.into_parts();
        let page = |content_type: &'static str, text: &str| Reply {
            status: 200,
            content_type,
            body: text.as_bytes().to_vec(),
        };
        let reply = match (parts.method.as_str(), parts.uri.path()) {
            ("GET", "/") => page("text/html; charset=utf-8", WATCH_HTML),
            ("GET", "/watch.js") => page("text/javascript; charset=utf-8", WATCH_JS),
            ("GET", "/page.css") => page("text/css; charset=utf-8", PAGE_CSS),
            ("GET", "/tiles.js") => page("text/javascript; charset=utf-8", TILES_JS),
            ("GET", "/api/events") => return self.events(),
            ("POST", "/api/stop") => {
                self.stop.store(true, Ordering::Relaxed);
                Reply::json(200, &json!({ "stopping": true }))
            }
            ("POST", "/api/save") => {
                let watch = self.clone();
                tokio::task::spawn_blocking(move || watch.save_now())
                    .await
                    .unwrap_or_else(|_| Reply::error(500, "the save failed"))
            }
            ("POST", "/api/predict") => {
                let body = match http::read_body(body).await {
                    Ok(body) => body,
                    Err(reply) => return http::respond(reply, true),
                };
                let is_json = parts
                    .headers
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|t| t.trim().starts_with("application/json"));
                let watch = self.clone();
                tokio::task::spawn_blocking(move || {
                    let pixels = if is_json {
                        pixels_from_json(&body)
                    } else {
                        pixels_from_picture(&body)
                    };
                    pixels.map_or_else(|reply| reply, |pixels| watch.predict(&pixels))
                })
                .await
                .unwrap_or_else(|_| Reply::error(500, "the model could not run"))
            }
            (_, path) => Reply::error(404, &format!("nothing at {path}: try /")),
        };
        let unread = !http::body_is_empty(&parts.headers) && parts.uri.path() != "/api/predict";
        http::respond(reply, unread)
    }

    fn events(&self) -> Response<ResponseBody> {
        Response::builder()
            .header(CONTENT_TYPE, "text/event-stream")
            .header(CACHE_CONTROL, "no-store")
            .body(self.subscribe().boxed())
            .unwrap_or_else(|_| http::respond(Reply::error(500, "no events"), true))
    }
}

impl Site for Watch {
    fn hosts(&self) -> &[String] {
        &self.hosts
    }

    fn read_timeout(&self) -> Option<std::time::Duration> {
        None
    }

    fn answer(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>> {
        Box::pin(self.answer_request(request))
    }
}

/// Refuses a watch address that other machines reach: the page can stop the run and write
/// its model.
pub fn check_address(addr: SocketAddr) -> Result<()> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    Err(crate::args::UsageError(format!(
        "--watch {addr}: the watch page listens on loopback only (127.0.0.1 or [::1])"
    ))
    .into())
}

/// Queues `event` for every viewer; a viewer whose queue is full or closed is dropped.
fn send(state: &mut State, event: String) {
    let bytes = Bytes::from(event);
    state
        .viewers
        .retain(|viewer| viewer.try_send(bytes.clone()).is_ok());
}

/// One Server-Sent Event.
fn sse(kind: &str, data: &Value) -> String {
    format!("event: {kind}\ndata: {data}\n\n")
}

/// The first layer's weights, one picture per unit: unit j's column of W1 as the input
/// image's rows x cols, scaled to 0..255 between its own least and greatest weight, as hex.
pub fn first_layer_pictures(parameters: &Parameters) -> Value {
    let weights = &parameters.layers[0].weights;
    let (inputs, units) = weights.dim();
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = Vec::with_capacity(inputs * units * 2);
    for unit in weights.columns() {
        let (low, high) = unit
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &w| {
                (l.min(w), h.max(w))
            });
        let range = (high - low).max(f32::MIN_POSITIVE);
        for &w in unit {
            let level = ((w - low) / range * 255.0).round() as u8;
            hex.extend([
                DIGITS[usize::from(level >> 4)],
                DIGITS[usize::from(level & 15)],
            ]);
        }
    }
    let hex = String::from_utf8(hex).expect("hex digits are ASCII");
    json!({ "units": units, "pixels": inputs, "hex": hex })
}

/// A viewer's stream of events, as a response body that never ends by itself.
struct Events {
    receiver: mpsc::Receiver<Bytes>,
}

impl Body for Events {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.receiver
            .poll_recv(cx)
            .map(|event| event.map(|bytes| Ok(Frame::data(bytes))))
    }
}
