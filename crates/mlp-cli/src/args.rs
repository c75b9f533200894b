//! The command line: options, their checks, and the subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mlp_core::LayerSizes;
use mlp_core::data::{DataFormat, IMAGE_SIDE, PictureOptions, PictureStyle};
use mlp_core::options::{Activation, Init, OptimiserKind, Output, Reduction, Schedule};

pub use crate::values::{HeldOut, UsageError};
use crate::values::{
    KernelChoice, accuracy_target, choice, class_count, dropout_rate, held_out, kernel,
    layer_sizes, learning_rate, positive_usize, renamed_matmul, serve_threads, shift_pixels,
    unit_interval, weight_decay,
};

#[derive(Debug, Parser)]
#[command(
    name = "mlp-cli",
    version,
    about = "Trains the seed MLP (784-64-32-16-10, sigmoid, MSE, plain gradient descent) on MNIST",
    long_about = "Trains the seed MLP of docs/SEED.md on MNIST on the CPU reference or a GPU.\n\
                  With no subcommand it trains: `mlp-cli --backend cpu`.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub train: TrainArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train and print per-epoch metrics (the default command).
    Train(TrainArgs),
    /// Measure seconds per training epoch (validation excluded) and print the figures.
    Bench(BenchArgs),
    /// Download the four MNIST files into the data directory and verify them.
    Download(DownloadArgs),
    /// List the GPU adapters wgpu can see, with backend and type.
    Devices,
    /// Run the plain reference, the fast CPU backend and the GPU in lockstep from identical
    /// parameters and compare each fast one's activations, deltas and parameters with the
    /// reference's; exits non-zero above the tolerance.
    Check(CheckArgs),
    /// Loss, accuracy and confusion matrix of a saved model on the MNIST test set.
    Eval(EvalArgs),
    /// The digit in each picture (PNG or JPEG), with the top three classes, by a saved model.
    Predict(PredictArgs),
    /// Write a saved model as ONNX (opset 17), for onnxruntime, a browser or a phone.
    Export(ExportArgs),
    /// Serve a page to draw a digit on and watch a saved model read it, with a JSON API.
    Serve(ServeArgs),
    /// Time every GPU kernel variant for the run's network and batch on this adapter, and
    /// keep the fastest for later runs (see --kernel and --kernel-cache).
    Tune(TuneArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// ndarray in f32, the first layer's products on the widest vector instructions the CPU
    /// has (AVX-512, AVX2, else scalar; MLP_SIMD=avx2 or scalar narrows them).
    Cpu,
    /// WGSL compute shaders through wgpu, on the high-performance adapter or --adapter.
    Gpu,
}

#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// The data set: mnist, fashion-mnist or kmnist (Kuzushiji-MNIST), each downloaded where
    /// missing and checked file by file against its published SHA-256; or emnist-letters (26
    /// classes) or emnist-balanced (47), read from the files of NIST's zip, which has no
    /// published checksums of them [default: mnist].
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetName>,
    /// Directory holding the data set's four files, raw or .gz (.gz for kmnist, whose
    /// checksums are of those) [default: MNIST_DIR, else data/mnist; data/fashion-mnist,
    /// data/kmnist, data/emnist for the others].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Load any data set in MNIST's IDX layout and file names: no SHA-256 checks; the image
    /// size and counts come from the headers, the classes from the labels (or --classes).
    #[arg(long, conflicts_with = "dataset")]
    pub any_idx: bool,
    /// Never download missing files; fail with instructions instead.
    #[arg(long)]
    pub no_download: bool,
    /// The files' layout, sizes and classes from the files for all but idx: idx (MNIST's four
    /// files); csv (`train.csv` and `test.csv` of --data-dir in Kaggle's Digit Recognizer
    /// layout); numpy (an .npz with x_train, y_train, x_test, y_test as Keras' mnist.npz, or
    /// those four as .npy files); folders (PNG or JPEG pictures in a folder per class, the
    /// folder names the class names, under train/ and test/ where both are there). Where there
    /// is no labelled test set, give --validation [default: idx].
    #[arg(long = "format", value_enum, conflicts_with_all = ["dataset", "any_idx"])]
    pub layout: Option<Layout>,
    /// With --format folders: the side of the square each picture becomes [default: 28].
    #[arg(long, value_name = "N")]
    pub image_size: Option<usize>,
    /// With --format folders: prepare each picture as MNIST's digits were (ink made bright on
    /// black, cropped, fitted to a box of 20/28 of the side, centred by mass), as `predict`
    /// does with a photo; without it, pictures keep their grey levels and are only resized.
    #[arg(long)]
    pub digit_style: bool,
    /// With --format folders: leave out pictures that cannot be read, counting them in the
    /// run's first lines, rather than stop at the first.
    #[arg(long)]
    pub skip_bad: bool,
}

