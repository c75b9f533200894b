//! `mlp-cli serve --model FILE`: a page to draw a digit on and watch the model read it, and
//! the JSON API the page uses (`api`), over the HTTP stack of `http`.

pub(crate) mod api;
pub(crate) mod http;
mod predictor;

use std::sync::Arc;

use anyhow::{Result, bail};

use crate::args::{ServeArgs, UsageError};
use crate::console::say;
use crate::session::{load_model, picture_reading};
use mlp_core::data::{IMAGE_SIDE, PictureStyle};
use predictor::Predictor;

pub fn run(args: &ServeArgs) -> Result<()> {
    args.device
        .gpu
        .check_for(args.device.backend)
        .map_err(anyhow::Error::msg)?;
    if !args.addr.ip().is_loopback() && !args.allow_remote {
        return Err(UsageError(format!(
            "--addr {} is reachable from other machines: give --allow-remote to serve them, \
             or a loopback address such as 127.0.0.1:8080",
            args.addr
        ))
        .into());
    }
    let model = load_model(&args.model)?;
    // The page's pictures are digits, made MNIST-like as `predict` makes a photo.
    let reading = picture_reading(&model, &args.model)?;
    if reading.style != PictureStyle::Digit || reading.side != IMAGE_SIDE {
        bail!(
            "{} was trained on pictures read {} at {side} x {side}; the page draws digits made \
             MNIST-like at 28 x 28: use `mlp-cli predict` for its pictures",
            args.model.display(),
            reading.style.name(),
            side = reading.side
        );
    }
    let model_name = args
        .model
        .file_name()
        .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
    let predictor = Predictor::new(model, args.device.clone())?;
    let listener = http::listen(args.addr)?;
    let addr = listener.local_addr()?;
    say!(
        "serving http://{addr}/ with the model {model_name} on the {} backend (Ctrl-C stops)",
        predictor.backend_name
    );
    if !addr.ip().is_loopback() {
        say!("note: {addr} is reachable from other machines, not only from this one");
    }
    let app = http::App {
        hosts: http::host_names(addr, &args.hosts),
        predictor,
        model_name,
        compute: Arc::new(tokio::sync::Semaphore::new(args.threads)),
    };
    http::serve(listener, Arc::new(app))
}
