//! The fast CPU backend as a whole against the plain reference (`ReferenceBackend`): every
//! activation, delta and parameter of lockstep steps from identical parameters, on mostly-dark
//! random images of awkward widths, for the seed and for each option beyond it, with the
//! order shuffled and the rate changed between epochs. The tolerance is FAST_PARITY, whose
//! reason is written where it is defined.

mod common;

use common::{lockstep_step, start_epoch_on};
use mlp_core::backend::Backend;
use mlp_core::cpu::FAST_PARITY;
use mlp_core::rng::Rng;
use mlp_core::simd::InstructionSet;
use mlp_core::train::{batches, epoch_order};
use mlp_core::{
    Activation, CpuBackend, Dataset, Hyperparameters, Init, LayerSizes, Optimiser, OptimiserKind,
    Output, Parameters, Reduction, ReferenceBackend,
};

/// `count` images of `pixels` bytes, three in four 0 as in MNIST, labels below `classes`.
fn random_set(count: usize, pixels: usize, classes: usize, rng: &mut Rng) -> Dataset {
    Dataset {
        images: (0..count * pixels)
            .map(|_| {
                if rng.next_f64() < 0.25 {
                    (rng.next_u64() % 256) as u8
                } else {
                    0
                }
            })
            .collect(),
        labels: (0..count)
            .map(|_| (rng.next_u64() % classes as u64) as u8)
            .collect(),
        rows: 1,
        cols: pixels,
    }
}

/// Runs `steps` lockstep steps of batches of `batch` on both backends, shuffling and halving
/// the rate at each epoch when `shuffle`, and fails on the first row beyond FAST_PARITY.
fn lockstep(what: &str, sizes: &[usize], batch: usize, hyper: &Hyperparameters, shuffle: bool) {
    lockstep_images(what, (1, sizes[0]), sizes, batch, hyper, shuffle);
}

/// [`lockstep`] on images of `rows` x `cols` pixels (`sizes[0]` of them), on each instruction
/// set of the fast kernels.
fn lockstep_images(
    what: &str,
    (rows, cols): (usize, usize),
    sizes: &[usize],
    batch: usize,
    hyper: &Hyperparameters,
    shuffle: bool,
) {
    assert_eq!(rows * cols, sizes[0]);
    let mut rng = Rng::new(sizes.iter().sum::<usize>() as u64);
    let classes = *sizes.last().unwrap();
    let shaped = |set: Dataset| Dataset { rows, cols, ..set };
    let train = shaped(random_set(
        3 * batch + batch / 2,
        sizes[0],
        classes,
        &mut rng,
    ));
    let validation = shaped(random_set(7, sizes[0], classes, &mut rng));
    let init = match hyper.activation {
        Activation::Sigmoid => Init::Normal,
        Activation::Tanh => Init::Xavier,
        Activation::Relu => Init::He,
    };
    let layers = LayerSizes::new(sizes.to_vec(), sizes[0], classes).unwrap();
    let parameters = Parameters::init(&layers, init, 3);
    // Every instruction set this CPU has, each held to the reference.
    for simd in InstructionSet::available() {
        let mut reference =
            ReferenceBackend::new(parameters.clone(), hyper, &train, &validation).unwrap();
        let mut fast = CpuBackend::new(parameters.clone(), hyper, &train, &validation)
            .unwrap()
            .with_instruction_set(simd);
        let schedule: Vec<_> = batches(train.len(), batch).collect();
        let mut rate = hyper.learning_rate;
        for step in 0..2 * schedule.len() {
            let index = step % schedule.len();
            if index == 0 && shuffle {
                let order = epoch_order(4, step / schedule.len() + 1, train.len());
                start_epoch_on([&mut reference, &mut fast], &order, rate);
                rate /= 2.0;
            }
            let rows = schedule[index].clone();
            let compared = lockstep_step(&mut reference, &mut fast, rows, FAST_PARITY);
            for row in &compared {
                println!(
                    "{what} ({simd}) step {}: {:<28} by {:<48} {}",
                    step + 1,
                    row.name,
                    row.computed_by,
                    row.difference
                );
                assert!(
                    row.difference.passes(),
                    "{what} ({simd}) step {}: {} beyond {FAST_PARITY:?}",
                    step + 1,
                    row.name
                );
            }
        }
        let (expected, found) = (reference.evaluate().unwrap(), fast.evaluate().unwrap());
        assert_eq!(expected.predictions, found.predictions, "{what}");
        assert!(
            FAST_PARITY.accepts(found.loss(), expected.loss()),
            "{what}: validation loss"
        );
    }
}

