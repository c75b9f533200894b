//! Finite-difference check of the backward pass of the CPU reference, in f64.
//!
//! The reference functions are generic over the float type, so the very code that trains in
//! f32 is checked here in f64, where central differences are accurate enough for a relative
//! error bound of 1e-6: with h = 1e-6 the truncation error is O(h²) ≈ 1e-12 and the rounding
//! error about ε·L/h ≈ 1e-10, both far below 1e-6 of gradients of size 1e-3 and up; smaller
//! gradients are held to 1e-9 absolutely (1e-6 of the 1e-3 floor). (In f32
//! the rounding term alone is ≈ 1e-7/h, which forces h ≈ 1e-2 and a bound of only 1e-3.)

use mlp_core::cpu::{bias_gradient, cross_entropy_sum, squared_error_sum, weights_gradient};
use mlp_core::options::Dropout;
use mlp_core::rng::Rng;
use mlp_core::{Activation, Output};
use ndarray::{Array1, Array2};

struct Network {
    weights: Vec<Array2<f64>>,
    biases: Vec<Array1<f64>>,
    activation: Activation,
    output: Output,
    /// Hidden-layer dropout, its masks drawn for step 1.
    dropout: Option<Dropout>,
}

fn random_network(
    sizes: &[usize],
    activation: Activation,
    output: Output,
    rng: &mut Rng,
) -> Network {
    let shapes: Vec<_> = sizes.windows(2).map(|w| (w[0], w[1])).collect();
    Network {
        activation,
        output,
        dropout: None,
        weights: shapes
            .iter()
            .map(|&s| Array2::from_shape_simple_fn(s, || 0.7 * rng.standard_normal()))
            .collect(),
        biases: shapes
            .iter()
            .map(|&(_, o)| Array1::from_shape_simple_fn(o, || 0.3 * rng.standard_normal()))
            .collect(),
    }
}

/// A1..AL for `input`, by the reference's forward pass, and what layers 2..L read (under
/// dropout, the dropped hidden outputs).
fn forward(net: &Network, input: &Array2<f64>) -> (Vec<Array2<f64>>, Vec<Array2<f64>>) {
    let weights: Vec<_> = net.weights.iter().map(|w| w.view()).collect();
    let biases: Vec<_> = net.biases.iter().map(|b| b.view()).collect();
    let functions = (net.activation, net.output);
    match net.dropout {
        None => {
            let a =
                mlp_core::cpu::forward(&weights, &biases, input.view(), functions.0, functions.1);
            let inputs = a[..a.len() - 1].to_vec();
            (a, inputs)
        }
        Some(dropout) => {
            let at = (dropout, 1);
            mlp_core::cpu::forward_dropped(&weights, &biases, input.view(), functions, at)
        }
    }
}

/// The loss whose derivatives the deltas are: L = ½ Σ (A_L − Y)² (docs/SEED.md's), or the
/// cross-entropy L = Σ −ln A_L[label] of a softmax output.
fn loss(net: &Network, input: &Array2<f64>, labels: &[u8]) -> f64 {
    let (activations, _) = forward(net, input);
    let output = activations.last().unwrap().view();
    match net.output {
        Output::SigmoidMse => 0.5 * squared_error_sum(output, labels),
        Output::SoftmaxCrossEntropy => cross_entropy_sum(output, labels),
    }
}

/// (grad W, grad b) per layer by the reference's backward pass.
fn backward(
    net: &Network,
    input: &Array2<f64>,
    labels: &[u8],
) -> (Vec<Array2<f64>>, Vec<Array1<f64>>) {
    let (activations, inputs) = forward(net, input);
    let depth = net.weights.len();
    let weights: Vec<_> = net.weights.iter().map(|w| w.view()).collect();
    let functions = (net.activation, net.output);
    let masks = net.dropout.map(|dropout| (dropout, 1));
    let deltas = mlp_core::cpu::deltas(&weights, &activations, labels, functions, masks);
    let mut weight_grads = Vec::new();
    let mut bias_grads = Vec::new();
    for k in 0..depth {
        let layer_input = if k == 0 { input } else { &inputs[k - 1] };
        let mut gw = Array2::zeros(net.weights[k].dim());
        let mut gb = Array1::zeros(net.biases[k].len());
        weights_gradient(layer_input.view(), deltas[k].view(), 1.0, gw.view_mut());
        bias_gradient(deltas[k].view(), 1.0, gb.view_mut());
        weight_grads.push(gw);
        bias_grads.push(gb);
    }
    (weight_grads, bias_grads)
}

const H: f64 = 1e-6;
const MAX_RELATIVE_ERROR: f64 = 1e-6;
/// Below this size a gradient is compared absolutely, to 1e-3 · 1e-6 = 1e-9: ten times the
/// rounding error of the central difference.
const GRADIENT_FLOOR: f64 = 1e-3;

fn relative_error(analytic: f64, numeric: f64) -> f64 {
    (analytic - numeric).abs() / analytic.abs().max(numeric.abs()).max(GRADIENT_FLOOR)
}

