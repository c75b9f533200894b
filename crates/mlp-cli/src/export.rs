//! `mlp-cli export --model FILE --onnx FILE`: a saved model as ONNX (`mlp_core::onnx`).

use anyhow::{Context, Result};

use crate::args::ExportArgs;
use crate::console::say;
use crate::session::load_model;
use crate::train::check_distinct;

pub fn run(args: &ExportArgs) -> Result<()> {
    let model = load_model(&args.model)?;
    check_distinct(
        &[("--onnx".to_string(), args.onnx.clone())],
        &[("--model".to_string(), args.model.clone())],
    )?;
    model
        .save_onnx(&args.onnx)
        .with_context(|| format!("cannot export to {}", args.onnx.display()))?;
    let sizes = model.parameters.sizes();
    let layers: Vec<String> = sizes.iter().map(ToString::to_string).collect();
    say!(
        "wrote {}: ONNX opset {}, {} {} network; input \"pixels\" float32 [N, {}] (each \
         byte / 255), outputs \"scores\" float32 [N, {}] and \"class\" int64 [N]",
        args.onnx.display(),
        mlp_core::onnx::OPSET,
        layers.join("-"),
        model.info.activation,
        sizes[0],
        sizes[sizes.len() - 1]
    );
    Ok(())
}
