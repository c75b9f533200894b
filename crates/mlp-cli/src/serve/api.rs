//! The routes: the page (its HTML, CSS and JavaScript, built into the binary), `GET
//! /api/model` and `POST /api/predict`. Every failure is a JSON error with a 4xx status that
//! names the problem; none ends the server.

use std::io::Read;
use std::path::Path;

use mlp_core::data::IMAGE_SIDE;
use mlp_core::digit::{DigitError, decode_digit_within};
use serde_json::{Value, json};

use super::predictor::{Prediction, Predictor};
use crate::predict::shares_meaning;

/// The largest request body: a phone photo of a digit is a few MB, a drawing a few kB.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;
/// The most pixels a picture may have: a 16-megapixel photo, about 350 MB while it is made
/// MNIST-like; a server reads several at once.
pub const MAX_PICTURE_PIXELS: u64 = 16_000_000;

const INDEX_HTML: &str = include_str!("page/index.html");
const PAGE_JS: &str = include_str!("page/page.js");
const PAGE_CSS: &str = include_str!("page/page.css");
/// The first layer's pictures, drawn by both this page and the watch page.
pub const TILES_JS: &str = include_str!("page/tiles.js");

/// What a route answers: a status, a content type and a body.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    fn text(content_type: &'static str, text: &str) -> Self {
        Self {
            status: 200,
            content_type,
            body: text.as_bytes().to_vec(),
        }
    }

    pub fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: value.to_string().into_bytes(),
        }
    }

    pub fn error(status: u16, message: &str) -> Self {
        Self::json(status, &json!({ "error": message }))
    }
}

/// What the client sent that a route reads.
pub struct Incoming<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub content_type: Option<&'a str>,
    /// The length the client announced, where it did.
    pub body_length: Option<usize>,
    pub body: &'a mut dyn Read,
}

/// The answer to one request.
pub fn route(predictor: &Predictor, model_name: &str, incoming: Incoming<'_>) -> Reply {
    let path = incoming.path.split('?').next().unwrap_or_default();
    match (incoming.method, path) {
        ("GET", "/") => Reply::text("text/html; charset=utf-8", INDEX_HTML),
        ("GET", "/page.js") => Reply::text("text/javascript; charset=utf-8", PAGE_JS),
        ("GET", "/page.css") => Reply::text("text/css; charset=utf-8", PAGE_CSS),
        ("GET", "/tiles.js") => Reply::text("text/javascript; charset=utf-8", TILES_JS),
        ("GET", "/api/model") => Reply::json(200, &model_json(predictor, model_name)),
        ("POST", "/api/predict") => predict(predictor, incoming),
        (_, "/" | "/page.js" | "/page.css" | "/tiles.js" | "/api/model") => {
            Reply::error(405, &format!("{path} answers GET only"))
        }
        (_, "/api/predict") => Reply::error(
            405,
            "/api/predict answers POST only: send a PNG or JPEG, or JSON {\"pixels\": [784 grey values]}",
        ),
        _ => Reply::error(404, &format!("nothing at {path}: try / or /api/model")),
    }
}

/// `GET /api/model`: what the model file says of itself.
fn model_json(predictor: &Predictor, model_name: &str) -> Value {
    let info = &predictor.model.info;
    json!({
        "file": model_name,
        "layers": predictor.model.parameters.sizes(),
        "activation": info.activation.to_string(),
        "output": info.output.to_string(),
        "scores": shares_meaning(info.output),
        "seed": info.seed,
        "epochs": info.epochs,
        "accuracy": info.accuracy,
        "options": options_without_paths(&info.options),
        "weights": crate::watch::first_layer_pictures(&predictor.model.parameters),
    })
}

/// The model's options with any path (`init_from`) cut to its file name: a page needs no
/// directories of the machine that trained it.
fn options_without_paths(
    options: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    let mut options = options.clone();
    if let Some(path) = options.get_mut("init_from") {
        let name = Path::new(path.as_str())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        *path = name.unwrap_or_default();
    }
    options
}

/// `POST /api/predict`: a picture (PNG or JPEG), made MNIST-like as `predict` does, or the
/// 28 x 28 grey values as JSON, taken as they are.
fn predict(predictor: &Predictor, incoming: Incoming<'_>) -> Reply {
    let body = match read_body(incoming.body_length, incoming.body) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let is_json = incoming
        .content_type
        .is_some_and(|t| t.trim().starts_with("application/json"));
    let pixels = if is_json {
        pixels_from_json(&body)
    } else {
        pixels_from_picture(&body)
    };
    let pixels = match pixels {
        Ok(pixels) => pixels,
        Err(reply) => return reply,
    };
    match predictor.predict(pixels) {
        Ok(prediction) => Reply::json(200, &prediction_json(&prediction)),
        Err(error) => Reply::error(500, &format!("the model could not run: {error:#}")),
    }
}

/// The body, at most [`MAX_BODY_BYTES`], and not empty.
fn read_body(announced: Option<usize>, body: &mut dyn Read) -> Result<Vec<u8>, Reply> {
    let too_large = || {
        Reply::error(
            413,
            &format!("the body is over {MAX_BODY_BYTES} bytes (5 MiB): send a smaller picture"),
        )
    };
    if announced.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    let limit = MAX_BODY_BYTES as u64 + 1;
    if let Err(error) = body.take(limit).read_to_end(&mut bytes) {
        return Err(Reply::error(400, &format!("cannot read the body: {error}")));
    }
    if bytes.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    if bytes.is_empty() {
        return Err(Reply::error(
            400,
            "the body is empty: send a PNG or JPEG, or JSON {\"pixels\": [784 grey values]}",
        ));
    }
    Ok(bytes)
}

pub fn pixels_from_picture(body: &[u8]) -> Result<Vec<u8>, Reply> {
    decode_digit_within(body, Path::new("the picture"), MAX_PICTURE_PIXELS).map_err(|error| {
        match error {
            DigitError::TooLarge { .. } => Reply::error(413, &error.to_string()),
            DigitError::Read { source, .. } => Reply::error(
                415,
                &format!(
                    "the body is not a PNG or JPEG picture ({source}); or send JSON \
                     {{\"pixels\": [784 grey values]}} with Content-Type: application/json"
                ),
            ),
            DigitError::Empty { .. } => Reply::error(422, &error.to_string()),
            // Only files are checked as inputs; a body never is.
            DigitError::Input(_) => Reply::error(500, &error.to_string()),
        }
    })
}

/// `{"pixels": [...]}`: 784 whole numbers from 0 (background) to 255 (full ink), row by row.
pub fn pixels_from_json(body: &[u8]) -> Result<Vec<u8>, Reply> {
    let wanted = IMAGE_SIDE * IMAGE_SIDE;
    let bad = |problem: String| {
        Reply::error(
            400,
            &format!("{problem}: send {{\"pixels\": [{wanted} whole numbers from 0 to 255]}}"),
        )
    };
    let value: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("the body is not JSON ({e})")))?;
    let Some(values) = value.get("pixels").and_then(Value::as_array) else {
        return Err(bad("no \"pixels\" array".into()));
    };
    if values.len() != wanted {
        return Err(bad(format!("{} pixels, not {wanted}", values.len())));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| bad(format!("pixel {i} is {v}")))
        })
        .collect()
}

fn prediction_json(prediction: &Prediction) -> Value {
    json!({
        "digit": prediction.digit,
        "scores": prediction.scores,
        "image": prediction.pixels,
        "hidden": prediction.hidden,
        "backend": prediction.backend,
        "reference_difference": prediction.reference_difference,
    })
}
