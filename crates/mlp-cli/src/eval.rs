//! `mlp-cli eval --model FILE`: a saved model's loss, accuracy and confusion matrix on the
//! MNIST test set.

use anyhow::Result;
use mlp_core::metrics::ConfusionMatrix;

use crate::args::EvalArgs;
use crate::console::say;
use crate::data;
use crate::session::{check_model_fits, data_as_trained, inference_backend, load_model};

pub fn run(args: &EvalArgs) -> Result<()> {
    let model = load_model(&args.model)?;
    let data_args = data_as_trained(&args.data, &model, &args.model)?;
    let test = data::load(&data_args)?.test;
    check_model_fits(&model, &args.model, &test, data_args.format())?;
    let mut backend = inference_backend(args.device.backend, &args.device.gpu, &model, &test)?;
    let evaluation = backend.evaluate()?;
    let info = &model.info;
    say!(
        "model: {}  {} layers {}  {} output  trained {} epochs (seed {})",
        args.model.display(),
        info.activation,
        model.parameters.layer_sizes(),
        info.output,
        info.epochs,
        info.seed
    );
    say!("backend: {}", backend.name());
    say!(
        "test set: {} images  loss {:.5}  accuracy {:.2}% ({} correct)",
        evaluation.predictions.len(),
        evaluation.loss(),
        100.0 * evaluation.accuracy(),
        evaluation.correct
    );
    let confusion = ConfusionMatrix::new(evaluation.classes, &test.labels, &evaluation.predictions);
    say!("confusion matrix (rows: true digit, columns: prediction):\n{confusion}");
    Ok(())
}
