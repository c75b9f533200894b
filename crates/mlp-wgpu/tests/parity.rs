//! The GPU against the plain reference (`mlp_core::ReferenceBackend`): single steps on awkward shapes, runs of whole steps, and
//! a short run on real MNIST. Every test opens a real adapter and fails loudly when there is
//! none: install a GPU driver or Mesa's lavapipe (`mesa-vulkan-drivers`).

#[path = "../../mlp-core/tests/common/mod.rs"]
mod common;

use std::ops::Range;

use common::{lockstep_step, start_epoch_on};
use mlp_core::backend::Backend;
use mlp_core::compare::{Difference, Row};
use mlp_core::data::{self, DataFormat};
use mlp_core::network::Parameters;
use mlp_core::rng::Rng;
use mlp_core::train::batches;
use mlp_core::{
    Activation, Dataset, Hyperparameters, Init, LayerSizes, Optimiser, OptimiserKind, Output,
    Reduction, ReferenceBackend,
};
use mlp_wgpu::{DenseSchedule, GpuBackend, GpuContext, KernelVariant, PARITY, Reads};

fn context() -> GpuContext {
    GpuContext::new(None).unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"))
}

/// `count` random images of `pixels` bytes, mostly 0, with labels below `classes`.
fn random_set(count: usize, pixels: usize, classes: usize, rng: &mut Rng) -> Dataset {
    Dataset {
        // Three pixels in four dark, as in MNIST, so that both backends' skipping of zero
        // pixels is exercised; the rest any byte.
        images: (0..count * pixels)
            .map(|_| match rng.next_u64() % 1024 {
                lit @ 768.. => (lit % 256) as u8,
                _ => 0,
            })
            .collect(),
        labels: (0..count)
            .map(|_| (rng.next_u64() % classes as u64) as u8)
            .collect(),
        rows: 1,
        cols: pixels,
    }
}

/// Both backends from the same parameters, on `train` and `validation`, with the seed's
/// options.
fn backends(
    sizes: &[usize],
    batch: usize,
    train: &Dataset,
    validation: &Dataset,
) -> (ReferenceBackend, GpuBackend) {
    backends_with(sizes, batch, train, validation, &Hyperparameters::seed())
}

/// Both backends from the same parameters, on `train` and `validation`, with `hyper`. The
/// initialisation suits the activation, as a user would choose it.
fn backends_with(
    sizes: &[usize],
    batch: usize,
    train: &Dataset,
    validation: &Dataset,
    hyper: &Hyperparameters,
) -> (ReferenceBackend, GpuBackend) {
    backends_on(sizes, batch, (train, validation), hyper, None)
}

/// [`backends_with`], the GPU built for `schedule` where given (with uniform reads where they
/// fit), else for the adapter's default: the whole step needs the images' bytes, which only a
/// backend built for it uploads.
fn backends_on(
    sizes: &[usize],
    batch: usize,
    (train, validation): (&Dataset, &Dataset),
    hyper: &Hyperparameters,
    schedule: Option<DenseSchedule>,
) -> (ReferenceBackend, GpuBackend) {
    let init = match hyper.activation {
        Activation::Sigmoid => Init::Normal,
        Activation::Tanh => Init::Xavier,
        Activation::Relu => Init::He,
    };
    let parameters = Parameters::init(&Parameters::layer_sizes_of(sizes), init, 5);
    let cpu = ReferenceBackend::new(parameters.clone(), hyper, train, validation).unwrap();
    let gpu = match schedule {
        None => GpuBackend::new(context(), &parameters, hyper, batch, train, validation),
        Some(schedule) => {
            let variant = KernelVariant {
                schedule,
                reads: Reads::Uniform,
            };
            let data = (train, validation);
            GpuBackend::with_variant(context(), &parameters, hyper, batch, data, variant)
        }
    };
    (cpu, gpu.unwrap())
}

/// Prints every row, as `mlp-cli check` does, and fails on the first that exceeds PARITY.
fn assert_rows_pass(what: &str, rows: &[Row]) {
    for row in rows {
        println!("{what}: {:<24} {}", row.name, row.difference);
    }
    for row in rows {
        assert!(
            row.difference.passes(),
            "{what}: {} differs beyond {PARITY:?}: {}",
            row.name,
            row.difference
        );
    }
}

/// One traced step of a network of `sizes` on a batch of `batch` random images.
fn one_step_rows(sizes: &[usize], batch: usize) -> Vec<Row> {
    one_step_rows_with(sizes, batch, &Hyperparameters::seed())
}

/// The ways the GPU can compute the layers after the first that run with no workgroup memory
/// for their products: all of them in two dispatches, per layer, the whole step in two
/// dispatches, and steps in runs in one.
const SCHEDULES: [DenseSchedule; 4] = [
    DenseSchedule::Fused,
    DenseSchedule::Registers,
    DenseSchedule::Whole,
    DenseSchedule::MultiStep,
];

/// One traced step of a network of `sizes` with `hyper` on a batch of `batch` random images,
/// once per schedule of SCHEDULES; each row's name ends with the schedule's.
fn one_step_rows_with(sizes: &[usize], batch: usize, hyper: &Hyperparameters) -> Vec<Row> {
    SCHEDULES
        .iter()
        .flat_map(|&matmul| one_step_rows_on(sizes, batch, hyper, matmul))
        .collect()
}