/// How the data's files are laid out (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Layout {
    Idx,
    Csv,
    Numpy,
    Folders,
}

/// The data sets `--dataset` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DatasetName {
    Mnist,
    FashionMnist,
    Kmnist,
    EmnistLetters,
    EmnistBalanced,
}

impl DataArgs {
    /// Which files to load and how they are checked.
    pub fn format(&self) -> DataFormat {
        match self.layout {
            Some(Layout::Csv) => return DataFormat::Csv,
            Some(Layout::Numpy) => return DataFormat::Numpy,
            Some(Layout::Folders) => return DataFormat::Folders(self.picture_options()),
            Some(Layout::Idx) | None => {}
        }
        match (self.any_idx, self.dataset) {
            (true, _) => DataFormat::AnyIdx,
            (false, Some(DatasetName::FashionMnist)) => DataFormat::FashionMnist,
            (false, Some(DatasetName::Kmnist)) => DataFormat::Kmnist,
            (false, Some(DatasetName::EmnistLetters)) => DataFormat::EmnistLetters,
            (false, Some(DatasetName::EmnistBalanced)) => DataFormat::EmnistBalanced,
            (false, _) => DataFormat::Mnist,
        }
    }

    /// How --format folders reads pictures.
    pub fn picture_options(&self) -> PictureOptions {
        PictureOptions {
            side: self.image_size.unwrap_or(IMAGE_SIDE),
            style: if self.digit_style {
                PictureStyle::Digit
            } else {
                PictureStyle::Plain
            },
            skip_bad: self.skip_bad,
        }
    }

    /// Fails where an option is given that the layout does not use, or a layout that needs
    /// --data-dir lacks it.
    pub fn check(&self) -> Result<(), String> {
        let folders = self.layout == Some(Layout::Folders);
        let given = [
            (self.image_size.is_some(), "--image-size"),
            (self.digit_style, "--digit-style"),
            (self.skip_bad, "--skip-bad"),
        ];
        if let Some((_, name)) = given.iter().find(|(given, _)| *given && !folders) {
            return Err(format!("{name} applies to --format folders only"));
        }
        let own_files = matches!(self.layout, Some(Layout::Numpy | Layout::Folders));
        if own_files && self.data_dir.is_none() {
            return Err(format!(
                "--format {} needs --data-dir: the folder (or .npz file) that holds the data",
                if folders { "folders" } else { "numpy" }
            ));
        }
        Ok(())
    }

