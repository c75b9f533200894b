//! The directory loader on four files cut from any bytes: the first eight bytes give the
//! lengths of the first three files (u16 each, little-endian), the rest is the fourth.
//! Loaded as any IDX set and as MNIST: an error or two sets whose counts agree, never a panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mlp_core::data::{self, DataFormat, MNIST_FILES};

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("mlp-fuzz-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let mut rest = &data[8..];
    let dir = scratch();
    for (i, file) in MNIST_FILES.iter().enumerate() {
        let take = if i < 3 {
            usize::from(u16::from_le_bytes([data[2 * i], data[2 * i + 1]])).min(rest.len())
        } else {
            rest.len()
        };
        let (bytes, tail) = rest.split_at(take);
        std::fs::write(dir.join(file.name), bytes).unwrap();
        rest = tail;
    }
    for format in [DataFormat::AnyIdx, DataFormat::Mnist] {
        if let Ok(sets) = data::load(dir, format) {
            for set in [&sets.train, &sets.test] {
                assert!(!set.is_empty());
                assert_eq!(set.images.len(), set.len() * set.pixels());
            }
        }
    }
});
