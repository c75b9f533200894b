//! The values the options take, parsed and checked: each parser's error says what the value
//! must be, and clap prefixes it with the option's name.

use mlp_core::LayerSizes;
use mlp_core::metrics::MAX_CLASSES;
use mlp_core::options::UnknownChoice;
use mlp_wgpu::{DenseSchedule, KernelVariant};

/// An option whose value does not fit what it applies to, found after parsing (--layers
/// against the data's shape): it exits with code 2, as clap's own refusals do.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// How many training images `--validation` holds out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeldOut {
    Count(usize),
    /// A fraction of the training set, in (0, 1).
    Fraction(f64),
}

impl HeldOut {
    /// How many of `images` training images are held out; refused where none would be, or
    /// none would be left to train on.
    pub fn of(self, images: usize) -> Result<usize, String> {
        let count = match self {
            Self::Count(count) => count,
            Self::Fraction(fraction) => (fraction * images as f64).round() as usize,
        };
        if count == 0 {
            return Err(format!(
                "--validation {self} holds out no image of the {images} training images"
            ));
        }
        if count >= images {
            return Err(format!(
                "--validation {self} holds out {count} images, leaving none of the {images} \
                 training images to train on"
            ));
        }
        Ok(count)
    }
}

impl std::fmt::Display for HeldOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Count(count) => write!(f, "{count}"),
            Self::Fraction(fraction) => write!(f, "{fraction}"),
        }
    }
}

pub fn held_out(text: &str) -> Result<HeldOut, String> {
    if let Ok(count) = text.parse::<usize>() {
        return match count {
            0 => Err("must be at least 1 image (or a fraction such as 0.1)".into()),
            n => Ok(HeldOut::Count(n)),
        };
    }
    match text.parse::<f64>() {
        Ok(fraction) if fraction > 0.0 && fraction < 1.0 => Ok(HeldOut::Fraction(fraction)),
        Ok(_) => Err(format!(
            "{text} is neither a whole number of images nor a fraction in (0, 1)"
        )),
        Err(_) => Err(format!(
            "{text} is not a number of images or a fraction such as 0.1"
        )),
    }
}

pub fn accuracy_target(text: &str) -> Result<f64, String> {
    let target: f64 = text.parse().map_err(|e| format!("not a number ({e})"))?;
    if target > 0.0 && target <= 1.0 {
        Ok(target)
    } else {
        Err(format!(
            "{target} is not an accuracy in (0, 1], such as 0.98"
        ))
    }
}

pub fn positive_usize(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a whole number ({e})")),
    }
}

/// A class count: labels are bytes, so a label file can tell at most 256 classes apart.
pub fn class_count(text: &str) -> Result<usize, String> {
    match positive_usize(text)? {
        n if n > MAX_CLASSES => Err(format!(
            "more than the {MAX_CLASSES} classes a label file can hold (each label is one byte)"
        )),
        n => Ok(n),
    }
}

/// `serve --threads`: enough for a machine's cores, few enough that the pictures decoded at
/// once fit in memory.
pub fn serve_threads(text: &str) -> Result<usize, String> {
    match positive_usize(text)? {
        n if n > 64 => Err("at most 64: each may hold a picture of up to about 350 MB".into()),
        n => Ok(n),
    }
}

pub fn choice<T: std::str::FromStr<Err = UnknownChoice>>(text: &str) -> Result<T, String> {
    text.parse().map_err(|e: UnknownChoice| e.to_string())
}

/// What --kernel names: a whole variant, or a schedule run with the adapter's default reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelChoice {
    Variant(KernelVariant),
    Schedule(DenseSchedule),
}

impl KernelChoice {
    /// The variant chosen, where `default` is the adapter's.
    pub fn variant(self, default: KernelVariant) -> KernelVariant {
        match self {
            Self::Variant(variant) => variant,
            Self::Schedule(schedule) => KernelVariant {
                schedule,
                ..default
            },
        }
    }
}

pub fn kernel(text: &str) -> Result<KernelChoice, String> {
    if let Ok(schedule) = text.parse() {
        return Ok(KernelChoice::Schedule(schedule));
    }
    text.parse().map(KernelChoice::Variant).map_err(|_| {
        let variants: Vec<String> = KernelVariant::all().iter().map(|v| v.name()).collect();
        format!(
            "unknown kernel {text:?}: choose a schedule ({}), run with the adapter's default \
             reads, or a variant ({})",
            DenseSchedule::NAMES.join(", "),
            variants.join(", ")
        )
    })
}

/// `--matmul`, which --kernel replaced: always refused, naming the new option.
pub fn renamed_matmul(text: &str) -> Result<String, String> {
    Err(format!(
        "--matmul is now --kernel, which takes a schedule or a whole variant: give --kernel {text}"
    ))
}

/// A decay rate such as μ or β: at least 0 and below 1.
pub fn unit_interval(text: &str) -> Result<f32, String> {
    let value: f32 = text.parse().map_err(|e| format!("not a number ({e})"))?;
    if (0.0..1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{value} is not in [0, 1)"))
    }
}

pub fn dropout_rate(text: &str) -> Result<f32, String> {
    let rate: f32 = text.parse().map_err(|e| format!("not a number ({e})"))?;
    if rate > 0.0 && rate < 1.0 {
        Ok(rate)
    } else {
        Err(format!("{rate} is not a dropout probability in (0, 1)"))
    }
}

pub fn shift_pixels(text: &str) -> Result<u32, String> {
    match text.parse::<i64>() {
        Ok(pixels @ 1..=255) => Ok(pixels as u32),
        Ok(pixels) => Err(format!(
            "{pixels} is not a shift: give the largest move in pixels, 1 to 255"
        )),
        Err(e) => Err(format!("not a whole number of pixels ({e})")),
    }
}

pub fn weight_decay(text: &str) -> Result<f32, String> {
    let decay: f32 = text.parse().map_err(|e| format!("not a number ({e})"))?;
    if decay.is_finite() && (0.0..1.0).contains(&decay) {
        Ok(decay)
    } else {
        Err(format!("{decay} is not a weight decay in [0, 1)"))
    }
}

pub fn learning_rate(text: &str) -> Result<f32, String> {
    let lr: f32 = text.parse().map_err(|e| format!("not a number ({e})"))?;
    if lr.is_finite() && lr > 0.0 {
        Ok(lr)
    } else {
        Err(format!("{lr} is not a positive finite learning rate"))
    }
}

/// Layer sizes as given; whether they fit the data is checked once its shape is known.
pub fn layer_sizes(text: &str) -> Result<LayerSizes, String> {
    let parsed: LayerSizes = text.parse().map_err(|e| format!("{e}"))?;
    let sizes = parsed.as_slice().to_vec();
    let (input, classes) = (sizes.first().copied(), sizes.last().copied());
    LayerSizes::new(sizes, input.unwrap_or(0), classes.unwrap_or(0)).map_err(|e| e.to_string())
}
