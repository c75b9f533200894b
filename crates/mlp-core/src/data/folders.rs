//! Pictures in a folder per class, as torchvision's `ImageFolder` and Keras'
//! `image_dataset_from_directory` read them: `DIR/<class>/<picture>`, or `DIR/train/<class>/…`
//! and `DIR/test/<class>/…` when both are there. The classes are the training folder's
//! subfolders, their names in sorted order (class 0 first); PNG and JPEG pictures count, other
//! files and nested folders are left out and said so in the notes.
//!
//! The pictures of a set are taken in the order of their file names across its classes (ties
//! by class), so a set written with numbered names (`00042.png`) loads in its original order.
//! Each becomes `side` x `side` grey levels, 0 = black ... 255 = white, either plainly (the
//! picture's grey levels, resized by area averaging where its size differs) or as
//! [`PictureStyle::Digit`] (MNIST's own preparation, as `predict` applies to a photo).
//! Decoding is spread over the cores a batch of pictures at a time, and only the small result
//! of each is kept.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use rayon::prelude::*;

use super::{DataError, Dataset, Mnist};
use crate::digit;

/// The largest picture a folder may hold: a 16-megapixel photo. Larger ones are refused from
/// their header, before they are decoded.
pub const MAX_PICTURE_PIXELS: u64 = 16_000_000;

/// The largest side a picture is brought to (a 512 x 512 input is 262,144 pixels).
pub const MAX_SIDE: usize = 512;

/// Pictures decoded together, one per core at a time: bounds what is held decoded at once.
const BATCH: usize = 256;

/// How pictures become a network's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PictureStyle {
    /// The picture's grey levels as they are, resized to the side.
    #[default]
    Plain,
    /// MNIST's preparation: the ink made bright on black, cropped, fitted to a box of 20/28 of
    /// the side and centred by its mass ([`digit::mnist_like_sized`]).
    Digit,
}

impl PictureStyle {
    /// The name a model records.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Digit => "digit",
        }
    }

    /// The style of `name`, as [`Self::name`] writes it.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Plain, Self::Digit]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// How a folder of pictures is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PictureOptions {
    /// The side of the square each picture becomes (28 by default).
    pub side: usize,
    pub style: PictureStyle,
    /// Leave out a picture that cannot be read, counting it in the notes, rather than fail.
    pub skip_bad: bool,
}

impl Default for PictureOptions {
    fn default() -> Self {
        Self {
            side: super::IMAGE_SIDE,
            style: PictureStyle::Plain,
            skip_bad: false,
        }
    }
}

/// One picture file and its class.
struct Picture {
    path: PathBuf,
    class: usize,
}

/// The training and test sets of the folders of `dir` (see the module's documentation).
pub fn load_folders(dir: &Path, options: PictureOptions) -> Result<Mnist, DataError> {
    if options.side == 0 || options.side > MAX_SIDE {
        return Err(folder_error(
            dir,
            format!("the picture side {} is outside 1..{MAX_SIDE}", options.side),
        ));
    }
    if !dir.is_dir() {
        return Err(folder_error(
            dir,
            "is not a folder: give the folder that holds a folder of pictures per class".into(),
        ));
    }
    let (train_dir, test_dir) = match (dir.join("train"), dir.join("test")) {
        (train, test) if train.is_dir() && test.is_dir() => (train, Some(test)),
        _ => (dir.to_path_buf(), None),
    };
    let class_names = subfolders(&train_dir)?;
    if class_names.is_empty() {
        return Err(folder_error(
            &train_dir,
            "holds no class folders: put each class's pictures in a folder of its own \
             (DIR/cat/1.png, DIR/dog/2.png), or DIR/train/… and DIR/test/…"
                .into(),
        ));
    }
    if class_names.len() > 256 {
        return Err(folder_error(
            &train_dir,
            format!(
                "holds {} class folders; at most 256 classes",
                class_names.len()
            ),
        ));
    }
    let mut notes = Vec::new();
    let train = read_set(&train_dir, &class_names, options, &mut notes)?;
    let test = match &test_dir {
        Some(test_dir) => {
            check_classes(test_dir, &train_dir, &class_names)?;
            read_set(test_dir, &class_names, options, &mut notes)?
        }
        None => Dataset {
            images: Vec::new(),
            labels: Vec::new(),
            rows: options.side,
            cols: options.side,
        },
    };
    Ok(Mnist {
        train,
        test,
        class_names: Some(class_names),
        notes,
    })
}