/// [`one_step_rows_with`], the GPU's dense forward products computed by `matmul`.
fn one_step_rows_on(
    sizes: &[usize],
    batch: usize,
    hyper: &Hyperparameters,
    matmul: DenseSchedule,
) -> Vec<Row> {
    let mut rng = Rng::new(sizes.iter().sum::<usize>() as u64 + batch as u64);
    let classes = *sizes.last().unwrap();
    let train = random_set(batch, sizes[0], classes, &mut rng);
    let validation = random_set(3, sizes[0], classes, &mut rng);
    let data = (&train, &validation);
    let (mut cpu, mut gpu) = backends_on(sizes, batch, data, hyper, Some(matmul));
    let mut rows = lockstep_step(&mut cpu, &mut gpu, 0..batch, PARITY);
    for row in &mut rows {
        row.name = format!("{} ({matmul:?})", row.name);
    }
    rows
}

fn rows_named(rows: &[Row], kernel: &str) -> Vec<Row> {
    let picked: Vec<Row> = rows
        .iter()
        .filter(|r| r.name.starts_with(kernel))
        .cloned()
        .collect();
    assert!(!picked.is_empty(), "no rows for {kernel}");
    picked
}

#[test]
fn linear_forward_1x1x1_should_match_reference() {
    let rows = one_step_rows(&[1, 1], 1);
    assert_rows_pass("1x1x1", &rows_named(&rows, "linear_forward"));
    assert_rows_pass("1x1x1", &rows);
}

#[test]
fn linear_forward_7x13x5_should_match_reference() {
    assert_rows_pass(
        "7x13x5",
        &rows_named(&one_step_rows(&[13, 5], 7), "linear_forward"),
    );
}

#[test]
fn output_delta_and_weights_update_7x13x5_should_match_reference() {
    let rows = one_step_rows(&[13, 5], 7);
    assert_rows_pass("7x13x5", &rows_named(&rows, "output_delta"));
    assert_rows_pass("7x13x5", &rows_named(&rows, "weights_update"));
}

#[test]
fn hidden_delta_uneven_layers_should_match_reference() {
    // 33 rows and widths that are multiples of neither the 4 x 4 block nor the 32 x 32 workgroup.
    let rows = one_step_rows(&[37, 45, 7, 3, 5], 33);
    assert_rows_pass("33 x 37-45-7-3-5", &rows_named(&rows, "hidden_delta"));
    assert_rows_pass("33 x 37-45-7-3-5", &rows);
}

/// The workgroup-memory forward kernel, on sizes that are multiples of neither its 16 x 16
/// tile nor anything else, on a 1-wide layer, and on the seed's shapes.
#[test]
fn linear_forward_tiled_should_match_reference() {
    let seed = Hyperparameters::seed();
    for (sizes, batch) in [
        (&[37, 45, 7, 3, 5][..], 33),
        (&[9, 17, 1, 2][..], 5),
        (LayerSizes::seed().as_slice(), 100),
    ] {
        let rows = one_step_rows_on(sizes, batch, &seed, DenseSchedule::Tiled);
        let what = format!("tiled {batch} x {sizes:?}");
        assert_rows_pass(&what, &rows_named(&rows, "linear_forward"));
        assert_rows_pass(&what, &rows);
    }
}

/// Each schedule's kernels are built when a step first runs it, not before.
#[test]
fn only_the_kernels_of_the_schedules_in_use_are_built() {
    let mut rng = Rng::new(12);
    let train = random_set(10, 30, 5, &mut rng);
    let (_, mut gpu) = backends(&[30, 8, 5], 10, &train, &train);
    let per_layer = [
        "dropout_forward",
        "output_delta",
        "hidden_delta",
        "weights_update",
    ];
    let fused = ["row_forward_backward", "layers_weights_update"];
    let built = |gpu: &GpuBackend, kernels: &[&str]| {
        let all = gpu.built_kernels();
        kernels.iter().filter(|k| all.contains(k)).count()
    };
    assert_eq!(built(&gpu, &["evaluate", "sparse_forward"]), 2);
    gpu.evaluate().unwrap();
    assert_eq!(
        built(&gpu, &fused) + built(&gpu, &per_layer),
        0,
        "{:?}",
        gpu.built_kernels()
    );
    gpu.train_batch(0..10).unwrap();
    assert_eq!(built(&gpu, &fused), 2, "{:?}", gpu.built_kernels());
    assert_eq!(built(&gpu, &per_layer), 0, "{:?}", gpu.built_kernels());
    gpu.set_dense_schedule(DenseSchedule::Registers);
    gpu.train_batch(0..10).unwrap();
    assert_eq!(built(&gpu, &per_layer), 4, "{:?}", gpu.built_kernels());
    assert_eq!(built(&gpu, &["linear_forward_tiled"]), 0);
    gpu.set_dense_schedule(DenseSchedule::Tiled);
    gpu.train_batch(0..10).unwrap();
    assert_eq!(built(&gpu, &["linear_forward_tiled"]), 1);
    gpu.parameters().unwrap();
}

/// A network with more units than the fused kernel keeps per row runs the per-layer kernels
/// when asked for the fused ones, and still matches.
#[test]
fn too_wide_to_fuse_step_should_match_reference() {
    let sizes = [20, 600, 5];
    let mut rng = Rng::new(8);
    let train = random_set(3, 20, 5, &mut rng);
    let (mut cpu, mut gpu) = backends(&sizes, 3, &train, &train);
    gpu.set_dense_schedule(DenseSchedule::Fused);
    assert_eq!(gpu.dense_schedule(), DenseSchedule::Registers);
    let rows = lockstep_step(&mut cpu, &mut gpu, 0..3, PARITY);
    assert_rows_pass("3 x 20-600-5", &rows);
}