fn options(change: impl FnOnce(&mut Hyperparameters)) -> Hyperparameters {
    let mut hyper = Hyperparameters::seed();
    change(&mut hyper);
    hyper
}

#[test]
fn seed_steps_should_match_reference() {
    // Widths that fill whole vector registers (64, 16), part of one (13) and one unit.
    lockstep(
        "seed 784-64-13-16-10",
        &[784, 64, 13, 16, 10],
        100,
        &Hyperparameters::seed(),
        false,
    );
    lockstep(
        "seed 37-1-5",
        &[37, 1, 5],
        9,
        &Hyperparameters::seed(),
        false,
    );
}

#[test]
fn momentum_tanh_shuffled_steps_should_match_reference() {
    let hyper = options(|h| {
        h.optimiser = Optimiser::with_defaults(OptimiserKind::Momentum);
        h.activation = Activation::Tanh;
        h.learning_rate = 0.005;
    });
    lockstep("momentum tanh 50-33-7", &[50, 33, 7], 20, &hyper, true);
}

#[test]
fn adam_relu_softmax_mean_shuffled_steps_should_match_reference() {
    let hyper = options(|h| {
        h.optimiser = Optimiser::with_defaults(OptimiserKind::Adam);
        h.activation = Activation::Relu;
        h.output = Output::SoftmaxCrossEntropy;
        h.reduction = Reduction::Mean;
        h.learning_rate = 1e-3;
    });
    lockstep(
        "adam relu softmax 100-40-24-10",
        &[100, 40, 24, 10],
        30,
        &hyper,
        true,
    );
}

/// Weight decay with each optimiser: L2 for gradient descent (where the fast first layer
/// leaves its fused descent, which skips unlit rows) and momentum, decoupled for Adam.
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
        lockstep(
            &format!("{kind} weight decay 50-33-7"),
            &[50, 33, 7],
            20,
            &hyper,
            true,
        );
    }
}

/// Dropout: the fast backend draws the reference's masks (the same hash of seed, step, layer,
/// row and unit) and goes through them forward and back, whatever the split between threads.
#[test]
fn dropout_steps_should_match_reference() {
    let dropout = Some(mlp_core::options::Dropout {
        rate: 0.3,
        seed: 77,
    });
    let relu = options(|h| {
        h.optimiser = Optimiser::with_defaults(OptimiserKind::Adam);
        h.activation = Activation::Relu;
        h.output = Output::SoftmaxCrossEntropy;
        h.reduction = Reduction::Mean;
        h.learning_rate = 1e-3;
        h.dropout = dropout;
    });
    lockstep(
        "dropout relu 100-40-24-10",
        &[100, 40, 24, 10],
        30,
        &relu,
        true,
    );
    let sigmoid = options(|h| h.dropout = dropout);
    lockstep(
        "dropout sigmoid 50-33-7-5",
        &[50, 33, 7, 5],
        21,
        &sigmoid,
        true,
    );
}

