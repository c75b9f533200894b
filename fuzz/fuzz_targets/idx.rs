//! The IDX reader and parsers on any bytes: an error or a data set, never a panic, and never
//! more bytes read than the header promises.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mlp_core::data::{IdxKind, decode_idx, parse_images, parse_labels};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz-idx");
    for kind in [IdxKind::Images, IdxKind::Labels] {
        if let Ok(read) = decode_idx(path, data, data.len() as u64, kind) {
            assert!(read.bytes.len() >= kind.header_len());
            match kind {
                IdxKind::Images => {
                    if let Ok(set) = parse_images(path, &read.bytes) {
                        assert_eq!(set.images.len() % set.pixels(), 0);
                    }
                }
                IdxKind::Labels => {
                    if let Ok(labels) = parse_labels(path, &read.bytes) {
                        assert!(labels.iter().all(|&l| l <= 9));
                    }
                }
            }
        }
    }
});