#[test]
fn seed_step_100x784x64_should_match_reference() {
    assert_rows_pass(
        "seed 100x784",
        &one_step_rows(LayerSizes::seed().as_slice(), 100),
    );
}

/// At 300 rows D1 of the seed network (300 x 64 f32, 76,800 bytes) is over the 64 KiB that
/// lavapipe and most GPUs bind as a uniform buffer, so sparse_weights_update reads it from
/// storage: the kernel's other build.
#[test]
fn seed_step_300x784x64_should_match_reference() {
    assert_rows_pass(
        "seed 300x784",
        &one_step_rows(LayerSizes::seed().as_slice(), 300),
    );
}

/// The parameters of layers 2..L here, (201 x 100 + 101 x 10) f32 = 84,440 bytes, are over
/// the 64 KiB that lavapipe and most GPUs bind as a uniform buffer, while the row's 310 units
/// still fuse: row_forward_backward reads them from storage, its other build.
#[test]
fn fused_step_beyond_a_uniform_binding_should_match_reference() {
    assert_rows_pass(
        "12 x 30-200-100-10",
        &one_step_rows(&[30, 200, 100, 10], 12),
    );
}

#[test]
fn forty_whole_steps_with_a_short_last_batch_should_match_reference() {
    let mut rng = Rng::new(3);
    let sizes = [50, 24, 10];
    let train = random_set(1030, 50, 10, &mut rng);
    let validation = random_set(77, 50, 10, &mut rng);
    let (mut cpu, mut gpu) = backends(&sizes, 100, &train, &validation);
    for _epoch in 0..4 {
        for rows in batches(train.len(), 100) {
            cpu.train_batch(rows.clone()).unwrap();
            gpu.train_batch(rows).unwrap();
        }
    }
    let (cpu_loss, gpu_loss) = (
        cpu.take_train_loss().unwrap(),
        gpu.take_train_loss().unwrap(),
    );
    assert_eq!(cpu_loss.batches, 44);
    assert_eq!(gpu_loss.batches, 44);
    assert!(
        PARITY.accepts(gpu_loss.mean(), cpu_loss.mean()),
        "loss {} vs {}",
        gpu_loss.mean(),
        cpu_loss.mean()
    );
    assert_parameters_match("after 44 steps", &mut cpu, &mut gpu);
    let (cpu_eval, gpu_eval) = (cpu.evaluate().unwrap(), gpu.evaluate().unwrap());
    assert_eq!(cpu_eval.predictions, gpu_eval.predictions);
    assert!(PARITY.accepts(gpu_eval.loss(), cpu_eval.loss()));
}

/// Steps queued with no read between them, as training queues them: the multi-step kernel
/// runs each run of them in one dispatch. An epoch of 344 steps of 3 rows is recorded in
/// submissions of 256 (STEP_SLOTS) and 88, each in runs as long as the driver allows (67 on
/// llvmpipe, whose loops stop after 65,535 iterations), and an evaluation between the epochs
/// ends a run. After each epoch the loss, the parameters and the evaluation match the
/// reference, under ReLU, softmax, Adam, dropout, input dropout and shifts on 6 x 7 images,
/// shuffled; and again in batches of 300, more than the kernel's 256 invocations, so that some
/// take two rows.
#[test]
fn multi_step_runs_should_match_reference() {
    let hyper = adam_relu_softmax(|h| {
        h.dropout = Some(mlp_core::options::Dropout { rate: 0.2, seed: 4 });
        h.input_dropout = Some(mlp_core::options::Dropout { rate: 0.1, seed: 5 });
        h.shift = Some(mlp_core::options::Shift { pixels: 1, seed: 6 });
    });
    let mut rng = Rng::new(47);
    let shaped = |set: Dataset| Dataset {
        rows: 6,
        cols: 7,
        ..set
    };
    let train = shaped(random_set(1030, 42, 5, &mut rng));
    let validation = shaped(random_set(50, 42, 5, &mut rng));
    for batch in [3, 300] {
        multi_step_epochs(&hyper, (&train, &validation), batch);
    }
}

/// Two shuffled epochs of batches of `batch` on the multi-step kernel, each against the
/// reference after it.
fn multi_step_epochs(
    hyper: &Hyperparameters,
    (train, validation): (&Dataset, &Dataset),
    batch: usize,
) {
    let schedule = Some(DenseSchedule::MultiStep);
    let data = (train, validation);
    let (mut cpu, mut gpu) = backends_on(&[42, 13, 6, 5], batch, data, hyper, schedule);
    assert_eq!(gpu.variant().schedule, DenseSchedule::MultiStep);
    // On llvmpipe, whose loops stop after 65,535 iterations in all, runs are shorter.
    let per_dispatch = gpu.dispatches_per_step().steps;
    println!("{}", gpu.name());
    assert!(per_dispatch > 1, "{per_dispatch} steps per dispatch");
    for epoch in 1..3 {
        let order = mlp_core::train::epoch_order(9, epoch, train.len());
        start_epoch_on([&mut cpu, &mut gpu], &order, hyper.learning_rate);
        for rows in batches(train.len(), batch) {
            cpu.train_batch(rows.clone()).unwrap();
            gpu.train_batch(rows).unwrap();
        }
        let what = format!("batch {batch}, epoch {epoch}");
        let (cpu_loss, gpu_loss) = (
            cpu.take_train_loss().unwrap(),
            gpu.take_train_loss().unwrap(),
        );
        assert_parameters_match(&format!("multi-step {what}"), &mut cpu, &mut gpu);
        assert_eq!(gpu_loss.batches, train.len().div_ceil(batch));
        assert!(
            PARITY.accepts(gpu_loss.mean(), cpu_loss.mean()),
            "{what}: loss {} vs {}",
            gpu_loss.mean(),
            cpu_loss.mean()
        );
        let (cpu_eval, gpu_eval) = (cpu.evaluate().unwrap(), gpu.evaluate().unwrap());
        assert_eq!(cpu_eval.predictions, gpu_eval.predictions, "{what}");
    }
}

