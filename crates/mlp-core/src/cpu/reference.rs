//! The plain reference backend: docs/SEED.md written out with the readable functions of
//! [`super`] and nothing else — the images as dense rows A0 (every zero pixel included), one
//! thread, ndarray's products, no fast kernel. It is slow on purpose: it is what `mlp-cli
//! check` and the tests hold the fast CPU backend and the GPU to.

use std::ops::Range;

use ndarray::{
    Array1, Array2, ArrayView, ArrayView1, ArrayView2, ArrayViewMut, ArrayViewMut1, ArrayViewMut2,
    Dimension, s,
};

use super::{
    AdamStep, Real, activation_forward, adam_update, bias_gradient, check_input_width, check_order,
    check_output_width, decoupled_weight_decay, dropout_backward, dropout_forward, evaluation,
    gradient_descent_update, hidden_delta, l2_weight_decay, linear_forward, loss_sum, loss_terms,
    momentum_update, output_delta, reduction_scale, shift_images, sigmoid_forward,
    softmax_cross_entropy_delta, softmax_forward, weights_gradient,
};
use crate::backend::{
    Backend, BackendError, Evaluation, OptimiserState, StepKernels, StepTrace, TrainLoss,
    check_rows,
};
use crate::data::Dataset;
use crate::network::{Layer, Parameters};
use crate::options::{Activation, Dropout, Hyperparameters, Optimiser, Output};

/// A1 .. AL of `input` A0 (B, inputs) (E1, E2): hidden layers through `activation`, the output
/// layer through the sigmoid or the softmax that `output` names.
pub fn forward<F: Real>(
    weights: &[ArrayView2<F>],
    biases: &[ndarray::ArrayView1<F>],
    input: ArrayView2<F>,
    activation: Activation,
    output: Output,
) -> Vec<Array2<F>> {
    let mut activations: Vec<Array2<F>> = Vec::with_capacity(weights.len());
    let last = weights.len() - 1;
    for (k, (w, b)) in weights.iter().zip(biases).enumerate() {
        let layer_input = activations.last().map_or(input, |a| a.view());
        let functions = (activation, output);
        activations.push(layer_forward(layer_input, (*w, *b), k == last, functions));
    }
    activations
}

/// A1 .. AL of a training step under dropout (E1, E2, E2d): as [`forward`], but each hidden
/// layer's output reaches the next layer dropped. Returns A1 .. AL undropped, and
/// Ã1 .. Ã(L−1), what layers 2 .. L read. `step` is the step being taken, from 1.
pub fn forward_dropped<F: Real>(
    weights: &[ArrayView2<F>],
    biases: &[ndarray::ArrayView1<F>],
    input: ArrayView2<F>,
    functions: (Activation, Output),
    (dropout, step): (Dropout, u64),
) -> (Vec<Array2<F>>, Vec<Array2<F>>) {
    let mut activations: Vec<Array2<F>> = Vec::with_capacity(weights.len());
    let mut dropped: Vec<Array2<F>> = Vec::with_capacity(weights.len() - 1);
    let last = weights.len() - 1;
    for (k, (w, b)) in weights.iter().zip(biases).enumerate() {
        let layer_input = dropped.last().map_or(input, |a| a.view());
        let sum = layer_forward(layer_input, (*w, *b), k == last, functions);
        if k < last {
            let mut out = Array2::zeros(sum.dim());
            dropout_forward(sum.view(), out.view_mut(), (dropout, step, k + 1), 0);
            dropped.push(out);
        }
        activations.push(sum);
    }
    (activations, dropped)
}

/// One layer's output Ak from its input (E1, E2): a hidden layer through `activation`, the
/// last through the sigmoid or the softmax that `output` names.
fn layer_forward<F: Real>(
    input: ArrayView2<F>,
    (weights, bias): (ArrayView2<F>, ndarray::ArrayView1<F>),
    is_last: bool,
    (activation, output): (Activation, Output),
) -> Array2<F> {
    let mut sum = Array2::zeros((input.nrows(), weights.ncols()));
    linear_forward(input, weights, bias, sum.view_mut());
    match (is_last, output) {
        (false, _) => activation_forward(sum.view_mut(), activation),
        (true, Output::SigmoidMse) => sigmoid_forward(sum.view_mut()),
        (true, Output::SoftmaxCrossEntropy) => softmax_forward(sum.view_mut()),
    }
    sum
}

