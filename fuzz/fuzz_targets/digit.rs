//! The picture preprocessing on any bytes: an error naming the picture, or 28 x 28 pixels.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mlp_core::digit::decode_digit;

fuzz_target!(|data: &[u8]| {
    match decode_digit(data, Path::new("fuzz.png")) {
        Ok(pixels) => assert_eq!(pixels.len(), 28 * 28),
        Err(error) => assert!(error.to_string().contains("fuzz.png")),
    }
});
