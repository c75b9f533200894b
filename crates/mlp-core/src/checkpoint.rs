//! Checkpoints: everything a run needs to go on from the end of an epoch as if it had never
//! stopped, in one safetensors file, written atomically after each epoch.
//!
//! What a step depends on is the parameters, the optimiser's state (momentum's velocity,
//! Adam's moments and its step count) and, through the epoch number, the learning rate (the
//! schedule is a function of the epoch) and the training order (each epoch's shuffle is drawn
//! from the seed and the epoch alone, [`crate::train::epoch_order`]). With the run's options,
//! the metrics so far and, where the run chooses its model on validation, the best epoch's
//! parameters, that is the whole checkpoint.
//!
//! Tensors: the model's (`layer{k}.weights`, `layer{k}.bias`), the optimiser's
//! (`first.layer{k}.*`, `second.layer{k}.*`, as many as it keeps) and the best epoch's
//! (`best.layer{k}.*`). Metadata: the model's (see [`crate::model`]) with `format` set to
//! [`FORMAT`], and `epoch`, `steps`, `history`, `best_epoch` and `best_val_loss`.

use std::path::{Path, PathBuf};

use safetensors::SafeTensors;

use crate::atomic::write_atomically;
use crate::backend::OptimiserState;
use crate::model::{ModelError, layer_tensors, read_file, read_info, read_layers, serialize};
use crate::network::Parameters;
use crate::train::EpochMetrics;
use crate::{Model, ModelInfo};

/// The `format` metadata value of checkpoint files.
pub const FORMAT: &str = "mlp-core checkpoint 1";

/// A run after `epoch` complete epochs.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The parameters after the epoch, and the run's description (its options).
    pub model: Model,
    pub optimiser: OptimiserState,
    /// Epochs of this run completed, from 1.
    pub epoch: usize,
    /// Each completed epoch's metrics.
    pub history: Vec<EpochMetrics>,
    /// The epoch of lowest validation loss so far, that loss, and (where the run chooses its
    /// model on validation) its parameters.
    pub best: Option<(usize, f64, Option<Parameters>)>,
}

