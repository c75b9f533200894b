//! Saved models: the parameters as safetensors, with what is needed to rebuild the network
//! and what the run that made it measured.
//!
//! The file is plain safetensors, readable from PyTorch (`safetensors.torch.load_file`) and
//! NumPy (`safetensors.numpy.load_file`). Layer k (counted from 1) is two little-endian f32
//! tensors: `layer{k}.weights` of shape (inputs, outputs), the Wk of `A(k) = f(A(k−1) Wk + bk)`
//! (PyTorch's `nn.Linear` keeps the transpose), and `layer{k}.bias` of shape (outputs). The
//! header's metadata holds strings: `format`, `layers` ("784,64,32,16,10"), `activation`,
//! `output`, `seed`, `epochs`, `accuracy`, and the training options of the run.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, ArrayView2};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::atomic::{OutputError, write_atomically};
use crate::input::{self, InputError};
use crate::network::{Layer, LayerSizes, Parameters};
use crate::options::{Activation, Output};

/// The `format` metadata value of the files this module writes.
pub const FORMAT: &str = "mlp-core model 1";

/// Everything that can be wrong with a model file; each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read the model file {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("cannot save the model")]
    Write(#[from] OutputError),
    #[error(
        "{} is not a model file that mlp-cli can load: {problem}. Train one with \
         `mlp-cli --save FILE`", path.display()
    )]
    Format { path: PathBuf, problem: String },
    #[error("{} has a tensor of the wrong shape: {problem}", path.display())]
    Shape { path: PathBuf, problem: String },
    #[error(
        "{} holds a weight that is not a finite number: {tensor}[{index}] = {value}; \
         the run that saved it diverged (try a smaller --lr)", path.display()
    )]
    NonFinite {
        path: PathBuf,
        tensor: String,
        index: usize,
        value: f32,
    },
}

/// What a model file says about itself besides its weights.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// The hidden layers' activation function (sigmoid for the seed network).
    pub activation: Activation,
    /// The output layer and its loss (sigmoid with squared error for the seed network).
    pub output: Output,
    /// The seed the initial weights were drawn from.
    pub seed: u64,
    /// Epochs trained, counting those of any model training started from.
    pub epochs: usize,
    /// Test-set accuracy (0..1) of these parameters, if the run measured it: the last epoch's
    /// validation accuracy where the test set validates (the seed's way), else the accuracy of
    /// the epoch chosen on held-out validation images.
    pub accuracy: Option<f64>,
    /// The other training options of the run, recorded as given ("lr" → "0.01").
    pub options: BTreeMap<String, String>,
}

impl ModelInfo {
    /// The seed network's description: sigmoid layers, sigmoid output with squared error.
    pub fn seed(seed: u64) -> Self {
        Self {
            activation: Activation::Sigmoid,
            output: Output::SigmoidMse,
            seed,
            epochs: 0,
            accuracy: None,
            options: BTreeMap::new(),
        }
    }
}

/// Parameters with their description: what `--save` writes and `--init`, `eval` and
/// `predict` read.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub parameters: Parameters,
    pub info: ModelInfo,
}

/// Keys of the metadata that [`ModelInfo`]'s own fields use.
const RESERVED: [&str; 7] = [
    "format",
    "layers",
    "activation",
    "output",
    "seed",
    "epochs",
    "accuracy",
];

fn weights_name(layer: usize) -> String {
    format!("layer{layer}.weights")
}

fn bias_name(layer: usize) -> String {
    format!("layer{layer}.bias")
}

fn f32_bytes(values: impl Iterator<Item = f32>) -> Vec<u8> {
    values.flat_map(f32::to_le_bytes).collect()
}

/// A tensor to serialise: its name, shape and little-endian bytes.
pub(crate) type NamedTensor = (String, Vec<usize>, Vec<u8>);