/// The masks keep a unit with probability 1 − p, the same unit the same way every time, and
/// differently at another step, layer, row, unit or seed.
#[test]
fn dropout_masks_keep_one_minus_p_and_depend_on_every_coordinate() {
    use mlp_core::cpu::dropout_keeps;
    let dropout = mlp_core::options::Dropout {
        rate: 0.25,
        seed: 3,
    };
    let kept = (0..100_000u32)
        .filter(|&i| dropout_keeps(dropout, 7, 1, (i / 100) as usize, (i % 100) as usize))
        .count();
    assert!((74_000..76_000).contains(&kept), "{kept} of 100000 kept");
    let mask = |d, step, layer, image| -> Vec<bool> {
        (0..256)
            .map(|unit| dropout_keeps(d, step, layer, image, unit))
            .collect()
    };
    let base = mask(dropout, 7, 1, 4);
    assert_eq!(base, mask(dropout, 7, 1, 4));
    for other in [
        mask(dropout, 8, 1, 4),
        mask(dropout, 7, 2, 4),
        mask(dropout, 7, 1, 5),
        mask(mlp_core::options::Dropout { seed: 4, ..dropout }, 7, 1, 4),
    ] {
        assert_ne!(base, other);
    }
}

/// Dropout changes the step: the same batch without it moves the parameters elsewhere, on
/// both CPU backends.
#[test]
fn dropout_changes_what_a_step_does() {
    let mut rng = Rng::new(5);
    let set = random_set(40, 30, 4, &mut rng);
    let parameters = Parameters::init(&Parameters::layer_sizes_of(&[30, 20, 4]), Init::Normal, 1);
    let with = options(|h| h.dropout = Some(mlp_core::options::Dropout { rate: 0.5, seed: 9 }));
    let without = options(|_| {});
    let mut after = Vec::new();
    for hyper in [&with, &without] {
        let mut reference = ReferenceBackend::new(parameters.clone(), hyper, &set, &set).unwrap();
        let mut fast = CpuBackend::new(parameters.clone(), hyper, &set, &set).unwrap();
        reference.train_batch(0..40).unwrap();
        fast.train_batch(0..40).unwrap();
        after.push((reference.parameters().unwrap(), fast.parameters().unwrap()));
    }
    assert_ne!(after[0].0, after[1].0);
    assert_ne!(after[0].1, after[1].1);
}

/// Input dropout: the fast backend drops the pixels of each batch's own sparse copy with the
/// reference's masks (layer 0), for the forward pass and W1's gradient, with and without
/// hidden dropout; and it changes what a step does.
#[test]
fn input_dropout_steps_should_match_reference() {
    let input = |seed| Some(mlp_core::options::Dropout { rate: 0.2, seed });
    let alone = options(|h| h.input_dropout = input(4));
    lockstep(
        "input dropout sigmoid 50-33-7",
        &[50, 33, 7],
        20,
        &alone,
        true,
    );
    let both = options(|h| {
        h.input_dropout = input(4);
        h.dropout = input(8);
        h.optimiser = Optimiser::with_defaults(OptimiserKind::Momentum);
    });
    lockstep(
        "input and hidden dropout 784-64-13-10",
        &[784, 64, 13, 10],
        100,
        &both,
        true,
    );

    let mut rng = Rng::new(6);
    let set = random_set(40, 30, 4, &mut rng);
    let parameters = Parameters::init(&Parameters::layer_sizes_of(&[30, 20, 4]), Init::Normal, 1);
    let mut after = Vec::new();
    for hyper in [&alone, &options(|_| {})] {
        let mut fast = CpuBackend::new(parameters.clone(), hyper, &set, &set).unwrap();
        fast.train_batch(0..40).unwrap();
        after.push(fast.parameters().unwrap());
    }
    assert_ne!(after[0], after[1]);
}

/// Shifts: the fast backend's sparse copy of each batch moves the pixels as the reference's
/// `shift_images` moves a dense A0, on images that are not square (so rows and columns cannot
/// be confused), alone and under input dropout (drawn on the moved pixels).
#[test]
fn shifted_steps_should_match_reference() {
    let shift = |pixels, seed| Some(mlp_core::options::Shift { pixels, seed });
    let alone = options(|h| h.shift = shift(2, 5));
    lockstep_images("shifts of 2, 6 x 9", (6, 9), &[54, 33, 7], 20, &alone, true);
    let with_dropout = options(|h| {
        h.shift = shift(3, 5);
        h.input_dropout = Some(mlp_core::options::Dropout { rate: 0.2, seed: 4 });
        h.optimiser = Optimiser::with_defaults(OptimiserKind::Adam);
        h.reduction = Reduction::Mean;
    });
    lockstep_images(
        "shifts of 3 and input dropout, 28 x 28",
        (28, 28),
        &[784, 64, 13, 10],
        100,
        &with_dropout,
        true,
    );
}

