//! One training step of a hand-sized 2-3-2 network against values computed independently of
//! this code: a plain-Python float64 script that spells out docs/SEED.md's equations with lists.

use mlp_core::backend::Backend;
use mlp_core::compare::{Difference, Tolerance};
use mlp_core::cpu::{AdamStep, adam_update, momentum_update};
use mlp_core::network::{Layer, Parameters};
use mlp_core::{
    CpuBackend, Dataset, Hyperparameters, Optimiser, OptimiserKind, Output, ReferenceBackend,
};
use ndarray::{Array1, Array2, array};

/// The network is f32; the expectations are float64. Values are O(1), so f32 rounding stays
/// a few ulps (1e-7 each) per operation: 1e-6 is far above that and far below any real error.
const EXACT: Tolerance = Tolerance::new(1e-6, 1e-6);

fn hand_network() -> Parameters {
    Parameters {
        layers: vec![
            Layer {
                weights: array![[0.1, -0.2, 0.3], [0.4, 0.5, -0.6]],
                bias: array![0.01, -0.02, 0.03],
            },
            Layer {
                weights: array![[0.7, -0.8], [0.9, 0.1], [-0.3, 0.2]],
                bias: array![0.05, -0.05],
            },
        ],
    }
}

/// Two "images" of one row and two pixels: 255,0 -> (1, 0) and 51,204 -> (0.2, 0.8).
fn hand_batch() -> Dataset {
    Dataset {
        images: vec![255, 0, 51, 204],
        labels: vec![1, 0],
        rows: 1,
        cols: 2,
    }
}

fn assert_close(name: &str, values: &Array2<f32>, expected: &[f64]) {
    let expected: Vec<f32> = expected.iter().map(|&v| v as f32).collect();
    let values: Vec<f32> = values.iter().copied().collect();
    let d = Difference::between(&values, &expected, EXACT);
    assert!(d.passes(), "{name}: {d}");
}

/// The plain reference and the fast CPU backend, both holding the hand network and batch.
fn both_backends() -> Vec<Box<dyn Backend>> {
    let (data, hyper) = (hand_batch(), Hyperparameters::seed_with_rate(0.5));
    vec![
        Box::new(ReferenceBackend::new(hand_network(), &hyper, &data, &data).unwrap()),
        Box::new(CpuBackend::new(hand_network(), &hyper, &data, &data).unwrap()),
    ]
}

#[test]
fn one_step_matches_independent_float64_values() {
    for mut backend in both_backends() {
        println!("{}", backend.name());
        one_step_matches_on(backend.as_mut());
    }
}

fn one_step_matches_on(cpu: &mut dyn Backend) {
    let trace = cpu.trace_batch(0..2).unwrap();

    assert_close(
        "A2",
        &trace.activations[1],
        &[
            0.6559734516825696,
            0.4228453143400804,
            0.7037644058978527,
            0.40609516902853654,
        ],
    );
    assert_close(
        "D2",
        &trace.deltas[1],
        &[
            0.14803502601548008,
            -0.14085295873051723,
            -0.0617592164733465,
            0.09794279742988878,
        ],
    );
    assert_close(
        "D1",
        &trace.deltas[0],
        &[
            0.05391346854281799,
            0.029429027103519172,
            -0.017660099581615053,
            -0.0294842129697636,
            -0.011122699210164393,
            0.009175729126895226,
        ],
    );
    let loss = cpu.take_train_loss().unwrap();
    assert!(
        (loss.mean() - 0.2540193785032282).abs() < 1e-6,
        "loss {}",
        loss.mean()
    );

    let after = cpu.parameters().unwrap();
    assert_close(
        "W1",
        &after.layers[0].weights,
        &[
            0.07599168702556737,
            -0.21360224363074315,
            0.307912476878118,
            0.4117936851879055,
            0.5044490796840657,
            -0.603670291650758,
        ],
    );
    assert_close(
        "b1",
        &after.layers[0].bias.clone().insert_axis(ndarray::Axis(0)),
        &[
            -0.002214627786527196,
            -0.029153163946677392,
            0.03424218522735991,
        ],
    );
    assert_close(
        "W2",
        &after.layers[1].weights,
        &[
            0.6790723328736643,
            -0.791579465992686,
            0.885085440727055,
            0.10274670398754471,
            -0.330593750158683,
            0.2212006638478392,
        ],
    );
    assert_close(
        "b2",
        &after.layers[1].bias.clone().insert_axis(ndarray::Axis(0)),
        &[0.006862095228933218, -0.028544919349685775],
    );
}

#[test]
fn rows_outside_the_training_set_are_an_error_not_a_panic() {
    for mut backend in both_backends() {
        let err = backend.train_batch(1..3).unwrap_err().to_string();
        assert!(err.contains("outside the training set of 2"), "{err}");
    }
}