impl Checkpoint {
    /// The checkpoint as safetensors bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut tensors = layer_tensors("", &self.model.parameters);
        for (prefix, layers) in [
            ("first.", &self.optimiser.first),
            ("second.", &self.optimiser.second),
        ] {
            let state = Parameters {
                layers: layers.clone(),
            };
            tensors.extend(layer_tensors(prefix, &state));
        }
        let mut metadata = self.model.metadata();
        metadata.insert("format".into(), FORMAT.into());
        metadata.insert("epoch".into(), self.epoch.to_string());
        metadata.insert("steps".into(), self.optimiser.steps.to_string());
        metadata.insert("history".into(), history_text(&self.history));
        if let Some((epoch, loss, parameters)) = &self.best {
            metadata.insert("best_epoch".into(), epoch.to_string());
            metadata.insert("best_val_loss".into(), loss.to_string());
            if let Some(parameters) = parameters {
                tensors.extend(layer_tensors("best.", parameters));
            }
        }
        serialize(&tensors, metadata)
    }

    /// Writes the checkpoint to `path` atomically: an interrupted write leaves the previous
    /// checkpoint as it was.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        self.model.check_finite(path)?;
        Ok(write_atomically(path, &self.to_bytes())?)
    }

    pub fn load(path: &Path) -> Result<Self, ModelError> {
        Self::from_bytes(&read_file(path)?, path)
    }

    /// Parses checkpoint `bytes`; `path` names the file in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, ModelError> {
        let bad = |problem: String| ModelError::Format {
            path: path.to_path_buf(),
            problem,
        };
        let not_safetensors = |e| bad(format!("not safetensors, or truncated ({e})"));
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(not_safetensors)?;
        let tensors = SafeTensors::deserialize(bytes).map_err(not_safetensors)?;
        let mut metadata = header.metadata().clone().unwrap_or_default();
        match metadata.get("format") {
            Some(format) if format == FORMAT => {}
            other => {
                return Err(bad(format!(
                    "its format is {other:?}, expected \"{FORMAT}\" (a checkpoint written by \
                     --checkpoint)"
                )));
            }
        }
        metadata.insert("format".into(), crate::model::FORMAT.into());
        let (info, sizes) = read_info(&metadata, path)?;
        let layers = |prefix: &str| read_layers(&tensors, &sizes, prefix, path);
        let has = |prefix: &str| tensors.names().iter().any(|n| n.starts_with(prefix));
        let optional = |prefix: &str| -> Result<Vec<_>, ModelError> {
            if has(prefix) {
                layers(prefix)
            } else {
                Ok(Vec::new())
            }
        };
        let number = |key: &str| -> Result<u64, ModelError> {
            let text = metadata
                .get(key)
                .ok_or_else(|| bad(format!("no \"{key}\"")))?;
            text.parse()
                .map_err(|e| bad(format!("\"{key}\" = \"{text}\" is not a number ({e})")))
        };
        let best = match metadata.get("best_epoch") {
            None => None,
            Some(_) => {
                let loss = metadata.get("best_val_loss").and_then(|t| t.parse().ok());
                let loss = loss.ok_or_else(|| bad("a bad or missing \"best_val_loss\"".into()))?;
                let parameters = has("best.")
                    .then(|| layers("best.").map(|layers| Parameters { layers }))
                    .transpose()?;
                Some((number("best_epoch")? as usize, loss, parameters))
            }
        };
        let checkpoint = Self {
            model: Model {
                parameters: Parameters {
                    layers: layers("")?,
                },
                info: without_checkpoint_keys(info),
            },
            optimiser: OptimiserState {
                first: optional("first.")?,
                second: optional("second.")?,
                steps: number("steps")?,
            },
            epoch: number("epoch")? as usize,
            history: parse_history(metadata.get("history").map_or("", String::as_str))
                .ok_or_else(|| bad("a bad \"history\"".into()))?,
            best,
        };
        checkpoint.model.check_finite(path)?;
        checkpoint.check_consistent().map_err(bad)?;
        Ok(checkpoint)
    }

    /// The fields checked against each other, as the run that wrote them left them: a history
    /// of exactly `epoch` epochs in order with finite figures, a best epoch among them whose
    /// loss is that epoch's, and finite parameters and optimiser state (Adam's second moments,
    /// squares, never below zero).
    fn check_consistent(&self) -> Result<(), String> {
        if self.history.len() != self.epoch {
            return Err(format!(
                "its history has {} epochs, but it is after epoch {}",
                self.history.len(),
                self.epoch
            ));
        }
        for (i, m) in self.history.iter().enumerate() {
            if m.epoch != i + 1 {
                return Err(format!(
                    "its history's epoch {} is numbered {}",
                    i + 1,
                    m.epoch
                ));
            }
            let figures = [m.train_loss, m.val_loss, m.seconds];
            let accuracy = (0.0..=1.0).contains(&m.val_accuracy);
            if !accuracy || figures.iter().any(|v| !v.is_finite() || *v < 0.0) {
                return Err(format!(
                    "its history's epoch {} has figures out of range",
                    i + 1
                ));
            }
        }
        if let Some((epoch, loss, parameters)) = &self.best {
            let recorded = (1..=self.epoch)
                .contains(epoch)
                .then(|| self.history[epoch - 1].val_loss);
            if recorded != Some(*loss) {
                return Err(format!(
                    "\"best_epoch\" = {epoch} with \"best_val_loss\" = {loss} is not an epoch \
                     of its history with that validation loss"
                ));
            }
            if parameters.as_ref().is_some_and(|p| !p.is_finite()) {
                return Err("the best epoch's parameters hold a value that is not finite".into());
            }
        }
        let finite = |layers: &[crate::network::Layer], at_least: f32| {
            layers.iter().all(|l| {
                l.weights
                    .iter()
                    .chain(&l.bias)
                    .all(|v| v.is_finite() && *v >= at_least)
            })
        };
        if !finite(&self.optimiser.first, f32::NEG_INFINITY) {
            return Err("its optimiser state (first.*) holds a value that is not finite".into());
        }
        if !finite(&self.optimiser.second, 0.0) {
            return Err(
                "its optimiser state (second.*, squares) holds a value that is negative or not \
                 finite"
                    .into(),
            );
        }
        Ok(())
    }
}

/// The file a checkpoint directory holds.
pub fn file_in(dir: &Path) -> PathBuf {
    dir.join("checkpoint.safetensors")
}

/// The model's description without the keys only a checkpoint has.
fn without_checkpoint_keys(mut info: ModelInfo) -> ModelInfo {
    for key in ["epoch", "steps", "history", "best_epoch", "best_val_loss"] {
        info.options.remove(key);
    }
    info
}

/// Each epoch as "epoch,train_loss,val_loss,val_accuracy,seconds", separated by ";"; Rust
/// prints an f64 with the fewest digits that read back to the same bits.
fn history_text(history: &[EpochMetrics]) -> String {
    let epochs: Vec<String> = history
        .iter()
        .map(|m| {
            format!(
                "{},{},{},{},{}",
                m.epoch, m.train_loss, m.val_loss, m.val_accuracy, m.seconds
            )
        })
        .collect();
    epochs.join(";")
}

