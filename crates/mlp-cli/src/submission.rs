//! `mlp-cli predict --model M --csv test.csv [--out submission.csv]`: every image of a CSV
//! file in Kaggle's Digit Recognizer layout (`mlp_core::data::read_csv`) read by the model, as
//! the `ImageId,Label` file Kaggle takes (ImageId from 1). Where the file labels its images,
//! the accuracy is said too.

use std::path::Path;

use anyhow::{Context, Result, bail};
use mlp_core::Model;
use mlp_core::atomic::{check_writable, write_atomically};
use mlp_core::data::read_csv;

use crate::args::PredictArgs;
use crate::console::{note, say};
use crate::session::inference_backend;
use crate::train::check_distinct;

pub fn run(args: &PredictArgs, model: &Model, csv: &Path) -> Result<()> {
    if let Some(out) = &args.out {
        check_writable(out).context("--out")?;
        let inputs = [
            ("--csv".to_string(), csv.to_path_buf()),
            ("--model".to_string(), args.model.clone()),
        ];
        check_distinct(&[("--out".to_string(), out.clone())], &inputs)?;
    }
    let read = read_csv(csv)?;
    let set = read.set;
    let inputs = model.parameters.sizes()[0];
    if inputs != set.pixels() {
        bail!(
            "{} takes {inputs} inputs, but {}'s images are {} x {} = {} pixels",
            args.model.display(),
            csv.display(),
            set.rows,
            set.cols,
            set.pixels()
        );
    }
    let mut backend = inference_backend(args.device.backend, &args.device.gpu, model, &set)?;
    let evaluation = backend.evaluate()?;
    let mut text = String::from("ImageId,Label\n");
    for (i, label) in evaluation.predictions.iter().enumerate() {
        text.push_str(&format!("{},{label}\n", i + 1));
    }
    if read.labelled {
        note!(
            "{}: {} images, accuracy {:.2}% ({} right) by {}",
            csv.display(),
            set.len(),
            100.0 * evaluation.accuracy(),
            evaluation.correct,
            backend.name()
        );
    }
    match &args.out {
        Some(out) => {
            write_atomically(out, text.as_bytes())?;
            note!("wrote {} predictions to {}", set.len(), out.display());
        }
        None => say!("{}", text.trim_end()),
    }
    Ok(())
}