    /// Where the files are: --data-dir, else the data set's usual place.
    pub fn dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        match self.format() {
            DataFormat::FashionMnist => PathBuf::from("data/fashion-mnist"),
            DataFormat::Kmnist => PathBuf::from("data/kmnist"),
            DataFormat::EmnistLetters | DataFormat::EmnistBalanced => PathBuf::from("data/emnist"),
            _ => std::env::var_os("MNIST_DIR")
                .map_or_else(|| PathBuf::from("data/mnist"), PathBuf::from),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// A model saved by `mlp-cli --save FILE`.
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// The ONNX file to write: input `pixels` float32 [N, inputs] (each byte / 255), outputs
    /// `scores` float32 [N, classes] and `class` int64 [N], class names in its metadata.
    #[arg(long, value_name = "FILE")]
    pub onnx: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct DownloadArgs {
    /// The data set to fetch: mnist, fashion-mnist or kmnist [default: mnist].
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetName>,
    /// Directory to put the four files in (made if missing) [default: as for training].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl DownloadArgs {
    /// The same choice as a training run's data options.
    pub fn data(&self) -> DataArgs {
        DataArgs {
            dataset: self.dataset,
            data_dir: self.data_dir.clone(),
            any_idx: false,
            no_download: false,
            layout: None,
            image_size: None,
            digit_style: false,
            skip_bad: false,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct NetworkArgs {
    /// Where to compute [default: cpu].
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    /// A whole configuration: `seed` is docs/SEED.md exactly (784-64-32-16-10 sigmoid, MSE,
    /// summed gradients, N(0,1) weights, gradient descent at 0.01, batch 100, 30 epochs, file
    /// order); `modern` is 784-256-128-10 ReLU, softmax + cross-entropy, mean gradients, He
    /// weights, Adam at 1e-3 with a cosine schedule, batch 100, 20 epochs, shuffled; `best` is
    /// modern's training on 784-512-512-10 with dropout 0.3, shifts of up to 2 pixels, 60
    /// epochs and the last 5000 training images held out for validation (99.2 % on MNIST);
    /// `fast` is 784-192-10 trained modern's way at lr 0.005 for 4 epochs (98.1-98.3 % in
    /// about 1.2 s on two cores); `minute` is best's with batch 200 at lr 0.002, dropout 0.2,
    /// 27 epochs (99.01-99.11 % in under 45 s on two cores).
    /// Every option below overrides the preset's value.
    #[arg(long, value_enum, default_value_t = PresetName::Seed)]
    pub preset: PresetName,
    /// Images per step [seed, modern, best, fast: 100, minute: 200].
    #[arg(long, value_parser = positive_usize)]
    pub batch_size: Option<usize>,
    /// Learning rate of the first epoch [seed: 0.01, modern, best: 0.001, fast: 0.005,
    /// minute: 0.002].
    #[arg(long, value_parser = learning_rate, allow_negative_numbers = true)]
    pub lr: Option<f32>,
    /// Units per layer, input first; must start at the image size (784 for MNIST) and end at
    /// the number of classes (10) [seed: 784,64,32,16,10, modern: 784,256,128,10,
    /// best, minute: 784,512,512,10, fast: 784,192,10].
    #[arg(long, value_parser = layer_sizes)]
    pub layers: Option<LayerSizes>,
    /// Hidden layers' activation: sigmoid, relu or tanh [seed: sigmoid, modern, best: relu].
    #[arg(long, value_parser = choice::<Activation>)]
    pub activation: Option<Activation>,
    /// Output and loss: sigmoid-mse (sigmoid outputs, squared error) or softmax-ce (softmax,
    /// cross-entropy) [seed: sigmoid-mse, modern, best: softmax-ce].
    #[arg(long, value_parser = choice::<Output>)]
    pub output: Option<Output>,
    /// How a batch's gradients combine: sum or mean [seed: sum, modern, best: mean].
    #[arg(long, value_parser = choice::<Reduction>)]
    pub reduction: Option<Reduction>,
    /// Initial weights: normal (N(0,1)), xavier (N(0, 2/(in+out))) or he (N(0, 2/in))
    /// [seed: normal, modern, best: he].
    #[arg(long, value_parser = choice::<Init>)]
    pub weight_init: Option<Init>,
    /// gd (plain gradient descent), momentum or adam [seed: gd, modern, best: adam].
    #[arg(long, value_parser = choice::<OptimiserKind>)]
    pub optimiser: Option<OptimiserKind>,
    /// Momentum μ, with --optimiser momentum (default 0.9).
    #[arg(long, value_parser = unit_interval)]
    pub momentum: Option<f32>,
    /// Adam's β1 and β2, with --optimiser adam (defaults 0.9 and 0.999).
    #[arg(long, value_parser = unit_interval)]
    pub beta1: Option<f32>,
    #[arg(long, value_parser = unit_interval)]
    pub beta2: Option<f32>,
    /// λ of the weights' decay (biases are not decayed): L2 for gd and momentum, decoupled
    /// (AdamW) for adam [all presets: 0].
    #[arg(long, value_name = "LAMBDA", value_parser = weight_decay, allow_negative_numbers = true)]
    pub weight_decay: Option<f32>,
    /// Drop each hidden unit with this probability while training (inverted dropout; the
    /// masks are drawn from --seed, the step, the layer, the batch row and the unit) [best:
    /// 0.3, minute: 0.2, the others none].
    #[arg(long, value_name = "P", value_parser = dropout_rate, allow_negative_numbers = true)]
    pub dropout: Option<f32>,
    /// Drop each input pixel with this probability while training, as --dropout does the
    /// hidden units [none].
    #[arg(long, value_name = "P", value_parser = dropout_rate, allow_negative_numbers = true)]
    pub input_dropout: Option<f32>,
    /// Move each training image by up to this many pixels along each axis, anew each epoch
    /// (drawn from --seed, the step and the batch row; what moves past the edge is lost)
    /// [best, minute: 2, the others none].
    #[arg(long, value_name = "PIXELS", value_parser = shift_pixels, allow_negative_numbers = true)]
    pub shift: Option<u32>,
    /// Learning rate over the epochs: constant, step (halved each quarter of the run) or
    /// cosine (down to 0 after the last epoch) [seed: constant, modern, best: cosine].
    #[arg(long, value_parser = choice::<Schedule>)]
    pub schedule: Option<Schedule>,
    /// Read the training set in a new order each epoch, drawn from --seed [every preset's
    /// choice but the seed's].
    #[arg(long, conflicts_with = "no_shuffle")]
    pub shuffle: bool,
    /// Read the training set in the file's order every epoch [the seed's choice].
    #[arg(long)]
    pub no_shuffle: bool,
    /// Seed of the portable generator that draws the initial weights and the shuffles.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Start from the parameters of this saved model instead of random ones; its layer sizes,
    /// activation and output must match this run's.
    #[arg(long, value_name = "FILE", conflicts_with = "weight_init")]
    pub init: Option<PathBuf>,
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// Classes the network tells apart [default: 10 for MNIST and Fashion-MNIST; one more
    /// than the largest label for --any-idx; at most 256, as labels are bytes].
    #[arg(long, value_parser = class_count)]
    pub classes: Option<usize>,
    /// Train on the first N training images only (quick runs).
    #[arg(long, value_parser = positive_usize)]
    pub limit: Option<usize>,
    /// Hold the last N training images (or a fraction, such as 0.1, of them) out of training
    /// and validate on them each epoch; the test set is then evaluated once, at the end, on
    /// the epoch of lowest validation loss. They are held out before --limit applies
    /// [best: 5000; the others validate on the test set, as the seed notebook does].
    #[arg(long, value_name = "N", value_parser = held_out)]
    pub validation: Option<HeldOut>,
    #[command(flatten)]
    pub data: DataArgs,
}

impl NetworkArgs {
    /// The training images held out for validation: --validation, else the preset's.
    pub fn held_out(&self) -> Option<HeldOut> {
        self.validation.or(match self.preset {
            PresetName::Best | PresetName::Minute => Some(HeldOut::Count(5000)),
            PresetName::Seed | PresetName::Modern | PresetName::Fast => None,
        })
    }

    /// Where to compute: --backend, the CPU where it is not given.
    pub fn backend(&self) -> BackendKind {
        self.backend.unwrap_or(BackendKind::Cpu)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PresetName {
    /// docs/SEED.md exactly.
    Seed,
    /// A plain MLP trained the way people train one today.
    Modern,
    /// The most accurate MLP here: wider, with dropout and shifted images.
    Best,
    /// 98 % in the fewest seconds: one hidden layer of 192, modern's training at lr 0.005, 4
    /// epochs.
    Fast,
    /// 99 % in under a minute: best's network and training with batch 200 at lr 0.002,
    /// dropout 0.2, 27 epochs.
    Minute,
}

#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Passes over the training set [seed: 30, modern: 20, best: 60, fast: 4, minute: 27].
    #[arg(long, value_parser = positive_usize)]
    pub epochs: Option<usize>,
    /// Write one JSON object per epoch, one per line, to this file.
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Save the trained parameters and the run's options to this file (safetensors).
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Draw the loss and accuracy curves, a grid of validation digits and the confusion
    /// matrix as PNG files in this directory.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// Serve a page that shows the run as it trains, on this loopback address (port 0: any
    /// free port): the loss curves, the first layer's weights, the confusion matrix, a canvas
    /// to draw a digit for the latest model to read, Stop and Save now [127.0.0.1:8080].
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8080")]
    pub watch: Option<std::net::SocketAddr>,
    /// Print only the summary: no progress bar and no line per epoch.
    #[arg(long, short)]
    pub quiet: bool,
    /// Stop when the validation loss has not improved for this many epochs (needs
    /// --validation); --save then keeps the epoch of lowest validation loss.
    #[arg(long, value_name = "PATIENCE", value_parser = positive_usize)]
    pub early_stopping: Option<usize>,
    /// After every epoch, write everything the run needs to go on (parameters, optimiser
    /// state, epoch, metrics, options) to DIR/checkpoint.safetensors, replacing the last one
    /// atomically.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// Go on from the checkpoint in DIR (and keep writing checkpoints there), with the same
    /// options as the run that wrote it: the run ends as if it had never stopped.
    #[arg(long, value_name = "DIR", conflicts_with = "init")]
    pub resume: Option<PathBuf>,
    #[command(flatten)]
    pub network: NetworkArgs,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Epochs to time; the first one also runs, untimed, as a warm-up.
    #[arg(long, default_value_t = 3, value_parser = positive_usize)]
    pub epochs: usize,
    /// Then time each kernel of every step of one more epoch on the device (GPU timestamps,
    /// where the adapter has them): where a step's time goes.
    #[arg(long)]
    pub profile: bool,
    /// Instead, train the run's whole schedule (the preset's epochs, or --train-epochs) until
    /// the validation accuracy reaches this fraction at the end of an epoch, and report the
    /// seconds of training it took (validation excluded), the epochs, and the test accuracy of
    /// the model at that epoch. Hold validation images out with --validation.
    #[arg(long, value_name = "FRACTION", value_parser = accuracy_target, conflicts_with = "profile")]
    pub to_accuracy: Option<f64>,
    /// With --to-accuracy: the epochs of the schedule trained [default: the preset's].
    #[arg(long, value_name = "N", value_parser = positive_usize, requires = "to_accuracy")]
    pub train_epochs: Option<usize>,
    #[command(flatten)]
    pub network: NetworkArgs,
}

#[derive(Debug, Clone, Args)]
pub struct TuneArgs {
    /// Training steps timed for each variant, after a few untimed ones.
    #[arg(long, default_value_t = 30, value_parser = positive_usize)]
    pub steps: usize,
    #[command(flatten)]
    pub network: NetworkArgs,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Training steps to run in lockstep.
    #[arg(long, default_value_t = 300, value_parser = positive_usize)]
    pub steps: usize,
    /// Compare every N-th step (and the last).
    #[arg(long, default_value_t = 50, value_parser = positive_usize)]
    pub every: usize,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Where a saved model runs.
#[derive(Debug, Clone, Args)]
pub struct DeviceArgs {
    /// Where to compute.
    #[arg(long, value_enum, default_value_t = BackendKind::Cpu)]
    pub backend: BackendKind,
    #[command(flatten)]
    pub gpu: GpuArgs,
}

/// Which GPU, and which of its kernels, with --backend gpu.
#[derive(Debug, Clone, Args)]
pub struct GpuArgs {
    /// With --backend gpu: the adapter whose name contains this text (see `mlp-cli devices`).
    #[arg(long)]
    pub adapter: Option<String>,
    /// With --backend gpu: the kernels to run, whatever was tuned. A schedule of the layers
    /// after the first, with the adapter's default reads: fused (two dispatches per step for
    /// all of them, one invocation per batch row), registers (kernels per layer, 4 x 4 blocks
    /// in registers), tiled (kernels per layer, forward products in 16 x 16 workgroup-memory
    /// tiles), whole (the whole step, layer 1 included, in two dispatches) or multistep (runs
    /// of up to 256 whole steps in one dispatch of one workgroup); or a whole variant, the
    /// schedule and where W1, D1 and the dense parameters are read from: fused-uniform,
    /// fused-storage, registers-uniform, registers-storage, tiled-uniform, tiled-storage,
    /// whole-storage or multistep-storage [default: the variant tuned on this adapter for the
    /// network and batch, timed on the first run that has none].
    #[arg(long, value_parser = kernel)]
    pub kernel: Option<KernelChoice>,
    /// The old name of --kernel's schedules: refused, naming --kernel.
    #[arg(long, hide = true, value_parser = renamed_matmul)]
    pub matmul: Option<String>,
    /// With --backend gpu: the file that keeps the kernels tuned per adapter, driver, network
    /// and batch [default: MLP_KERNEL_CACHE, else ~/.cache/mlp/kernels.json (or under
    /// XDG_CACHE_HOME); MLP_KERNEL_CACHE=off keeps none and never tunes].
    #[arg(long, value_name = "FILE")]
    pub kernel_cache: Option<PathBuf>,
}

impl GpuArgs {
    /// Refuses GPU options given to a run on another backend, where they would do nothing.
    pub fn check_for(&self, backend: BackendKind) -> Result<(), String> {
        if backend == BackendKind::Gpu {
            return Ok(());
        }
        if self.adapter.is_some() {
            return Err("--adapter chooses a GPU: it needs --backend gpu".into());
        }
        let given = [
            ("--kernel", self.kernel.is_some()),
            ("--kernel-cache", self.kernel_cache.is_some()),
        ];
        match given.iter().find(|(_, given)| *given) {
            Some((flag, _)) => Err(format!(
                "{flag} chooses GPU kernels: it needs --backend gpu"
            )),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// A model saved by `mlp-cli --save FILE`.
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Clone, Args)]
#[command(group = clap::ArgGroup::new("input").required(true).multiple(true).args(["images", "index", "csv"]))]
pub struct PredictArgs {
    /// A model saved by `mlp-cli --save FILE`.
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// Pictures of one digit each: dark on light or light on dark, any size.
    #[arg(value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// Predict the N-th MNIST test image (from 0) instead, and show its label.
    #[arg(long, value_name = "N")]
    pub index: Option<usize>,
    /// Predict every image of a CSV file in Kaggle's Digit Recognizer layout (a header
    /// `label,pixel0,…` or `pixel0,…`, then one image a line), as `ImageId,Label` lines.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["images", "index"])]
    pub csv: Option<std::path::PathBuf>,
    /// With --csv: write the `ImageId,Label` lines to this file (Kaggle's submission) instead
    /// of standard output.
    #[arg(long, value_name = "FILE", requires = "csv")]
    pub out: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// A model saved by `mlp-cli --save FILE`.
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// Where to listen (port 0: any free port); a loopback address unless --allow-remote.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// Let --addr be reachable from other machines (0.0.0.0, a LAN address).
    #[arg(long)]
    pub allow_remote: bool,
    /// Also answer requests whose Host header is NAME (the machine's name on the network);
    /// localhost, 127.0.0.1, [::1] and the --addr address are always answered.
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
    /// Requests computed at once, 1 to 64: each decodes a picture (up to about 350 MB for a
    /// 16-megapixel one) and runs the model.
    #[arg(long, default_value_t = 4, value_parser = serve_threads)]
    pub threads: usize,
    #[command(flatten)]
    pub device: DeviceArgs,
}
