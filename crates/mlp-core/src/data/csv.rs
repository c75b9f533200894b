//! Images as a CSV file in Kaggle's Digit Recognizer layout: a header, then one image a line.
//! A training file's header is `label,pixel0,pixel1,…`; a file to predict (Kaggle's
//! `test.csv`) has no `label` column. Each pixel is a whole number 0..255 (0 = background), a
//! line's pixels are the image's rows one after another, and the image is square: 784 pixels
//! are 28 x 28.
//!
//! The file is read line by line, never whole, and no line may be longer than
//! [`MAX_LINE_BYTES`]: what is kept is the images' bytes, one byte a pixel. Every problem is an
//! error naming the file, the line (from 1, the header's included) and, where one is at fault,
//! the column (from 1).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::{DataError, Dataset, Mnist};

/// The longest line accepted: a 784-pixel line is at most about 3 KB, a 256 x 256 one 260 KB.
pub const MAX_LINE_BYTES: u64 = 1 << 20;

/// A CSV file's images, and whether it labels them (a training or validation file) or not
/// (a file to predict; every label is then 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvImages {
    pub set: Dataset,
    pub labelled: bool,
}

/// Reads the CSV file at `path` (see the module's documentation).
pub fn read_csv(path: &Path) -> Result<CsvImages, DataError> {
    let io_error = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    // A FIFO or a device would block or never end: refused before it is opened.
    crate::input::regular_file_size(path).map_err(|e| csv_error(path, 0, None, e.to_string()))?;
    let file = File::open(path).map_err(io_error)?;
    let mut lines = Lines::new(BufReader::new(file), path);
    let Some(header) = lines.next_line()? else {
        return Err(csv_error(
            path,
            1,
            None,
            "the file is empty: it needs a header line".into(),
        ));
    };
    // A byte-order mark, as spreadsheets write, is no part of the first name.
    let columns = Header::parse(header.trim_start_matches('\u{feff}'), path)?;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    while let Some(line) = lines.next_line()? {
        let number = lines.number;
        if line.trim().is_empty() {
            continue;
        }
        columns.read_row(&line, (path, number), &mut images, &mut labels)?;
    }
    if labels.is_empty() {
        return Err(csv_error(
            path,
            lines.number,
            None,
            "the file holds no image".into(),
        ));
    }
    Ok(CsvImages {
        set: Dataset {
            images,
            labels,
            rows: columns.side,
            cols: columns.side,
        },
        labelled: columns.labelled,
    })
}

/// The training and test sets of directory `dir`: `train.csv`, which must label its images,
/// and `test.csv`. Where `test.csv` is missing or labels nothing (Kaggle's is a file to
/// predict), the test set is empty, and a run holds training images out to test on.
pub fn load_csv_dir(dir: &Path) -> Result<Mnist, DataError> {
    let train_path = dir.join("train.csv");
    let train = read_csv(&train_path)?;
    if !train.labelled {
        return Err(csv_error(
            &train_path,
            1,
            Some(1),
            "a training file needs a \"label\" column first".into(),
        ));
    }
    let test_path = dir.join("test.csv");
    let test = test_path
        .exists()
        .then(|| read_csv(&test_path))
        .transpose()?
        .filter(|test| test.labelled);
    let test = match test {
        Some(test) if (test.set.rows, test.set.cols) != (train.set.rows, train.set.cols) => {
            return Err(csv_error(
                &test_path,
                1,
                None,
                format!(
                    "its images are {} x {}, but {}'s are {} x {}",
                    test.set.rows,
                    test.set.cols,
                    train_path.display(),
                    train.set.rows,
                    train.set.cols
                ),
            ));
        }
        Some(test) => test.set,
        None => Dataset {
            images: Vec::new(),
            labels: Vec::new(),
            rows: train.set.rows,
            cols: train.set.cols,
        },
    };
    Ok(Mnist::new(train.set, test))
}