/// D1 .. DL of a forward pass (E3, E4), every one from the weights before any update; under
/// `dropout` (at a step) each hidden delta also goes through its layer's dropout (E4d).
pub fn deltas<F: Real>(
    weights: &[ArrayView2<F>],
    activations: &[Array2<F>],
    labels: &[u8],
    (activation, output): (Activation, Output),
    dropout: Option<(Dropout, u64)>,
) -> Vec<Array2<F>> {
    let depth = activations.len();
    let mut deltas: Vec<Array2<F>> = activations.iter().map(|a| Array2::zeros(a.dim())).collect();
    let last = activations[depth - 1].view();
    match output {
        Output::SigmoidMse => output_delta(last, labels, deltas[depth - 1].view_mut()),
        Output::SoftmaxCrossEntropy => {
            softmax_cross_entropy_delta(last, labels, deltas[depth - 1].view_mut());
        }
    }
    for k in (0..depth - 1).rev() {
        let (lower, upper) = deltas.split_at_mut(k + 1);
        hidden_delta(
            upper[0].view(),
            weights[k + 1],
            activations[k].view(),
            activation,
            lower[k].view_mut(),
        );
        if let Some((dropout, step)) = dropout {
            dropout_backward(lower[k].view_mut(), (dropout, step, k + 1), 0);
        }
    }
    deltas
}

/// Moves one parameter tensor by its gradient as `optimiser` says (E7, or momentum's or
/// Adam's step); `first` and `second` are the tensor's optimiser state (unused by plain
/// gradient descent), `t` the step from 1.
/// One tensor's optimiser state, as views: the first moment (or velocity) and the second.
pub(crate) type OptimiserViews<'a, D> = (
    Option<ArrayViewMut<'a, f32, D>>,
    Option<ArrayViewMut<'a, f32, D>>,
);

pub(crate) fn optimiser_update<D: Dimension>(
    optimiser: Optimiser,
    mut parameter: ArrayViewMut<'_, f32, D>,
    (first, second): OptimiserViews<'_, D>,
    gradient: ArrayView<'_, f32, D>,
    learning_rate: f32,
    weight_decay: f32,
    t: u64,
) {
    let mut decayed = None;
    if weight_decay != 0.0 {
        if let Optimiser::Adam { .. } = optimiser {
            decoupled_weight_decay(parameter.view_mut(), learning_rate, weight_decay);
        } else {
            let mut with_decay = gradient.to_owned();
            l2_weight_decay(with_decay.view_mut(), parameter.view(), weight_decay);
            decayed = Some(with_decay);
        }
    }
    let gradient = decayed.as_ref().map_or(gradient, |g| g.view());
    match (optimiser, first, second) {
        (Optimiser::Momentum { momentum }, Some(velocity), _) => {
            momentum_update(parameter, velocity, gradient, learning_rate, momentum);
        }
        (
            Optimiser::Adam {
                beta1,
                beta2,
                epsilon,
            },
            Some(m),
            Some(v),
        ) => {
            let step = AdamStep {
                beta1,
                beta2,
                epsilon,
                t,
            };
            adam_update(parameter, m, v, gradient, learning_rate, step);
        }
        _ => gradient_descent_update(parameter, gradient, learning_rate),
    }
}

/// Every layer's weights and bias, as views.
fn layer_views(parameters: &Parameters) -> (Vec<ArrayView2<'_, f32>>, Vec<ArrayView1<'_, f32>>) {
    let layers = &parameters.layers;
    (
        layers.iter().map(|l| l.weights.view()).collect(),
        layers.iter().map(|l| l.bias.view()).collect(),
    )
}

/// A layer's weights and bias, borrowed apart.
fn layer_views_mut(layer: &mut Layer) -> (ArrayViewMut2<'_, f32>, ArrayViewMut1<'_, f32>) {
    (layer.weights.view_mut(), layer.bias.view_mut())
}

/// The dense rows A0 of `images` of `set`, each pixel / 255.
fn dense_rows(set: &Dataset, images: impl Iterator<Item = usize>) -> (Array2<f32>, Vec<u8>) {
    let pixels = set.pixels();
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for image in images {
        let bytes = &set.images[image * pixels..(image + 1) * pixels];
        rows.extend(bytes.iter().map(|&p| f32::from(p) / 255.0));
        labels.push(set.labels[image]);
    }
    let count = labels.len();
    let rows = Array2::from_shape_vec((count, pixels), rows).expect("count x pixels values");
    (rows, labels)
}

/// See the module's documentation.
pub struct ReferenceBackend {
    parameters: Parameters,
    hyper: Hyperparameters,
    train: Dataset,
    validation: Dataset,
    /// The order the training set is read in: row r of a batch is image `order[r]`.
    order: Vec<u32>,
    state: OptimiserState,
    loss: TrainLoss,
    /// The last step's activations and deltas.
    trace: Option<StepTrace>,
}

