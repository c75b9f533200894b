//! Saved models: a save → load round trip is exact, and every kind of bad file gives an error
//! that names the file, never a panic.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::Scratch;
use mlp_core::backend::Backend;
use mlp_core::{CpuBackend, Dataset, Hyperparameters, Model, ModelError, ModelInfo, Parameters};
use safetensors::tensor::{Dtype, TensorView};

fn model() -> Model {
    let mut info = ModelInfo::seed(3);
    info.epochs = 2;
    info.accuracy = Some(0.8125);
    info.options.insert("lr".into(), "0.01".into());
    Model {
        parameters: Parameters::seed_init(&"784,16,8,10".parse().unwrap(), 3),
        info,
    }
}

fn metadata(layers: &str) -> HashMap<String, String> {
    [
        ("format", mlp_core::model::FORMAT),
        ("layers", layers),
        ("activation", "sigmoid"),
        ("output", "sigmoid-mse"),
        ("seed", "0"),
        ("epochs", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A tensor to write: name, shape, values.
type Tensor<'a> = (&'a str, Vec<usize>, Vec<f32>);

/// A safetensors file of f32 tensors (name, shape, values) with `metadata`.
fn write_tensors(path: &Path, tensors: &[Tensor], metadata: HashMap<String, String>) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, values)| values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors.iter().zip(&bytes).map(|((name, shape, _), data)| {
        (
            name.to_string(),
            TensorView::new(Dtype::F32, shape.clone(), data).unwrap(),
        )
    });
    std::fs::write(path, safetensors::serialize(views, Some(metadata)).unwrap()).unwrap();
}

fn load_error(path: &Path) -> ModelError {
    let err = Model::load(path).expect_err("a bad model file must not load");
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()),
        "{text} does not name the file"
    );
    err
}

#[test]
fn save_then_load_is_exact_after_training() {
    let scratch = Scratch::new("model-round-trip");
    let images = Dataset {
        images: (0..40 * 784).map(|i| (i * 7 % 256) as u8).collect(),
        labels: (0..40).map(|i| (i % 10) as u8).collect(),
        rows: 28,
        cols: 28,
    };
    let start = model();
    let mut cpu = CpuBackend::new(
        start.parameters.clone(),
        &Hyperparameters::seed_with_rate(0.05),
        &images,
        &images,
    )
    .unwrap();
    for rows in [0..20, 20..40, 0..40] {
        cpu.train_batch(rows).unwrap();
    }
    let trained = Model {
        parameters: cpu.parameters().unwrap(),
        info: start.info.clone(),
    };
    assert_ne!(trained.parameters, start.parameters);
    let path = scratch.path().join("trained.safetensors");
    trained.save(&path).unwrap();
    let loaded = Model::load(&path).unwrap();
    assert_eq!(loaded, trained, "the round trip must be bit-exact");
    assert!(!scratch.path().join("trained.safetensors.partial").exists());

    let mut again = CpuBackend::new(
        loaded.parameters.clone(),
        &Hyperparameters::seed_with_rate(0.05),
        &images,
        &images,
    )
    .unwrap();
    assert_eq!(again.evaluate().unwrap(), cpu.evaluate().unwrap());
}

#[test]
fn missing_truncated_and_foreign_files_are_refused() {
    let scratch = Scratch::new("model-bad-files");
    let dir = scratch.path();
    assert!(matches!(
        load_error(&dir.join("absent.safetensors")),
        ModelError::Read { .. }
    ));

    let bytes = model().to_bytes();
    for (name, cut) in [
        ("header.safetensors", 5),
        ("half.safetensors", bytes.len() / 2),
        ("last-byte.safetensors", bytes.len() - 1),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, &bytes[..cut]).unwrap();
        assert!(
            matches!(load_error(&path), ModelError::Format { .. }),
            "{name}"
        );
    }
    let text = dir.join("notes.safetensors");
    std::fs::write(&text, "these are not weights\n".repeat(10)).unwrap();
    assert!(matches!(load_error(&text), ModelError::Format { .. }));

    let foreign = dir.join("foreign.safetensors");
    let mut other = metadata("784,10");
    other.insert("format".into(), "pytorch".into());
    write_tensors(
        &foreign,
        &[
            ("layer1.weights", vec![784, 10], vec![0.0; 7840]),
            ("layer1.bias", vec![10], vec![0.0; 10]),
        ],
        other,
    );
    let err = load_error(&foreign);
    assert!(err.to_string().contains("pytorch"), "{err}");

    let no_layers = dir.join("no-layers.safetensors");
    let mut without = metadata("784,10");
    without.remove("layers");
    write_tensors(
        &no_layers,
        &[
            ("layer1.weights", vec![784, 10], vec![0.0; 7840]),
            ("layer1.bias", vec![10], vec![0.0; 10]),
        ],
        without,
    );
    assert!(load_error(&no_layers).to_string().contains("\"layers\""));

    // A header that promises a terabyte of weights in a file of a few hundred bytes: refused as
    // truncated, and nothing of the promised size is allocated.
    let promise = dir.join("promise.safetensors");
    let header = br#"{"layer1.weights":{"dtype":"F32","shape":[250000000000,1],"data_offsets":[0,1000000000000]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0; 64]);
    std::fs::write(&promise, bytes).unwrap();
    assert!(matches!(load_error(&promise), ModelError::Format { .. }));
}

#[test]
fn wrong_shapes_and_missing_tensors_are_refused() {
    let scratch = Scratch::new("model-shapes");
    let dir = scratch.path();
    let cases: [(&str, Vec<Tensor>, &str); 3] = [
        (
            "transposed",
            vec![
                ("layer1.weights", vec![10, 784], vec![0.0; 7840]),
                ("layer1.bias", vec![10], vec![0.0; 10]),
            ],
            "layer1.weights",
        ),
        (
            "short-bias",
            vec![
                ("layer1.weights", vec![784, 10], vec![0.0; 7840]),
                ("layer1.bias", vec![9], vec![0.0; 9]),
            ],
            "layer1.bias",
        ),
        (
            "renamed",
            vec![
                ("fc.weight", vec![784, 10], vec![0.0; 7840]),
                ("layer1.bias", vec![10], vec![0.0; 10]),
            ],
            "layer1.weights",
        ),
    ];
    for (name, tensors, words) in cases {
        let path = dir.join(format!("{name}.safetensors"));
        write_tensors(&path, &tensors, metadata("784,10"));
        let err = load_error(&path);
        assert!(matches!(err, ModelError::Shape { .. }), "{name}: {err}");
        assert!(err.to_string().contains(words), "{name}: {err}");
    }
}

#[test]
fn non_finite_weights_are_refused_with_their_place() {
    let scratch = Scratch::new("model-non-finite");
    for (name, value) in [("nan", f32::NAN), ("inf", f32::INFINITY)] {
        let mut weights = vec![0.5; 7840];
        weights[123] = value;
        let path = scratch.path().join(format!("{name}.safetensors"));
        write_tensors(
            &path,
            &[
                ("layer1.weights", vec![784, 10], weights),
                ("layer1.bias", vec![10], vec![0.0; 10]),
            ],
            metadata("784,10"),
        );
        match load_error(&path) {
            ModelError::NonFinite { tensor, index, .. } => {
                assert_eq!((tensor.as_str(), index), ("layer1.weights", 123));
            }
            other => panic!("{name}: {other}"),
        }
    }
}
