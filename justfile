# Recipes for mlp; each is a thin wrapper of the cargo command in its body. `just --list` shows them.

# Train the seed network on the CPU reference (30 epochs, MNIST downloaded if missing)
run-cpu *ARGS:
    cargo run --release -p mlp-cli -- --backend cpu {{ARGS}}

# Set up lavapipe and MNIST if missing, then run every test (cargo test --workspace)
test:
    ./scripts/test

# Seconds per training epoch of the seed configuration on the CPU
bench *ARGS:
    cargo run --release -p mlp-cli -- bench --backend cpu {{ARGS}}

# Formatting and lints, as CI runs them
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Train the seed network on the GPU (WGSL through wgpu; lavapipe where there is no GPU)
run-gpu *ARGS:
    cargo run --release -p mlp-cli -- --backend gpu {{ARGS}}

# Seconds per training epoch on the GPU
bench-gpu *ARGS:
    cargo run --release -p mlp-cli -- bench --backend gpu {{ARGS}}

# Seconds per GPU epoch, then each kernel's time per step from GPU timestamps
profile-gpu *ARGS:
    cargo run --release -p mlp-cli -- bench --backend gpu --profile {{ARGS}}

# Run the CPU reference and the GPU in lockstep and compare every tensor
check *ARGS:
    cargo run --release -p mlp-cli -- check {{ARGS}}

# List the GPU adapters wgpu can see
devices:
    cargo run --release -p mlp-cli -- devices

# Fuzz one parser for SECONDS seconds: idx, data_dir, model or digit (cargo-fuzz, which the
# recipe installs; RUSTC_BOOTSTRAP lets the stable toolchain take its sanitizer flags)
fuzz TARGET SECONDS="600":
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    python3 fuzz/seeds.py
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run {{TARGET}} -- -max_total_time={{SECONDS}} -rss_limit_mb=4096

# Fuzz every parser, SECONDS seconds each
fuzz-all SECONDS="600":
    for target in idx data_dir model digit; do just fuzz $target {{SECONDS}}; done