fn csv_error(path: &Path, line: usize, column: Option<usize>, problem: String) -> DataError {
    DataError::Csv {
        path: path.to_path_buf(),
        line,
        column,
        problem,
    }
}

/// The header's meaning: whether column 1 is the label, and the images' side.
struct Header {
    labelled: bool,
    pixels: usize,
    side: usize,
}

impl Header {
    fn parse(line: &str, path: &Path) -> Result<Self, DataError> {
        let names: Vec<&str> = line.split(',').map(str::trim).collect();
        let labelled = names.first() == Some(&"label");
        let pixel_names = &names[usize::from(labelled)..];
        for (i, name) in pixel_names.iter().enumerate() {
            if *name != format!("pixel{i}") {
                let column = i + 1 + usize::from(labelled);
                let expected = if i == 0 && !labelled {
                    "\"label\" or \"pixel0\"".to_string()
                } else {
                    format!("\"pixel{i}\"")
                };
                return Err(csv_error(
                    path,
                    1,
                    Some(column),
                    format!(
                        "the header names it {name:?}, expected {expected} (Kaggle's layout: label,pixel0,pixel1,…)"
                    ),
                ));
            }
        }
        let pixels = pixel_names.len();
        let side = (pixels as f64).sqrt().round() as usize;
        if pixels == 0 || side * side != pixels {
            return Err(csv_error(
                path,
                1,
                None,
                format!("the header names {pixels} pixels, which is not a square image"),
            ));
        }
        Ok(Self {
            labelled,
            pixels,
            side,
        })
    }

    /// Appends line `number`'s pixels to `images` and its label (0 where unlabelled) to
    /// `labels`.
    fn read_row(
        &self,
        line: &str,
        (path, number): (&Path, usize),
        images: &mut Vec<u8>,
        labels: &mut Vec<u8>,
    ) -> Result<(), DataError> {
        let expected = self.pixels + usize::from(self.labelled);
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != expected {
            return Err(csv_error(
                path,
                number,
                None,
                format!("{} columns, where the header has {expected}", fields.len()),
            ));
        }
        let byte = |i: usize, what: &str| {
            parse_byte(fields[i].trim()).map_err(|problem| {
                csv_error(path, number, Some(i + 1), format!("{what} {problem}"))
            })
        };
        let first_pixel = usize::from(self.labelled);
        labels.push(if self.labelled {
            byte(0, "the label")?
        } else {
            0
        });
        for i in first_pixel..expected {
            images.push(byte(i, "the pixel")?);
        }
        Ok(())
    }
}

/// A whole number 0..255, or what is wrong with `field`.
fn parse_byte(field: &str) -> Result<u8, String> {
    if field.is_empty() {
        return Err("is missing (an empty field)".into());
    }
    match field.parse::<u64>() {
        Ok(value) => u8::try_from(value).map_err(|_| format!("is {value}, outside 0..255")),
        Err(_) => Err(format!("{field:?} is not a whole number 0..255")),
    }
}

/// The file's lines, each at most [`MAX_LINE_BYTES`], counted from 1.
struct Lines<'a, R> {
    reader: R,
    path: &'a Path,
    number: usize,
}

impl<'a, R: BufRead> Lines<'a, R> {
    fn new(reader: R, path: &'a Path) -> Self {
        Self {
            reader,
            path,
            number: 0,
        }
    }

    fn next_line(&mut self) -> Result<Option<String>, DataError> {
        self.number += 1;
        let mut bytes = Vec::new();
        let read = (&mut self.reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut bytes)
            .map_err(|source| DataError::Io {
                path: self.path.to_path_buf(),
                source,
            })?;
        if read == 0 {
            return Ok(None);
        }
        if bytes.len() as u64 > MAX_LINE_BYTES {
            return Err(csv_error(
                self.path,
                self.number,
                None,
                format!("the line is longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
        let text = String::from_utf8(bytes).map_err(|_| {
            csv_error(
                self.path,
                self.number,
                None,
                "the line is not UTF-8 text".into(),
            )
        })?;
        Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()))
    }
}