impl ReferenceBackend {
    pub fn new(
        parameters: Parameters,
        hyper: &Hyperparameters,
        train: &Dataset,
        validation: &Dataset,
    ) -> Result<Self, BackendError> {
        check_input_width(&parameters, train)?;
        check_input_width(&parameters, validation)?;
        check_output_width(&parameters, hyper.output)?;
        let state = OptimiserState::new(hyper.optimiser, &parameters);
        Ok(Self {
            parameters,
            hyper: *hyper,
            train: train.clone(),
            validation: validation.clone(),
            order: (0..train.len() as u32).collect(),
            state,
            loss: TrainLoss::default(),
            trace: None,
        })
    }

    /// One training step (E1-E7) on `rows` of the training order; returns the batch loss
    /// from the forward pass before the update.
    fn step(&mut self, rows: Range<usize>) -> Result<f64, BackendError> {
        check_rows(&rows, self.train.len())?;
        let images = self.order[rows.clone()].iter().map(|&i| i as usize);
        let (input, labels) = dense_rows(&self.train, images);
        let hyper = self.hyper;
        // A0 shifted (E0s), then through input dropout (E2d for layer 0): what layer 1 reads,
        // forward and in E5.
        let input = match hyper.shift {
            None => input,
            Some(shift) => {
                let mut shifted = Array2::zeros(input.dim());
                let at = (shift, self.state.steps + 1);
                let side = (self.train.rows, self.train.cols);
                shift_images(input.view(), shifted.view_mut(), at, side, 0);
                shifted
            }
        };
        let input = match hyper.input_dropout {
            None => input,
            Some(dropout) => {
                let mut dropped = Array2::zeros(input.dim());
                let at = (dropout, self.state.steps + 1, 0);
                dropout_forward(input.view(), dropped.view_mut(), at, 0);
                dropped
            }
        };
        let functions = (hyper.activation, hyper.output);
        let (weights, biases) = layer_views(&self.parameters);
        let step = self.state.steps + 1;
        let (activations, dropped) = match hyper.dropout {
            None => {
                let activations =
                    forward(&weights, &biases, input.view(), functions.0, functions.1);
                (activations, None)
            }
            Some(dropout) => {
                let at = (dropout, step);
                let (activations, dropped) =
                    forward_dropped(&weights, &biases, input.view(), functions, at);
                (activations, Some(dropped))
            }
        };
        let output = activations[activations.len() - 1].view();
        let loss = loss_sum(hyper.output, output, &labels)
            / loss_terms(hyper.output, labels.len(), output.ncols()) as f64;
        let masks = hyper.dropout.map(|dropout| (dropout, step));
        let deltas = deltas(&weights, &activations, &labels, functions, masks);
        // What layers 2 .. L read: the dropped outputs under dropout.
        self.update(&input, dropped.as_deref().unwrap_or(&activations), &deltas);
        // The trace shows each hidden layer's output as the next layer read it.
        let mut activations = activations;
        for (k, dropped) in dropped.into_iter().flatten().enumerate() {
            activations[k] = dropped;
        }
        self.trace = Some(StepTrace {
            activations,
            deltas,
        });
        Ok(loss)
    }

    /// E5-E7 for every layer, from the batch's A0, the inputs of layers 2 .. L and the deltas.
    fn update(&mut self, input: &Array2<f32>, activations: &[Array2<f32>], deltas: &[Array2<f32>]) {
        self.state.steps += 1;
        let t = self.state.steps;
        for (k, layer) in self.parameters.layers.iter_mut().enumerate() {
            let layer_input = if k == 0 { input } else { &activations[k - 1] };
            let state = (self.state.first.get_mut(k), self.state.second.get_mut(k));
            weights_update(
                layer,
                state,
                layer_input.view(),
                deltas[k].view(),
                &self.hyper,
                t,
            );
        }
    }
}