/// A shift changes the step: the same batch unshifted moves the parameters elsewhere.
#[test]
fn shifts_change_what_a_step_does() {
    let mut rng = Rng::new(6);
    let set = Dataset {
        rows: 5,
        cols: 6,
        ..random_set(40, 30, 4, &mut rng)
    };
    let parameters = Parameters::init(&Parameters::layer_sizes_of(&[30, 20, 4]), Init::Normal, 1);
    let shifted = options(|h| h.shift = Some(mlp_core::options::Shift { pixels: 1, seed: 3 }));
    let mut after = Vec::new();
    for hyper in [&shifted, &options(|_| {})] {
        let mut fast = CpuBackend::new(parameters.clone(), hyper, &set, &set).unwrap();
        fast.train_batch(0..40).unwrap();
        after.push(fast.parameters().unwrap());
    }
    assert_ne!(after[0], after[1]);
}

/// In the file order the fast backend regroups each batch by pixel once and keeps the lists
/// for the later epochs. A backend that kept them must end its second epoch on the same bits as
/// one that regroups that epoch afresh (built from the first's parameters and state after
/// epoch 1), with plain gradient descent (the fused descent) and with Adam (gradient, then
/// update).
#[test]
fn kept_file_order_pixel_lists_give_the_same_bits_as_fresh_ones() {
    let mut rng = Rng::new(23);
    let set = random_set(70, 45, 6, &mut rng);
    let sizes = Parameters::layer_sizes_of(&[45, 16, 6]);
    let adam = options(|h| h.optimiser = Optimiser::with_defaults(OptimiserKind::Adam));
    for hyper in [options(|_| {}), adam] {
        let parameters = Parameters::init(&sizes, Init::Normal, 2);
        let mut kept = CpuBackend::new(parameters.clone(), &hyper, &set, &set).unwrap();
        train_epoch(&mut kept, set.len(), 20);
        let mut fresh = CpuBackend::new(parameters, &hyper, &set, &set).unwrap();
        fresh.set_parameters(&kept.parameters().unwrap()).unwrap();
        fresh
            .set_optimiser_state(&kept.optimiser_state().unwrap())
            .unwrap();
        for backend in [&mut kept, &mut fresh] {
            train_epoch(backend, set.len(), 20);
        }
        assert_eq!(kept.parameters().unwrap(), fresh.parameters().unwrap());
    }
}

/// Every number is the same whatever the thread count: the step's rows and W1's rows are cut
/// between threads, never a sum, and the loss is summed after the rows are done. Two epochs
/// (shuffled for Adam, whose first layer's cut gives the last thread fewer pixels) on one
/// thread and on two, three and five end on the same parameters and losses, bit for bit.
#[test]
fn any_thread_count_gives_the_same_bits() {
    let mut rng = Rng::new(29);
    let set = random_set(90, 60, 10, &mut rng);
    let sizes = Parameters::layer_sizes_of(&[60, 48, 32, 10]);
    let adam = options(|h| {
        h.optimiser = Optimiser::with_defaults(OptimiserKind::Adam);
        h.activation = Activation::Relu;
        h.output = Output::SoftmaxCrossEntropy;
    });
    for (hyper, shuffle) in [(options(|_| {}), false), (adam, true)] {
        let run = |threads: usize| {
            let parameters = Parameters::init(&sizes, Init::He, 5);
            let backend = CpuBackend::new(parameters, &hyper, &set, &set).unwrap();
            let mut backend = backend.with_threads(threads);
            assert_eq!(backend.threads(), threads);
            for epoch in 1..=2 {
                if shuffle {
                    let order = epoch_order(4, epoch, set.len());
                    backend.set_order(&order).unwrap();
                }
                train_epoch(&mut backend, set.len(), 25);
            }
            let loss = backend.take_train_loss().unwrap();
            (backend.parameters().unwrap(), loss)
        };
        let one = run(1);
        for threads in [2, 3, 5] {
            assert_eq!(
                one,
                run(threads),
                "{threads} threads, {:?}",
                hyper.optimiser
            );
        }
    }
}