fn parse_history(text: &str) -> Option<Vec<EpochMetrics>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(';')
        .map(|epoch| {
            let fields: Vec<&str> = epoch.split(',').collect();
            let [epoch, train, val, accuracy, seconds] = fields[..] else {
                return None;
            };
            Some(EpochMetrics {
                epoch: epoch.parse().ok()?,
                train_loss: train.parse().ok()?,
                val_loss: val.parse().ok()?,
                val_accuracy: accuracy.parse().ok()?,
                seconds: seconds.parse().ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::options::Optimiser;

    fn metadata_of(bytes: &[u8]) -> HashMap<String, String> {
        let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
        header.metadata().clone().unwrap_or_default()
    }

    fn checkpoint() -> Checkpoint {
        let parameters = Parameters::seed_init(&"784,5,10".parse().unwrap(), 3);
        let adam = Optimiser::with_defaults(crate::OptimiserKind::Adam);
        let mut optimiser = OptimiserState::new(adam, &parameters);
        optimiser.steps = 1234;
        optimiser.first[0].weights[[3, 2]] = 0.25;
        optimiser.second[1].bias[4] = 1e-9;
        let mut info = ModelInfo::seed(3);
        info.options.insert("lr".into(), "0.001".into());
        Checkpoint {
            model: Model {
                parameters: parameters.clone(),
                info,
            },
            optimiser,
            epoch: 2,
            history: vec![
                EpochMetrics {
                    epoch: 1,
                    train_loss: 0.1 + 0.2,
                    val_loss: 1.0 / 3.0,
                    val_accuracy: 0.9123,
                    seconds: 0.07,
                },
                EpochMetrics {
                    epoch: 2,
                    train_loss: 0.05,
                    val_loss: 0.3,
                    val_accuracy: 0.95,
                    seconds: 0.071,
                },
            ],
            best: Some((2, 0.3, Some(parameters))),
        }
    }

    #[test]
    fn bytes_round_trip_exactly() {
        let checkpoint = checkpoint();
        let path = Path::new("c.safetensors");
        let back = Checkpoint::from_bytes(&checkpoint.to_bytes(), path).unwrap();
        assert_eq!(back, checkpoint);
        let plain = Checkpoint {
            best: None,
            history: Vec::new(),
            epoch: 0,
            ..checkpoint
        };
        assert_eq!(
            Checkpoint::from_bytes(&plain.to_bytes(), path).unwrap(),
            plain
        );
    }

    #[test]
    fn fields_that_disagree_are_refused_naming_the_file() {
        let path = Path::new("c.safetensors");
        let refused = |edit: &dyn Fn(&mut Checkpoint), reason: &str| {
            let mut checkpoint = checkpoint();
            edit(&mut checkpoint);
            let err = Checkpoint::from_bytes(&checkpoint.to_bytes(), path)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("c.safetensors") && err.contains(reason),
                "{err}"
            );
        };
        refused(
            &|c| c.epoch = 1,
            "history has 2 epochs, but it is after epoch 1",
        );
        refused(&|c| c.history[1].epoch = 7, "epoch 2 is numbered 7");
        refused(&|c| c.history[0].val_loss = f64::NAN, "out of range");
        refused(
            &|c| c.best.as_mut().unwrap().0 = usize::MAX,
            "is not an epoch",
        );
        refused(
            &|c| c.best.as_mut().unwrap().1 = f64::NAN,
            "is not an epoch",
        );
        refused(&|c| c.best.as_mut().unwrap().1 = 0.25, "is not an epoch");
        refused(
            &|c| c.optimiser.first[0].bias[0] = f32::INFINITY,
            "(first.*)",
        );
        refused(
            &|c| c.optimiser.second[0].bias[0] = -1.0,
            "negative or not finite",
        );
        refused(
            &|c| c.optimiser.second[1].weights[[0, 0]] = f32::NAN,
            "(second.*",
        );
    }

    #[test]
    fn a_model_file_or_a_truncated_checkpoint_is_an_error_naming_the_file() {
        let checkpoint = checkpoint();
        let path = Path::new("c.safetensors");
        let err = Checkpoint::from_bytes(&checkpoint.model.to_bytes(), path).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected \"mlp-core checkpoint 1\""),
            "{err}"
        );
        let bytes = checkpoint.to_bytes();
        for cut in (0..bytes.len()).step_by(211) {
            let err = Checkpoint::from_bytes(&bytes[..cut], path).unwrap_err();
            assert!(err.to_string().contains("c.safetensors"), "{err}");
        }
        assert_eq!(metadata_of(&bytes)["format"], FORMAT);
    }
}