/// Each layer's weights and bias as tensors named `{prefix}layer{k}.weights` and `.bias`.
pub(crate) fn layer_tensors(prefix: &str, parameters: &Parameters) -> Vec<NamedTensor> {
    let mut tensors = Vec::new();
    for (k, layer) in parameters.layers.iter().enumerate() {
        let (inputs, outputs) = layer.weights.dim();
        tensors.push((
            format!("{prefix}{}", weights_name(k + 1)),
            vec![inputs, outputs],
            f32_bytes(layer.weights.iter().copied()),
        ));
        tensors.push((
            format!("{prefix}{}", bias_name(k + 1)),
            vec![outputs],
            f32_bytes(layer.bias.iter().copied()),
        ));
    }
    tensors
}

/// Safetensors bytes of f32 `tensors` with `metadata`.
pub(crate) fn serialize(tensors: &[NamedTensor], metadata: HashMap<String, String>) -> Vec<u8> {
    let views = tensors.iter().map(|(name, shape, bytes)| {
        let view = TensorView::new(Dtype::F32, shape.clone(), bytes)
            .expect("the byte count is the shape's product times 4");
        (name.clone(), view)
    });
    safetensors::serialize(views, Some(metadata))
        .expect("f32 tensors with distinct names always serialise")
}

impl Model {
    /// A1 .. AL of `input` (images, inputs) by the reference functions
    /// ([`crate::cpu::forward`]), with the model's activation and output.
    pub fn forward(&self, input: ArrayView2<f32>) -> Vec<Array2<f32>> {
        let layers = &self.parameters.layers;
        let weights: Vec<_> = layers.iter().map(|l| l.weights.view()).collect();
        let biases: Vec<_> = layers.iter().map(|l| l.bias.view()).collect();
        let info = &self.info;
        crate::cpu::forward(&weights, &biases, input, info.activation, info.output)
    }

    /// The model as safetensors bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serialize(&layer_tensors("", &self.parameters), self.metadata())
    }

    /// The header's metadata: the reserved keys and the run's options.
    pub(crate) fn metadata(&self) -> HashMap<String, String> {
        let info = &self.info;
        let mut metadata: HashMap<String, String> = info
            .options
            .iter()
            .filter(|(key, _)| !RESERVED.contains(&key.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let sizes = self.parameters.sizes();
        let layers = sizes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        for (key, value) in [
            ("format", FORMAT.to_string()),
            ("layers", layers),
            ("activation", info.activation.to_string()),
            ("output", info.output.to_string()),
            ("seed", info.seed.to_string()),
            ("epochs", info.epochs.to_string()),
        ] {
            metadata.insert(key.into(), value);
        }
        if let Some(accuracy) = info.accuracy {
            metadata.insert("accuracy".into(), accuracy.to_string());
        }
        metadata
    }

    /// Writes the model to `path` atomically ([`crate::atomic`]): a failed or interrupted
    /// write never leaves a half-written model where a good one was.
    /// A model with a weight that is not finite is refused: no loader would take it.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        self.check_finite(path)?;
        Ok(write_atomically(path, &self.to_bytes())?)
    }

    /// The first weight or bias that is not a finite number, as an error naming `path`.
    pub fn check_finite(&self, path: &Path) -> Result<(), ModelError> {
        for (k, layer) in self.parameters.layers.iter().enumerate() {
            for (name, values) in [
                (weights_name(k + 1), layer.weights.as_slice_memory_order()),
                (bias_name(k + 1), layer.bias.as_slice_memory_order()),
            ] {
                let values = values.expect("parameters are contiguous");
                if let Some((index, &value)) =
                    values.iter().enumerate().find(|(_, v)| !v.is_finite())
                {
                    return Err(ModelError::NonFinite {
                        path: path.to_path_buf(),
                        tensor: name,
                        index,
                        value,
                    });
                }
            }
        }
        Ok(())
    }

    /// Reads and checks the model at `path`.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        Self::from_bytes(&read_file(path)?, path)
    }

    /// Parses safetensors `bytes`; `path` names the file in errors. Checks the format, that
    /// every layer's tensors are f32 of the shapes the layer sizes give, and that every value
    /// is finite.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, ModelError> {
        let not_safetensors =
            |e| format_error(path, format!("not safetensors, or truncated ({e})"));
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(not_safetensors)?;
        let tensors = SafeTensors::deserialize(bytes).map_err(not_safetensors)?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let (info, sizes) = read_info(&metadata, path)?;
        let expected = 2 * sizes.depth();
        if tensors.len() != expected {
            return Err(ModelError::Shape {
                path: path.to_path_buf(),
                problem: format!(
                    "layers {} need {expected} tensors, the file has {} ({})",
                    sizes
                        .as_slice()
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                    tensors.len(),
                    tensors.names().join(", ")
                ),
            });
        }
        let model = Self {
            parameters: Parameters {
                layers: read_layers(&tensors, &sizes, "", path)?,
            },
            info,
        };
        model.check_finite(path)?;
        Ok(model)
    }
}

