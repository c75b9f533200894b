//! `mlp-cli predict --model M --csv test.csv [--out submission.csv]`: every image of a CSV
//! file in Kaggle's Digit Recognizer layout (`mlp_core::data::read_csv`) read by the model, as
//! the `ImageId,Label` file Kaggle takes (ImageId from 1). Where the file labels its images,
//! the accuracy is said too.

use std::path::Path;

use anyhow::{Result, bail};
use mlp_core::Model;
use mlp_core::atomic::{check_writable, write_atomically};
use mlp_core::data::read_csv;
use mlp_core::input::same_file;

use crate::args::PredictArgs;
use crate::console::{note, say};
use crate::session::inference_backend;

pub fn run(args: &PredictArgs, model: &Model, csv: &Path) -> Result<()> {
    if let Some(out) = &args.out {
        check_writable(out).map_err(|e| anyhow::Error::new(e).context("--out"))?;
        for (option, input) in [("--csv", csv), ("--model", args.model.as_path())] {
            if same_file(out, input) {
                bail!(
                    "--out {} would overwrite {option} {}, which this command reads: give --out \
                     another file",
                    out.display(),
                    input.display()
                );
            }
        }
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