fn folder_error(path: &Path, problem: String) -> DataError {
    DataError::Folder {
        path: path.to_path_buf(),
        problem,
    }
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The names of the subfolders of `dir`, sorted, hidden ones (".git") left out.
fn subfolders(dir: &Path) -> Result<Vec<String>, DataError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if path.is_dir() && !name.starts_with('.') {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Fails where `test_dir` has a class folder that the training folder lacks.
fn check_classes(test_dir: &Path, train_dir: &Path, classes: &[String]) -> Result<(), DataError> {
    match subfolders(test_dir)?
        .into_iter()
        .find(|name| !classes.contains(name))
    {
        Some(stranger) => Err(folder_error(
            &test_dir.join(&stranger),
            format!(
                "is a class that {} lacks: the test classes must be among the training ones",
                train_dir.display()
            ),
        )),
        None => Ok(()),
    }
}

/// The pictures of the class folders of `dir`, decoded; what was left out goes to `notes`.
fn read_set(
    dir: &Path,
    classes: &[String],
    options: PictureOptions,
    notes: &mut Vec<String>,
) -> Result<Dataset, DataError> {
    let pictures = list_pictures(dir, classes, notes)?;
    let pixels = options.side * options.side;
    // Room for a batch: the set grows with what decodes, not with how many files there are.
    let room = pictures.len().min(BATCH);
    let mut set = Dataset {
        images: Vec::with_capacity(room * pixels),
        labels: Vec::with_capacity(room),
        rows: options.side,
        cols: options.side,
    };
    let mut skipped = Vec::new();
    for batch in pictures.chunks(BATCH) {
        let decoded: Vec<_> = batch
            .par_iter()
            .map(|picture| input_pixels(&picture.path, options))
            .collect();
        for (picture, pixels) in batch.iter().zip(decoded) {
            match pixels {
                Ok(pixels) => {
                    set.images.extend_from_slice(&pixels);
                    set.labels.push(picture.class as u8);
                }
                Err(error) if options.skip_bad => skipped.push(error.to_string()),
                Err(error) => return Err(error),
            }
        }
    }
    if !skipped.is_empty() {
        notes.push(format!(
            "skipped {} of the {} pictures in {} that could not be read (--skip-bad): {}",
            skipped.len(),
            pictures.len(),
            dir.display(),
            skipped.join("; ")
        ));
    }
    if set.is_empty() {
        return Err(folder_error(dir, "holds no PNG or JPEG picture".into()));
    }
    Ok(set)
}

/// The picture files of each class folder of `dir` that exists, in the order of their file
/// names (ties by class); files of other kinds and nested folders are counted in `notes`.
fn list_pictures(
    dir: &Path,
    classes: &[String],
    notes: &mut Vec<String>,
) -> Result<Vec<Picture>, DataError> {
    let mut pictures = Vec::new();
    let mut left_out = Vec::new();
    for (class, name) in classes.iter().enumerate() {
        let folder = dir.join(name);
        if !folder.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&folder).map_err(io_error(&folder))? {
            let path = entry.map_err(io_error(&folder))?.path();
            let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if file_name.as_deref().is_none_or(|n| n.starts_with('.')) {
                continue;
            }
            if is_picture_name(&path) && !path.is_dir() {
                pictures.push(Picture { path, class });
            } else {
                left_out.push(path);
            }
        }
    }
    if !left_out.is_empty() {
        left_out.sort();
        notes.push(format!(
            "left out {} entries of {} that are not PNG or JPEG files, such as {}",
            left_out.len(),
            dir.display(),
            left_out[0].display()
        ));
    }
    pictures.sort_by(|a, b| (a.path.file_name(), a.class).cmp(&(b.path.file_name(), b.class)));
    Ok(pictures)
}

fn is_picture_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
}

/// The network's input pixels of the picture at `path`, side x side, row-major.
pub fn input_pixels(path: &Path, options: PictureOptions) -> Result<Vec<u8>, DataError> {
    let picture_error = |problem: String| DataError::Picture {
        path: path.to_path_buf(),
        problem,
    };
    crate::input::regular_file_size(path).map_err(|e| picture_error(e.to_string()))?;
    let picture = digit::read_picture(path, MAX_PICTURE_PIXELS).map_err(|e| match e {
        digit::DigitError::Read { source, .. } => picture_error(source.to_string()),
        digit::DigitError::TooLarge {
            width,
            height,
            limit,
            ..
        } => picture_error(format!(
            "it is {width} x {height} pixels, more than the {limit} pixels a picture may have"
        )),
        other => picture_error(other.to_string()),
    })?;
    let brightness = digit::luminance(&picture);
    drop(picture);
    match options.style {
        PictureStyle::Plain => Ok(plain_pixels(brightness, options.side)),
        PictureStyle::Digit => {
            digit::mnist_like_sized(brightness.view(), options.side).ok_or_else(|| {
                picture_error("has no digit in it: every pixel is the background".into())
            })
        }
    }
}

/// `brightness` (0 black .. 1 white) as side x side bytes, area-averaged where its size
/// differs; a picture already of that size keeps its grey levels exactly.
fn plain_pixels(brightness: Array2<f32>, side: usize) -> Vec<u8> {
    let resized = if brightness.dim() == (side, side) {
        brightness
    } else {
        digit::resample_area(brightness.view(), side, side)
    };
    resized
        .iter()
        .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect()
}