#[test]
fn short_mnist_run_should_match_reference() {
    short_mnist_run(None);
}

/// The same run on the whole step's two dispatches, and in the multi-step kernel's runs.
#[test]
fn short_mnist_run_of_whole_steps_should_match_reference() {
    short_mnist_run(Some(DenseSchedule::Whole));
    short_mnist_run(Some(DenseSchedule::MultiStep));
}

/// 300 steps of the seed on 10,000 MNIST images, the GPU built for `schedule` (else the
/// adapter's default), against the reference.
fn short_mnist_run(schedule: Option<DenseSchedule>) {
    let mnist = data::load(&common::mnist_dir(), DataFormat::Mnist).unwrap();
    let train = mnist.train.first(10_000);
    let sizes = LayerSizes::seed();
    let data = (&train, &mnist.test);
    let hyper = Hyperparameters::seed();
    let (mut cpu, mut gpu) = backends_on(sizes.as_slice(), 100, data, &hyper, schedule);
    if let Some(schedule) = schedule {
        assert_eq!(gpu.variant().schedule, schedule, "{}", gpu.name());
    }
    for _epoch in 0..3 {
        for rows in batches(train.len(), 100) {
            cpu.train_batch(rows.clone()).unwrap();
            gpu.train_batch(rows).unwrap();
        }
    }
    let (cpu_eval, gpu_eval) = (cpu.evaluate().unwrap(), gpu.evaluate().unwrap());
    let differ = cpu_eval.differing_predictions(&gpu_eval);
    println!(
        "accuracy cpu {} gpu {}, {differ} predictions differ",
        cpu_eval.accuracy(),
        gpu_eval.accuracy()
    );
    // Parameters agree to ~1e-6, so only an image whose two best classes are that close may
    // flip: at most 0.1 % of the 10,000 (none did on lavapipe).
    assert!(differ <= 10, "{differ} predictions differ");
    assert!((cpu_eval.accuracy() - gpu_eval.accuracy()).abs() <= 0.001);
    // Chance is 0.10; these 300 steps from initial seed 5 reached 0.32 on both backends.
    assert!(
        cpu_eval.accuracy() > 0.25,
        "the run must learn: {}",
        cpu_eval.accuracy()
    );
    let what = format!("after 300 MNIST steps ({schedule:?})");
    assert_parameters_match(&what, &mut cpu, &mut gpu);
}

/// Every layer's weights and bias on the GPU within PARITY of the reference's, the weights'
/// differences printed.
fn assert_parameters_match(what: &str, cpu: &mut ReferenceBackend, gpu: &mut GpuBackend) {
    let (cpu_p, gpu_p) = (cpu.parameters().unwrap(), gpu.parameters().unwrap());
    let flat = |a: &ndarray::Array2<f32>| a.iter().copied().collect::<Vec<_>>();
    for (k, (c, g)) in cpu_p.layers.iter().zip(&gpu_p.layers).enumerate() {
        let d = Difference::between(&flat(&g.weights), &flat(&c.weights), PARITY);
        println!("{what}: W{} {d}", k + 1);
        assert!(d.passes(), "{what}: W{}: {d}", k + 1);
        let d = Difference::between(&g.bias.to_vec(), &c.bias.to_vec(), PARITY);
        assert!(d.passes(), "{what}: b{}: {d}", k + 1);
    }
}

#[test]
fn a_batch_beyond_the_device_limits_is_a_clear_error() {
    let mut rng = Rng::new(9);
    let set = random_set(4, 784, 10, &mut rng);
    let parameters = Parameters::seed_init(&LayerSizes::seed(), 1);
    let err = GpuBackend::new(
        context(),
        &parameters,
        &Hyperparameters::seed(),
        1 << 28,
        &set,
        &set,
    )
    .err()
    .expect("too large")
    .to_string();
    assert!(
        err.contains("max_storage_buffer_binding_size")
            || err.contains("max_compute_workgroups_per_dimension"),
        "{err}"
    );
    assert!(err.contains("--batch-size"), "{err}");
}

#[test]
fn an_unknown_adapter_name_is_a_clear_error_listing_the_adapters_found() {
    let err = GpuContext::new(Some("no-such-adapter-xyz"))
        .err()
        .expect("no adapter")
        .to_string();
    let adapters = mlp_wgpu::list_adapters();
    let found = &(adapters.iter().find(|a| a.usable).unwrap().summary.name);
    assert!(
        err.contains("no-such-adapter-xyz") && err.contains(found.as_str()),
        "{err}"
    );
    assert!(!err.contains("Install a GPU driver"), "{err}");
}