#[test]
fn parameters_of_another_shape_are_rejected() {
    let data = hand_batch();
    let mut cpu = CpuBackend::new(
        hand_network(),
        &Hyperparameters::seed_with_rate(0.5),
        &data,
        &data,
    )
    .unwrap();
    let mut wrong = hand_network();
    wrong.layers.pop();
    assert!(cpu.set_parameters(&wrong).is_err());
    let wide = Dataset {
        images: vec![0; 3],
        labels: vec![0],
        rows: 1,
        cols: 3,
    };
    let err = CpuBackend::new(
        hand_network(),
        &Hyperparameters::seed_with_rate(0.5),
        &wide,
        &wide,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("takes 2 values but images have 3 pixels"),
        "{err}"
    );
}

/// Three steps of a two-value parameter under fixed gradients, against a plain-Python float64
/// transcription of the update rules (Kingma & Ba's Algorithm 1 for Adam).
const GRADIENTS: [[f32; 2]; 3] = [[0.2, -0.1], [0.1, 0.4], [-0.3, 0.05]];

/// Fails unless the parameter after step `step` is within 1e-6 of the float64 values.
fn assert_after_step(step: usize, parameter: &Array1<f32>, expected: [f64; 2]) {
    for (got, want) in parameter.iter().zip(expected) {
        assert!(
            (f64::from(*got) - want).abs() < 1e-6,
            "step {step}: {got} vs {want}"
        );
    }
}

#[test]
fn adam_first_steps_match_independent_float64_values() {
    let expected = [
        [0.4900000005, -0.2900000009999999],
        [0.4806782047015366, -0.2955950357485128],
        [0.48149797264210353, -0.3006579687146649],
    ];
    let mut parameter = array![0.5f32, -0.3];
    let (mut m, mut v) = (array![0.0f32, 0.0], array![0.0f32, 0.0]);
    for (t, (gradient, after)) in GRADIENTS.iter().zip(expected).enumerate() {
        let step = AdamStep {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            t: t as u64 + 1,
        };
        let g = ndarray::arr1(gradient);
        adam_update(
            parameter.view_mut(),
            m.view_mut(),
            v.view_mut(),
            g.view(),
            0.01,
            step,
        );
        assert_after_step(t + 1, &parameter, after);
    }
}

#[test]
fn momentum_first_steps_match_independent_float64_values() {
    let expected = [[0.498, -0.299], [0.4952, -0.3021], [0.49568, -0.30539]];
    let mut parameter = array![0.5f32, -0.3];
    let mut velocity = array![0.0f32, 0.0];
    for (t, (gradient, after)) in GRADIENTS.iter().zip(expected).enumerate() {
        let g = ndarray::arr1(gradient);
        momentum_update(
            parameter.view_mut(),
            velocity.view_mut(),
            g.view(),
            0.01,
            0.9,
        );
        assert_after_step(t + 1, &parameter, after);
    }
}

#[test]
fn softmax_with_a_single_output_unit_is_refused() {
    let data = hand_batch();
    let one_output = Parameters {
        layers: vec![Layer {
            weights: array![[0.1], [0.2]],
            bias: array![0.0],
        }],
    };
    let hyper = Hyperparameters {
        output: Output::SoftmaxCrossEntropy,
        ..Hyperparameters::seed()
    };
    let err = CpuBackend::new(one_output, &hyper, &data, &data)
        .err()
        .expect("a 1-unit softmax must be refused")
        .to_string();
    assert!(
        err.contains("softmax output needs at least 2 classes"),
        "{err}"
    );
}

/// Weight decay moves every weight by −lr · λ · W (the step's own weights) on top of the step
/// without it, and leaves the biases as that step does: as L2 for gradient descent, whose
/// extra gradient λ · W the learning rate scales, and decoupled for Adam, whose step does not
/// depend on the weights. Both backends.
#[test]
fn weight_decay_takes_lr_lambda_w_off_each_weight_and_leaves_biases() {
    let data = hand_batch();
    let (rate, decay) = (0.5f32, 0.1f32);
    for kind in [OptimiserKind::GradientDescent, OptimiserKind::Adam] {
        let plain = Hyperparameters {
            optimiser: Optimiser::with_defaults(kind),
            ..Hyperparameters::seed_with_rate(rate)
        };
        let decayed = Hyperparameters {
            weight_decay: decay,
            ..plain
        };
        let step = |hyper: &Hyperparameters, fast: bool| -> Parameters {
            let mut backend: Box<dyn Backend> = if fast {
                Box::new(CpuBackend::new(hand_network(), hyper, &data, &data).unwrap())
            } else {
                Box::new(ReferenceBackend::new(hand_network(), hyper, &data, &data).unwrap())
            };
            backend.train_batch(0..2).unwrap();
            backend.parameters().unwrap()
        };
        for fast in [false, true] {
            let (without, with) = (step(&plain, fast), step(&decayed, fast));
            for (k, start) in hand_network().layers.iter().enumerate() {
                let expected: Vec<f64> = without.layers[k]
                    .weights
                    .iter()
                    .zip(&start.weights)
                    .map(|(&w, &w0)| f64::from(w) - f64::from(rate * decay) * f64::from(w0))
                    .collect();
                assert_close(
                    &format!("{kind} W{}", k + 1),
                    &with.layers[k].weights,
                    &expected,
                );
                assert_eq!(
                    with.layers[k].bias,
                    without.layers[k].bias,
                    "{kind} b{}",
                    k + 1
                );
            }
        }
    }
}