/// The bytes of the file at `path`, a model's or a checkpoint's.
/// Read as the input rule says ([`crate::input`]): a regular file, and no more bytes than its
/// safetensors header says the file holds (a file whose first bytes are no such header is read
/// only as far as [`HEADERLESS_LIMIT`], enough for the parser to say what is wrong).
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, ModelError> {
    let read_error = |source| ModelError::Read {
        path: path.to_path_buf(),
        source,
    };
    let (mut file, size) = input::open_regular(path).map_err(|e| match e {
        InputError::Io { source, .. } => read_error(source),
        refused => ModelError::Input(refused),
    })?;
    let limit = promised_size(&mut file).map_err(read_error)?;
    let limit = limit.unwrap_or(HEADERLESS_LIMIT.min(size));
    if size > limit {
        return Err(format_error(
            path,
            format!("it is {size} bytes, but its header describes {limit}"),
        ));
    }
    file.seek(SeekFrom::Start(0)).map_err(read_error)?;
    // What the header promised is read only as far as the file goes: never allocated ahead.
    let mut bytes = Vec::with_capacity(limit.min(size) as usize);
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    Ok(bytes)
}

/// How much of a file that is not safetensors is read: its first bytes tell the parser so.
const HEADERLESS_LIMIT: u64 = 1 << 16;

/// The largest header safetensors itself accepts.
const MAX_HEADER: u64 = 100_000_000;

/// The size a safetensors file's header says the file has: the 8-byte length, the header and
/// the furthest tensor's end. `None` where the first bytes are no such header.
fn promised_size(file: &mut fs::File) -> std::io::Result<Option<u64>> {
    let mut length = [0u8; 8];
    if file.read_exact(&mut length).is_err() {
        return Ok(None);
    }
    let header_len = u64::from_le_bytes(length);
    if header_len > MAX_HEADER {
        return Ok(None);
    }
    let mut header = Vec::new();
    file.take(header_len).read_to_end(&mut header)?;
    let Ok(serde_json::Value::Object(entries)) = serde_json::from_slice(&header) else {
        return Ok(None);
    };
    let data_end = entries
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .filter_map(|(_, tensor)| tensor["data_offsets"][1].as_u64())
        .max()
        .unwrap_or(0);
    Ok(Some(8 + header_len + data_end))
}

fn format_error(path: &Path, problem: String) -> ModelError {
    ModelError::Format {
        path: path.to_path_buf(),
        problem,
    }
}