/// The seed's options with `change` applied.
fn options(change: impl FnOnce(&mut Hyperparameters)) -> Hyperparameters {
    let mut hyper = Hyperparameters::seed();
    change(&mut hyper);
    hyper
}

/// [`options`] of a network trained the way people train one today (the modern preset's
/// choices): ReLU, softmax and cross-entropy, mean gradients, Adam at 1e-3.
fn adam_relu_softmax(change: impl FnOnce(&mut Hyperparameters)) -> Hyperparameters {
    options(|h| {
        h.optimiser = Optimiser::with_defaults(OptimiserKind::Adam);
        h.activation = Activation::Relu;
        h.output = Output::SoftmaxCrossEntropy;
        h.reduction = Reduction::Mean;
        h.learning_rate = 1e-3;
        change(h);
    })
}

/// Awkward shapes: 33 rows and widths that are multiples of neither the 4 x 4 block nor the
/// 32 x 32 workgroup.
const AWKWARD: [usize; 5] = [37, 45, 7, 3, 5];

#[test]
fn relu_step_awkward_should_match_reference() {
    let hyper = options(|h| h.activation = Activation::Relu);
    assert_rows_pass(
        "relu 33 x 37-45-7-3-5",
        &one_step_rows_with(&AWKWARD, 33, &hyper),
    );
}

#[test]
fn tanh_step_awkward_should_match_reference() {
    let hyper = options(|h| h.activation = Activation::Tanh);
    assert_rows_pass(
        "tanh 33 x 37-45-7-3-5",
        &one_step_rows_with(&AWKWARD, 33, &hyper),
    );
}

#[test]
fn softmax_cross_entropy_step_awkward_should_match_reference() {
    let hyper = options(|h| {
        h.activation = Activation::Relu;
        h.output = Output::SoftmaxCrossEntropy;
    });
    assert_rows_pass(
        "softmax 33 x 37-45-7-3-5",
        &one_step_rows_with(&AWKWARD, 33, &hyper),
    );
    // Two classes, the fewest a softmax takes, and one row.
    assert_rows_pass("softmax 1 x 3-2", &one_step_rows_with(&[3, 2], 1, &hyper));
}

#[test]
fn mean_reduction_step_should_match_reference() {
    let hyper = options(|h| {
        h.reduction = Reduction::Mean;
        h.learning_rate = 0.5;
    });
    assert_rows_pass(
        "mean 33 x 37-45-7-3-5",
        &one_step_rows_with(&AWKWARD, 33, &hyper),
    );
}

/// `steps` lockstep steps with `hyper` on random data, in batches of 30 over 100 rows (a short
/// last batch), shuffled each epoch and with the learning rate halved each epoch: every step
/// is traced and compared. Once per schedule of SCHEDULES.
fn lockstep(what: &str, hyper: &Hyperparameters, steps: usize) {
    for matmul in SCHEDULES {
        lockstep_on(&format!("{what} ({matmul:?})"), hyper, steps, matmul);
    }
}

fn lockstep_on(what: &str, hyper: &Hyperparameters, steps: usize, matmul: DenseSchedule) {
    lockstep_images(what, hyper, steps, matmul, ((1, 37), &AWKWARD));
}

/// [`lockstep_on`] on images of `rows` x `cols` pixels, through layers `sizes`.
fn lockstep_images(
    what: &str,
    hyper: &Hyperparameters,
    steps: usize,
    matmul: DenseSchedule,
    ((rows, cols), sizes): ((usize, usize), &[usize]),
) {
    let mut rng = Rng::new(21);
    let classes = sizes[sizes.len() - 1];
    let shaped = |set: Dataset| Dataset { rows, cols, ..set };
    let train = shaped(random_set(100, rows * cols, classes, &mut rng));
    let validation = shaped(random_set(40, rows * cols, classes, &mut rng));
    let data = (&train, &validation);
    let (mut cpu, mut gpu) = backends_on(sizes, 30, data, hyper, Some(matmul));
    let schedule: Vec<_> = batches(train.len(), 30).collect();
    let mut rate = hyper.learning_rate;
    for step in 0..steps {
        let batch = step % schedule.len();
        if batch == 0 {
            let order = mlp_core::train::epoch_order(9, step / schedule.len() + 1, train.len());
            start_epoch_on([&mut cpu, &mut gpu], &order, rate);
            rate /= 2.0;
        }
        let rows = schedule[batch].clone();
        let compared = lockstep_step(&mut cpu, &mut gpu, rows, PARITY);
        assert_rows_pass(&format!("{what} step {}", step + 1), &compared);
    }
    let (cpu_eval, gpu_eval) = (cpu.evaluate().unwrap(), gpu.evaluate().unwrap());
    assert_eq!(cpu_eval.predictions, gpu_eval.predictions, "{what}");
    assert!(
        PARITY.accepts(gpu_eval.loss(), cpu_eval.loss()),
        "{what}: validation loss {} vs {}",
        gpu_eval.loss(),
        cpu_eval.loss()
    );
}

#[test]
fn momentum_steps_should_match_reference() {
    let hyper = options(|h| {
        h.optimiser = Optimiser::with_defaults(OptimiserKind::Momentum);
        h.activation = Activation::Tanh;
    });
    lockstep("momentum", &hyper, 12);
}

#[test]
fn adam_steps_should_match_reference() {
    let hyper = adam_relu_softmax(|_| {});
    lockstep("adam", &hyper, 12);
}