/// A run on two threads tries each plan in turn (layer 1 cut by hidden units, then by rows,
/// then one thread: `cpu/step_threads.rs`) and so moves W1 and its optimiser state into blocks
/// of units and back, also when the validation set is evaluated between epochs: its numbers
/// are still one thread's, bit for bit, with dropout and weight decay and with momentum.
#[test]
fn a_run_through_every_plan_gives_the_same_bits_as_one_thread() {
    let mut rng = Rng::new(37);
    let set = random_set(100, 50, 10, &mut rng);
    let sizes = Parameters::layer_sizes_of(&[50, 136, 24, 10]);
    let adam = options(|h| {
        h.optimiser = Optimiser::with_defaults(OptimiserKind::Adam);
        h.activation = Activation::Relu;
        h.output = Output::SoftmaxCrossEntropy;
        h.dropout = Some(mlp_core::options::Dropout { rate: 0.2, seed: 5 });
        h.weight_decay = 0.01;
    });
    let momentum = options(|h| h.optimiser = Optimiser::with_defaults(OptimiserKind::Momentum));
    for hyper in [adam, momentum] {
        let run = |threads: usize| {
            let parameters = Parameters::init(&sizes, Init::He, 6);
            let backend = CpuBackend::new(parameters, &hyper, &set, &set).unwrap();
            let mut backend = backend.with_threads(threads);
            let mut evaluations = Vec::new();
            // 20 steps an epoch: 64 steps on the first plan, then the first trial's three
            // plans of 36 steps each, then the chosen one.
            for epoch in 1..=10 {
                backend
                    .set_order(&epoch_order(8, epoch, set.len()))
                    .unwrap();
                train_epoch(&mut backend, set.len(), 5);
                evaluations.push(backend.evaluate().unwrap());
            }
            let state = backend.optimiser_state().unwrap();
            let loss = backend.take_train_loss().unwrap();
            (backend.parameters().unwrap(), state, loss, evaluations)
        };
        assert_eq!(run(1), run(2), "{:?}", hyper.optimiser);
    }
}

/// Parameters set in the middle of a run (as a resumed checkpoint sets them) are the ones the
/// next steps use everywhere, the transposed weights of the deltas included: a backend that
/// trained from other parameters and was then given them ends on the same bits as one built
/// with them.
#[test]
fn parameters_set_mid_run_give_the_same_bits_as_a_backend_built_with_them() {
    let mut rng = Rng::new(31);
    let set = random_set(60, 40, 5, &mut rng);
    let sizes = Parameters::layer_sizes_of(&[40, 24, 16, 5]);
    let hyper = options(|h| h.optimiser = Optimiser::with_defaults(OptimiserKind::Adam));
    let given = Parameters::init(&sizes, Init::Normal, 7);
    let mut built = CpuBackend::new(given.clone(), &hyper, &set, &set).unwrap();
    let mut moved = CpuBackend::new(
        Parameters::init(&sizes, Init::Normal, 8),
        &hyper,
        &set,
        &set,
    )
    .unwrap();
    train_epoch(&mut moved, set.len(), 20);
    moved.set_parameters(&given).unwrap();
    moved
        .set_optimiser_state(&built.optimiser_state().unwrap())
        .unwrap();
    for backend in [&mut built, &mut moved] {
        train_epoch(backend, set.len(), 20);
    }
    assert_eq!(built.parameters().unwrap(), moved.parameters().unwrap());
}

/// One epoch of `rows` training images in batches of `batch`, in the backend's order.
fn train_epoch(backend: &mut CpuBackend, rows: usize, batch: usize) {
    for rows in batches(rows, batch) {
        backend.train_batch(rows).unwrap();
    }
}