/// One layer's step: grad Wk = scale · A(k−1)ᵀ Dk and grad bk (E5, E6), then the optimiser's
/// update of Wk and bk (E7, or momentum's or Adam's) at step `t` (from 1). `state` is the
/// layer's optimiser state, where the optimiser keeps any.
///
/// - `input` A(k−1): (B, in)
/// - `delta` Dk: (B, out)
pub fn weights_update(
    layer: &mut Layer,
    (first, second): (Option<&mut Layer>, Option<&mut Layer>),
    input: ArrayView2<f32>,
    delta: ArrayView2<f32>,
    hyper: &Hyperparameters,
    t: u64,
) {
    let scale: f32 = reduction_scale(hyper.reduction, input.nrows());
    let mut weight_gradient = Array2::zeros(layer.weights.dim());
    let mut bias_gradient_k = Array1::zeros(layer.bias.len());
    weights_gradient(input, delta, scale, weight_gradient.view_mut());
    bias_gradient(delta, scale, bias_gradient_k.view_mut());
    let (first_weights, first_bias) = first.map(layer_views_mut).unzip();
    let (second_weights, second_bias) = second.map(layer_views_mut).unzip();
    let (optimiser, rate) = (hyper.optimiser, hyper.learning_rate);
    optimiser_update(
        optimiser,
        layer.weights.view_mut(),
        (first_weights, second_weights),
        weight_gradient.view(),
        rate,
        hyper.weight_decay,
        t,
    );
    optimiser_update(
        optimiser,
        layer.bias.view_mut(),
        (first_bias, second_bias),
        bias_gradient_k.view(),
        rate,
        0.0,
        t,
    );
}

impl Backend for ReferenceBackend {
    fn name(&self) -> String {
        "reference (cpu/mod.rs: dense, one thread, f32)".to_string()
    }

    fn step_kernels(&self) -> StepKernels {
        StepKernels::reference(self.parameters.layers.len(), &self.hyper)
    }

    fn set_parameters(&mut self, parameters: &Parameters) -> Result<(), BackendError> {
        parameters.check_shapes(&self.parameters.layer_sizes())?;
        self.parameters = parameters.clone();
        Ok(())
    }

    fn parameters(&mut self) -> Result<Parameters, BackendError> {
        Ok(self.parameters.clone())
    }

    fn optimiser_state(&mut self) -> Result<OptimiserState, BackendError> {
        Ok(self.state.clone())
    }

    fn set_optimiser_state(&mut self, state: &OptimiserState) -> Result<(), BackendError> {
        state.check_for(self.hyper.optimiser, &self.parameters.layer_sizes())?;
        self.state = state.clone();
        Ok(())
    }

    fn set_learning_rate(&mut self, learning_rate: f32) -> Result<(), BackendError> {
        self.hyper.learning_rate = learning_rate;
        Ok(())
    }

    fn set_order(&mut self, order: &[u32]) -> Result<(), BackendError> {
        check_order(order, self.train.len())?;
        self.order = order.to_vec();
        Ok(())
    }

    fn train_batch(&mut self, rows: Range<usize>) -> Result<(), BackendError> {
        let loss = self.step(rows)?;
        self.loss.add(loss);
        Ok(())
    }

    fn take_train_loss(&mut self) -> Result<TrainLoss, BackendError> {
        Ok(std::mem::take(&mut self.loss))
    }

    fn peek_train_loss(&mut self) -> Result<TrainLoss, BackendError> {
        Ok(self.loss)
    }

    fn set_validation(&mut self, images: &Dataset) -> Result<(), BackendError> {
        let built = (self.validation.len(), self.validation.pixels());
        crate::backend::check_same_shape(built, images)?;
        self.validation = images.clone();
        Ok(())
    }

    fn trace_batch(&mut self, rows: Range<usize>) -> Result<StepTrace, BackendError> {
        self.train_batch(rows)?;
        Ok(self.trace.clone().expect("a step was just taken"))
    }

    fn evaluate(&mut self) -> Result<Evaluation, BackendError> {
        let outputs = self.validation_outputs()?;
        let labels = &self.validation.labels;
        Ok(evaluation(self.hyper.output, outputs.view(), labels))
    }

    fn validation_outputs(&mut self) -> Result<Array2<f32>, BackendError> {
        // In chunks, so that the dense rows of the whole set are never held at once.
        const CHUNK: usize = 1000;
        let count = self.validation.len();
        let classes = self
            .parameters
            .layers
            .last()
            .map_or(0, |l| l.weights.ncols());
        let mut outputs = Array2::zeros((count, classes));
        let (weights, biases) = layer_views(&self.parameters);
        for start in (0..count).step_by(CHUNK) {
            let end = (start + CHUNK).min(count);
            let (input, _) = dense_rows(&self.validation, start..end);
            let (activation, output) = (self.hyper.activation, self.hyper.output);
            let activations = forward(&weights, &biases, input.view(), activation, output);
            outputs
                .slice_mut(s![start..end, ..])
                .assign(&activations[activations.len() - 1]);
        }
        Ok(outputs)
    }
}