#[test]
fn shuffled_seed_steps_should_match_reference() {
    lockstep("seed, shuffled", &Hyperparameters::seed(), 12);
}

#[test]
fn a_single_softmax_output_is_refused_on_the_gpu_too() {
    let mut rng = Rng::new(1);
    let set = random_set(4, 3, 1, &mut rng);
    let parameters = Parameters::seed_init(&Parameters::layer_sizes_of(&[3, 1]), 0);
    let hyper = options(|h| h.output = Output::SoftmaxCrossEntropy);
    let err = GpuBackend::new(context(), &parameters, &hyper, 4, &set, &set)
        .err()
        .expect("a 1-unit softmax must be refused")
        .to_string();
    assert!(err.contains("at least 2 classes"), "{err}");
}

/// `kernel_times` trains the step it times (the parameters move exactly as `train_batch`
/// moves them), and where the adapter writes timestamps inside passes it names every dispatch
/// of the step with a finite, non-negative time: in the file order without pixel_columns,
/// whose lists were built at upload, and in another order with it.
#[test]
fn kernel_times_time_a_real_step() {
    let mut rng = Rng::new(31);
    let set = random_set(40, 37, 5, &mut rng);
    let (_, mut timed) = backends(&[37, 45, 7, 5], 20, &set, &set);
    let (_, mut plain) = backends(&[37, 45, 7, 5], 20, &set, &set);
    let shuffled: Vec<u32> = (0..40).rev().collect();
    for (order, first) in [
        (None, "sparse_forward layer 1"),
        (Some(&shuffled), "pixel_columns layer 1"),
    ] {
        if let Some(order) = order {
            timed.set_order(order).unwrap();
            plain.set_order(order).unwrap();
        }
        let times = timed.kernel_times(0..20).unwrap();
        plain.train_batch(0..20).unwrap();
        assert_eq!(timed.parameters().unwrap(), plain.parameters().unwrap());
        if context().timestamp_period.is_some() {
            let names: Vec<&str> = times.iter().map(|t| t.kernel.as_str()).collect();
            println!("{times:?}");
            assert_eq!(
                times.len(),
                timed.dispatches_per_step().dispatches,
                "{names:?}"
            );
            assert_eq!(names[0], first);
            assert!(
                names.contains(&"sparse_weights_update layer 1"),
                "{names:?}"
            );
            assert!(
                times
                    .iter()
                    .all(|t| t.seconds.is_finite() && t.seconds >= 0.0)
            );
        } else {
            assert!(times.is_empty(), "no timestamps, so no times: {times:?}");
        }
    }
}

/// In the file order, whole batches read the pixel lists built once at upload; in any other
/// order pixel_columns.wgsl builds each batch's in the step. Both must be the same lists, so
/// the steps must move the parameters to the same bits.
#[test]
fn cached_pixel_lists_should_match_per_step_ones() {
    let mut rng = Rng::new(41);
    let set = random_set(95, 37, 5, &mut rng);
    let (_, mut cached) = backends(&[37, 45, 7, 5], 30, &set, &set);
    let (_, mut per_step) = backends(&[37, 45, 7, 5], 30, &set, &set);
    // The file order but for its last two images: the first three batches hold the same rows
    // as in the file order, yet this is another order.
    let mut order: Vec<u32> = (0..95).collect();
    order.swap(93, 94);
    per_step.set_order(&order).unwrap();
    assert_eq!(
        cached.dispatches_per_step().dispatches + 1,
        per_step.dispatches_per_step().dispatches
    );
    for _epoch in 0..2 {
        for rows in batches(90, 30) {
            cached.train_batch(rows.clone()).unwrap();
            per_step.train_batch(rows).unwrap();
        }
    }
    assert_eq!(cached.parameters().unwrap(), per_step.parameters().unwrap());
}

/// Trains `epochs` epochs of `set` on `backend`, each shuffled as the trainer shuffles.
fn train_epochs(backend: &mut dyn Backend, set: &Dataset, batch: usize, epochs: Range<usize>) {
    for epoch in epochs {
        let order = mlp_core::train::epoch_order(9, epoch, set.len());
        backend.set_order(&order).unwrap();
        for rows in batches(set.len(), batch) {
            backend.train_batch(rows).unwrap();
        }
        backend.take_train_loss().unwrap();
    }
}

/// A checkpoint's parameters and optimiser state (Adam's moments and step count), put into a
/// backend built afresh, go on to the same bits as the backend that never stopped: on the
/// reference and on the GPU. A state of another optimiser's shape is refused.
#[test]
fn resumed_adam_training_should_match_uninterrupted_bits() {
    let mut rng = Rng::new(43);
    let set = random_set(90, 37, 5, &mut rng);
    let hyper = adam_relu_softmax(|_| {});
    let sizes = [37, 20, 9, 5];
    let (mut cpu, mut gpu) = backends_with(&sizes, 30, &set, &set, &hyper);
    let (mut cpu_resumed, mut gpu_resumed) = backends_with(&sizes, 30, &set, &set, &hyper);
    for (whole, resumed) in [
        (
            &mut cpu as &mut dyn Backend,
            &mut cpu_resumed as &mut dyn Backend,
        ),
        (&mut gpu, &mut gpu_resumed),
    ] {
        train_epochs(whole, &set, 30, 1..3);
        let state = whole.optimiser_state().unwrap();
        assert_eq!(state.steps, 6);
        assert_eq!((state.first.len(), state.second.len()), (3, 3));
        resumed
            .set_parameters(&whole.parameters().unwrap())
            .unwrap();
        resumed.set_optimiser_state(&state).unwrap();
        assert_eq!(resumed.optimiser_state().unwrap(), state);
        train_epochs(whole, &set, 30, 3..5);
        train_epochs(resumed, &set, 30, 3..5);
        assert_eq!(resumed.parameters().unwrap(), whole.parameters().unwrap());
        let plain = mlp_core::OptimiserState::new(
            Hyperparameters::seed().optimiser,
            &whole.parameters().unwrap(),
        );
        let refused = resumed.set_optimiser_state(&plain).unwrap_err();
        assert!(refused.to_string().contains("does not fit"), "{refused}");
    }
}