/// What the header's metadata says of the model, and its layer sizes.
pub(crate) fn read_info(
    metadata: &HashMap<String, String>,
    path: &Path,
) -> Result<(ModelInfo, LayerSizes), ModelError> {
    let format = |problem: String| format_error(path, problem);
    let field = |key: &str| {
        metadata
            .get(key)
            .ok_or_else(|| format(format!("its metadata has no \"{key}\"")))
    };
    let found_format = field("format")?;
    if found_format != FORMAT {
        return Err(format(format!(
            "its format is \"{found_format}\", expected \"{FORMAT}\""
        )));
    }
    let layers_text = field("layers")?;
    let sizes: LayerSizes = layers_text
        .parse()
        .map_err(|e| format(format!("bad \"layers\": {e}")))?;
    if sizes.as_slice().len() < 2 || sizes.as_slice().contains(&0) {
        return Err(format(format!(
            "\"layers\" = \"{layers_text}\" needs at least two non-empty layers"
        )));
    }
    let number = |key: &str| -> Result<u64, ModelError> {
        let text = field(key)?;
        text.parse()
            .map_err(|e| format(format!("\"{key}\" = \"{text}\" is not a number ({e})")))
    };
    let accuracy = match metadata.get("accuracy") {
        None => None,
        Some(text) => Some(
            text.parse::<f64>()
                .map_err(|e| format(format!("\"accuracy\" = \"{text}\" is not a number ({e})")))?,
        ),
    };
    let info = ModelInfo {
        activation: field("activation")?
            .parse()
            .map_err(|e| format(format!("{e}")))?,
        output: field("output")?
            .parse()
            .map_err(|e| format(format!("{e}")))?,
        seed: number("seed")?,
        epochs: number("epochs")? as usize,
        accuracy,
        options: metadata
            .iter()
            .filter(|(key, _)| !RESERVED.contains(&key.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    Ok((info, sizes))
}

/// Each layer's weights and bias from the tensors `{prefix}layer{k}.weights` and `.bias` of
/// `tensors`, which must be f32 of the shapes that layer sizes `sizes` call for.
pub(crate) fn read_layers(
    tensors: &SafeTensors,
    sizes: &LayerSizes,
    prefix: &str,
    path: &Path,
) -> Result<Vec<Layer>, ModelError> {
    let shape = |problem: String| ModelError::Shape {
        path: path.to_path_buf(),
        problem,
    };
    let layers_text = sizes
        .as_slice()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let read = |name: &str, dims: &[usize]| -> Result<Vec<f32>, ModelError> {
        let view = tensors
            .tensor(name)
            .map_err(|_| shape(format!("no tensor \"{name}\" for layers {layers_text}")))?;
        if view.dtype() != Dtype::F32 {
            return Err(shape(format!(
                "\"{name}\" is {:?}, expected F32",
                view.dtype()
            )));
        }
        if view.shape() != dims {
            return Err(shape(format!(
                "\"{name}\" is {:?}, expected {dims:?} for layers {layers_text}",
                view.shape()
            )));
        }
        Ok(view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    };
    sizes
        .shapes()
        .enumerate()
        .map(|(k, (inputs, outputs))| {
            let weights = read(
                &format!("{prefix}{}", weights_name(k + 1)),
                &[inputs, outputs],
            )?;
            let bias = read(&format!("{prefix}{}", bias_name(k + 1)), &[outputs])?;
            Ok(Layer {
                weights: Array2::from_shape_vec((inputs, outputs), weights)
                    .expect("the shape was checked"),
                bias: Array1::from(bias),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        let mut info = ModelInfo::seed(7);
        info.epochs = 3;
        info.accuracy = Some(0.9);
        info.options.insert("lr".into(), "0.01".into());
        Model {
            parameters: Parameters::seed_init(&"784,5,10".parse().unwrap(), 7),
            info,
        }
    }

    #[test]
    fn bytes_round_trip_exactly() {
        let model = model();
        let back = Model::from_bytes(&model.to_bytes(), Path::new("m.safetensors")).unwrap();
        assert_eq!(back, model);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = model().to_bytes();
        for cut in (0..bytes.len()).step_by(97) {
            let err = Model::from_bytes(&bytes[..cut], Path::new("cut.safetensors")).unwrap_err();
            assert!(err.to_string().contains("cut.safetensors"), "{err}");
        }
    }
}