#[test]
fn backward_pass_matches_central_differences_in_f64() {
    check_gradients(Activation::Sigmoid, Output::SigmoidMse);
}

#[test]
fn relu_softmax_cross_entropy_backward_matches_central_differences() {
    check_gradients(Activation::Relu, Output::SoftmaxCrossEntropy);
}

#[test]
fn tanh_softmax_cross_entropy_backward_matches_central_differences() {
    check_gradients(Activation::Tanh, Output::SoftmaxCrossEntropy);
}

/// Under dropout the backward pass is the derivative of the dropped network's loss, for the
/// masks of its step (E2d, E4d): each activation, a third of units dropped.
#[test]
fn dropout_backward_matches_central_differences() {
    let dropout = Some(Dropout {
        rate: 0.33,
        seed: 5,
    });
    for activation in [Activation::Sigmoid, Activation::Relu, Activation::Tanh] {
        check_gradients_with(activation, Output::SoftmaxCrossEntropy, dropout);
    }
    check_gradients_with(Activation::Sigmoid, Output::SigmoidMse, dropout);
}

#[test]
fn relu_and_tanh_with_the_seed_output_match_central_differences() {
    check_gradients(Activation::Relu, Output::SigmoidMse);
    check_gradients(Activation::Tanh, Output::SigmoidMse);
}

/// Every weight and bias gradient of a 6-5-4-3 network on a batch of 4 against central
/// differences. (ReLU's kink at 0 is a probability-zero event for random inputs: no
/// pre-activation lands within h of it here.)
fn check_gradients(activation: Activation, output: Output) {
    check_gradients_with(activation, output, None);
}

fn check_gradients_with(activation: Activation, output: Output, dropout: Option<Dropout>) {
    let mut rng = Rng::new(11);
    let sizes = [6, 5, 4, 3];
    let mut net = random_network(&sizes, activation, output, &mut rng);
    net.dropout = dropout;
    let input = Array2::from_shape_simple_fn((4, 6), || rng.next_f64());
    let labels = [0u8, 2, 1, 2];
    let (weight_grads, bias_grads) = backward(&net, &input, &labels);

    let mut worst = 0.0f64;
    let mut checked = 0;
    for k in 0..net.weights.len() {
        for index in 0..net.weights[k].len() {
            let analytic = weight_grads[k].as_slice().unwrap()[index];
            let numeric = central_difference(&mut net, &input, &labels, |n| {
                &mut n.weights[k].as_slice_mut().unwrap()[index]
            });
            let error = relative_error(analytic, numeric);
            assert!(
                error <= MAX_RELATIVE_ERROR,
                "W{} [{index}]: analytic {analytic:e}, numeric {numeric:e}, error {error:e}",
                k + 1
            );
            worst = worst.max(error);
            checked += 1;
        }
        for (index, &analytic) in bias_grads[k].iter().enumerate() {
            let numeric =
                central_difference(&mut net, &input, &labels, |n| &mut n.biases[k][index]);
            let error = relative_error(analytic, numeric);
            assert!(
                error <= MAX_RELATIVE_ERROR,
                "b{} [{index}]: analytic {analytic:e}, numeric {numeric:e}, error {error:e}",
                k + 1
            );
            worst = worst.max(error);
            checked += 1;
        }
    }
    assert_eq!(checked, 6 * 5 + 5 + 5 * 4 + 4 + 4 * 3 + 3);
    println!(
        "{activation}/{output}: {checked} gradients checked, worst relative error {worst:.2e}"
    );
}

/// (L(p + h) − L(p − h)) / 2h for the parameter that `select` points at.
fn central_difference(
    net: &mut Network,
    input: &Array2<f64>,
    labels: &[u8],
    select: impl Fn(&mut Network) -> &mut f64,
) -> f64 {
    let original = *select(net);
    *select(net) = original + H;
    let above = loss(net, input, labels);
    *select(net) = original - H;
    let below = loss(net, input, labels);
    *select(net) = original;
    (above - below) / (2.0 * H)
}

/// L2 weight decay's extra gradient (l2_weight_decay) is that of (λ/2) ‖W‖², by central
/// differences in f64.
#[test]
fn l2_weight_decay_is_the_gradient_of_half_lambda_w_squared() {
    let mut rng = Rng::new(17);
    let weights = Array2::from_shape_fn((5, 3), |_| rng.standard_normal());
    let decay = 0.3;
    let penalty = |w: &Array2<f64>| 0.5 * decay * w.iter().map(|v| v * v).sum::<f64>();
    let mut gradient = Array2::zeros(weights.dim());
    mlp_core::cpu::l2_weight_decay(gradient.view_mut(), weights.view(), decay);
    let h = 1e-6;
    for index in [(0, 0), (2, 1), (4, 2)] {
        let (mut up, mut down) = (weights.clone(), weights.clone());
        up[index] += h;
        down[index] -= h;
        let numeric = (penalty(&up) - penalty(&down)) / (2.0 * h);
        assert!(
            (numeric - gradient[index]).abs() < 1e-8,
            "{index:?}: {numeric} vs {}",
            gradient[index]
        );
    }
}