#[test]
fn weight_decay_steps_with_each_optimiser_should_match_reference() {
    for kind in [
        OptimiserKind::GradientDescent,
        OptimiserKind::Momentum,
        OptimiserKind::Adam,
    ] {
        let hyper = options(|h| {
            h.optimiser = Optimiser::with_defaults(kind);
            h.weight_decay = 0.01;
            if kind == OptimiserKind::Adam {
                h.learning_rate = 1e-3;
            }
        });
        lockstep(&format!("{kind} weight decay"), &hyper, 12);
    }
}

/// Dropout on every schedule: the same masks as the reference (the same hash of seed, step,
/// layer, row and unit), forward and back, with sigmoid (whose f' needs the undropped
/// activation) and with ReLU and Adam. The fused kernel drops its rows itself; the per-layer
/// schedules run dropout_forward.wgsl after each hidden layer's forward pass.
#[test]
fn dropout_steps_should_match_reference() {
    let dropout = Some(mlp_core::options::Dropout {
        rate: 0.3,
        seed: 12,
    });
    let sigmoid = options(|h| h.dropout = dropout);
    lockstep("dropout sigmoid", &sigmoid, 12);
    let relu = adam_relu_softmax(|h| h.dropout = dropout);
    lockstep("dropout relu adam", &relu, 12);
}

/// Input dropout on the GPU: sparse_forward.wgsl and sparse_weights_update.wgsl drop the same
/// pixels as the reference (layer 0 of the masks), in the file order (pixel lists built at
/// upload) and shuffled (pixel_columns.wgsl), with hidden dropout too.
#[test]
fn input_dropout_steps_should_match_reference() {
    let input = Some(mlp_core::options::Dropout {
        rate: 0.2,
        seed: 31,
    });
    let alone = options(|h| h.input_dropout = input);
    lockstep("input dropout", &alone, 12);
    let both = options(|h| {
        h.input_dropout = input;
        h.dropout = Some(mlp_core::options::Dropout { rate: 0.4, seed: 2 });
    });
    lockstep("input and hidden dropout", &both, 12);
    let (mut cpu, mut gpu) = {
        let mut rng = Rng::new(8);
        let set = random_set(60, 37, 5, &mut rng);
        let (cpu, gpu) = backends_with(&AWKWARD, 30, &set, &set, &alone);
        (cpu, gpu)
    };
    // The file order: whole batches read the lists built at upload.
    for rows in batches(60, 30) {
        let compared = lockstep_step(&mut cpu, &mut gpu, rows, PARITY);
        assert_rows_pass("input dropout, file order", &compared);
    }
}

/// Shifts on the GPU: sparse_forward.wgsl moves each row's lit pixels and pixel_columns.wgsl
/// finds the pixel each moved one came from, as the reference's `shift_images` moves a dense
/// A0. On images that are not square (so rows and columns cannot be confused), on every
/// schedule, with widths of 8 (where the unshifted forward pass reads W1 in pieces) and not,
/// and with input dropout drawn on the moved pixels.
#[test]
fn shifted_steps_should_match_reference() {
    let shift = Some(mlp_core::options::Shift {
        pixels: 2,
        seed: 12,
    });
    let alone = options(|h| h.shift = shift);
    for matmul in SCHEDULES {
        let what = format!("shifts, 5 x 8 ({matmul:?})");
        lockstep_images(&what, &alone, 8, matmul, ((5, 8), &[40, 45, 7, 3, 5]));
    }
    let with_dropout = options(|h| {
        h.shift = shift;
        h.input_dropout = Some(mlp_core::options::Dropout { rate: 0.3, seed: 2 });
    });
    let what = "shifts and input dropout, 9 x 7, widths of 8";
    let shape = ((9, 7), &[63, 16, 8, 5][..]);
    lockstep_images(what, &with_dropout, 8, DenseSchedule::Fused, shape);
}

/// In the file order a shifted step cannot read the pixel lists built at upload (they hold the
/// unmoved pixels): the step regroups its own, and still matches the reference.
#[test]
fn shifted_steps_in_the_file_order_should_match_reference() {
    let hyper = options(|h| h.shift = Some(mlp_core::options::Shift { pixels: 1, seed: 3 }));
    let mut rng = Rng::new(8);
    let set = Dataset {
        rows: 6,
        cols: 5,
        ..random_set(60, 30, 5, &mut rng)
    };
    let (mut cpu, mut gpu) = backends_with(&[30, 16, 5], 30, &set, &set, &hyper);
    for rows in batches(60, 30) {
        let compared = lockstep_step(&mut cpu, &mut gpu, rows, PARITY);
        assert_rows_pass("shifts, file order", &compared);
    }
}

