//! Data sets written in the formats the readers take, by the tests themselves: NumPy arrays
//! (`.npy` bytes and `.npz` archives) and folders of PNG pictures, one per class.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

use mlp_core::Dataset;

/// A version-1 `.npy` file: the header dict for `descr` and `shape`, padded with spaces to a
/// multiple of 64 bytes as NumPy writes it, then `data` as it is.
pub fn npy_bytes(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((dict.len() as u16).to_le_bytes());
    bytes.extend(dict.as_bytes());
    bytes.extend(data);
    bytes
}

/// The images of `set` as uint8 (N, rows, cols) and its labels as uint8 (N,).
pub fn set_arrays(set: &Dataset) -> (Vec<u8>, Vec<u8>) {
    (
        npy_bytes("|u1", &[set.len(), set.rows, set.cols], &set.images),
        npy_bytes("|u1", &[set.len()], &set.labels),
    )
}

/// An `.npz` archive at `path` holding `arrays` as `<name>.npy`, deflated as
/// `np.savez_compressed` writes them.
pub fn write_npz(path: &Path, arrays: &[(&str, Vec<u8>)]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    for (name, bytes) in arrays {
        zip.start_file(format!("{name}.npy"), options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// `set` as PNG pictures in `dir/<class name>/<index>.png`, the index zero-padded so that the
/// file names sort in the set's order.
pub fn write_png_folders(dir: &Path, set: &Dataset, class_names: &[String]) {
    for name in class_names {
        std::fs::create_dir_all(dir.join(name)).unwrap();
    }
    let pictures: Vec<(usize, &[u8])> = set.images.chunks(set.pixels()).enumerate().collect();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for share in pictures.chunks(pictures.len().div_ceil(workers).max(1)) {
            scope.spawn(move || {
                for &(i, pixels) in share {
                    let class = &class_names[usize::from(set.labels[i])];
                    let picture = image::GrayImage::from_raw(
                        set.cols as u32,
                        set.rows as u32,
                        pixels.to_vec(),
                    )
                    .unwrap();
                    picture
                        .save(dir.join(class).join(format!("{i:06}.png")))
                        .unwrap();
                }
            });
        }
    });
}
