//! The model loader on any bytes: an error naming the file, or a model that saves back to
//! bytes that load as the same model.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mlp_core::Model;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.safetensors");
    match Model::from_bytes(data, path) {
        Ok(model) => {
            let again = Model::from_bytes(&model.to_bytes(), path).expect("a saved model loads");
            assert_eq!(again, model);
        }
        Err(error) => assert!(error.to_string().contains("fuzz.safetensors")),
    }
});