/// WebGPU's default limits (`wgpu::Limits::default()`: 8 storage buffers per stage, 64 KiB
/// uniform bindings, 128 MiB storage bindings), which browsers enforce: every variant builds
/// within them and steps in lockstep with the reference, on awkward shapes and on a seed-shaped
/// network. Below them, at `Limits::downlevel_defaults()` (4 storage buffers per stage), no
/// variant fits: pixel_columns.wgsl alone reads 4 arrays and writes 2. That is refused with
/// the device's reason, never a panic.
#[test]
fn every_variant_fits_webgpu_default_limits_and_matches_reference() {
    let webgpu = || GpuContext::with_limits(None, Some(wgpu::Limits::default())).unwrap();
    let mut rng = Rng::new(17);
    let train = random_set(90, 37, 5, &mut rng);
    let seed_shaped = random_set(200, 784, 10, &mut rng);
    for variant in KernelVariant::all() {
        for (sizes, set) in [
            (&AWKWARD[..], &train),
            (&[784, 64, 32, 16, 10][..], &seed_shaped),
        ] {
            let hyper = Hyperparameters::seed();
            let parameters = Parameters::init(&Parameters::layer_sizes_of(sizes), Init::Normal, 5);
            let mut cpu = ReferenceBackend::new(parameters.clone(), &hyper, set, set).unwrap();
            let mut gpu =
                GpuBackend::with_variant(webgpu(), &parameters, &hyper, 30, (set, set), variant)
                    .unwrap_or_else(|e| panic!("{variant} at WebGPU's limits: {e}"));
            for rows in batches(set.len(), 30).take(3) {
                let compared = lockstep_step(&mut cpu, &mut gpu, rows, PARITY);
                assert_rows_pass(&format!("{variant} at WebGPU's limits"), &compared);
            }
        }
    }
    let downlevel =
        GpuContext::with_limits(None, Some(wgpu::Limits::downlevel_defaults())).unwrap();
    let parameters = Parameters::init(&Parameters::layer_sizes_of(&AWKWARD), Init::Normal, 5);
    let variant = KernelVariant::default_for("Cpu");
    let hyper = Hyperparameters::seed();
    let refused = GpuBackend::with_variant(
        downlevel,
        &parameters,
        &hyper,
        30,
        (&train, &train),
        variant,
    )
    .err()
    .expect("no variant fits 4 storage buffers per stage")
    .to_string();
    assert!(refused.contains("storage"), "{refused}");
}

/// A watched run reads the training loss within the epoch (`peek_train_loss`, every 50
/// batches): the epoch's loss is then the same, bit for bit, as a run that never peeked, on
/// the reference and on the GPU, and each peek is the sum so far.
#[test]
fn peeking_at_the_training_loss_changes_no_bit_of_it() {
    let mut rng = Rng::new(47);
    let set = random_set(60, 37, 5, &mut rng);
    let (mut reference, mut gpu) = backends(&[37, 9, 5], 6, &set, &set);
    let (mut reference_plain, mut gpu_plain) = backends(&[37, 9, 5], 6, &set, &set);
    let peeking: [&mut dyn Backend; 2] = [&mut reference, &mut gpu];
    let plain: [&mut dyn Backend; 2] = [&mut reference_plain, &mut gpu_plain];
    for (watched, unwatched) in peeking.into_iter().zip(plain) {
        let mut peeks = Vec::new();
        for rows in batches(60, 6) {
            watched.train_batch(rows.clone()).unwrap();
            unwatched.train_batch(rows).unwrap();
            peeks.push(watched.peek_train_loss().unwrap());
        }
        let (loss, plain_loss) = (
            watched.take_train_loss().unwrap(),
            unwatched.take_train_loss().unwrap(),
        );
        assert_eq!(loss, plain_loss);
        assert_eq!(peeks.last(), Some(&loss));
        assert!(peeks.windows(2).all(|w| w[0].batches + 1 == w[1].batches));
        assert_eq!(
            watched.peek_train_loss().unwrap().batches,
            0,
            "a take resets"
        );
    }
}

/// A predictor's backend is built once on images lit everywhere, then reads new images in
/// their place (`set_validation`): its outputs are those of a backend built on the new images,
/// on the reference and on the GPU; images of another count or size are refused.
#[test]
fn new_validation_images_read_as_a_backend_built_on_them() {
    let mut rng = Rng::new(53);
    let images = random_set(7, 37, 5, &mut rng);
    let capacity = mlp_core::predictor::Predictor::capacity_set(7, (1, 37));
    let (mut reference, mut gpu) = backends(&[37, 9, 5], 7, &images, &capacity);
    let (mut reference_fresh, mut gpu_fresh) = backends(&[37, 9, 5], 7, &images, &images);
    let built: [&mut dyn Backend; 2] = [&mut reference, &mut gpu];
    let fresh: [&mut dyn Backend; 2] = [&mut reference_fresh, &mut gpu_fresh];
    for (reused, fresh) in built.into_iter().zip(fresh) {
        reused.set_validation(&images).unwrap();
        assert_eq!(
            reused.validation_outputs().unwrap(),
            fresh.validation_outputs().unwrap(),
            "{}",
            reused.name()
        );
        assert_eq!(reused.evaluate().unwrap(), fresh.evaluate().unwrap());
        let err = reused
            .set_validation(&images.first(3))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("(7 of 37 pixels); these are 3 of 37 pixels"),
            "{err}"
        );
    }
}
