//! The GPU backend's kernels on a second WebGPU implementation: every pipeline that an epoch of
//! each kernel variant builds, for the seed and the modern network, exactly as the backend
//! builds it (final WGSL, bind group layout, constants), is built again in headless Chromium
//! (`tests/browser/webgpu.mjs`) at WebGPU's default limits. Chromium compiles WGSL with Tint,
//! the compiler browsers use on real GPUs, and enforces WebGPU's validation and uniformity
//! rules, which naga does not check for barriers (gfx-rs/wgpu#4369). Every module must compile
//! with no error and no warning, and every pipeline must be created.
//!
//! Then one training step of each schedule, captured as data (buffers before, pipelines, bind
//! groups, dispatches: `GpuBackend::capture_step`), is replayed there by a small page
//! (`tests/browser/webgpu_step.mjs`), and the parameters after it are compared with the CPU
//! reference's after the same step, within `PARITY`.
//!
//! It needs what `serve_page.rs` needs (Node.js, Chromium, Playwright; `scripts/test` sets them
//! up) and a wgpu adapter here to build the pipelines on. It fails, never skips.

#[path = "../../mlp-core/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use mlp_core::compare::Difference;
use mlp_core::network::Parameters;
use mlp_core::rng::Rng;
use mlp_core::train::{TrainConfig, train};
use mlp_core::{Activation, Dataset, Hyperparameters, Init, Optimiser, OptimiserKind, Output};
use mlp_core::{Backend, Reduction, ReferenceBackend, Schedule};
use mlp_wgpu::{
    BindingKind, DenseSchedule, GpuBackend, GpuContext, KernelVariant, PARITY, PipelineSpec, Reads,
    StepCapture,
};
use serde_json::{Value, json};

/// `count` MNIST-like random images of 784 pixels, three in four dark, labels below 10.
fn random_set(count: usize, rng: &mut Rng) -> Dataset {
    Dataset {
        images: (0..count * 784)
            .map(|_| match rng.next_u64() % 1024 {
                lit @ 768.. => (lit % 256) as u8,
                _ => 0,
            })
            .collect(),
        labels: (0..count).map(|_| (rng.next_u64() % 10) as u8).collect(),
        rows: 28,
        cols: 28,
    }
}

fn modern() -> Hyperparameters {
    Hyperparameters {
        activation: Activation::Relu,
        output: Output::SoftmaxCrossEntropy,
        reduction: Reduction::Mean,
        optimiser: Optimiser::with_defaults(OptimiserKind::Adam),
        learning_rate: 0.001,
        ..Hyperparameters::seed()
    }
}

/// The pipelines one epoch of `variant` builds for the network `sizes` with `hyper`.
fn pipelines_of(
    sizes: &[usize],
    hyper: &Hyperparameters,
    variant: KernelVariant,
) -> Vec<PipelineSpec> {
    let mut rng = Rng::new(3);
    let (set, validation) = (random_set(300, &mut rng), random_set(50, &mut rng));
    let init = if hyper.activation == Activation::Relu {
        Init::He
    } else {
        Init::Normal
    };
    let parameters = Parameters::init(&Parameters::layer_sizes_of(sizes), init, 1);
    let context =
        GpuContext::new(None).unwrap_or_else(|e| panic!("this test needs an adapter: {e}"));
    let data = (&set, &validation);
    let mut backend =
        GpuBackend::with_variant(context, &parameters, hyper, 100, data, variant).unwrap();
    let config = TrainConfig {
        epochs: 1,
        learning_rate: hyper.learning_rate,
        schedule: Schedule::Constant,
        shuffle: true,
        ..TrainConfig::seed()
    };
    train(&mut backend, set.len(), &config, |_, _| {}).unwrap();
    backend.pipeline_specs()
}

fn as_json(spec: &PipelineSpec, network: &str, variant: &str) -> Value {
    let bindings: Vec<Value> = (spec.bindings.iter())
        .map(|b| json!({ "type": b.kind.webgpu_type(), "dynamic": b.kind.has_dynamic_offset() }))
        .collect();
    let constants: BTreeMap<&str, f64> = spec
        .constants
        .iter()
        .map(|(n, v)| (n.as_str(), *v))
        .collect();
    json!({
        "name": format!("{network} {variant} {}", spec.name),
        "source": spec.source,
        "bindings": bindings,
        "constants": constants,
    })
}

/// What Chromium says of building `pipelines` (written to `<name>.json` in the test's target
/// directory, where they stay to be looked at).
fn built_in_chromium(name: &str, pipelines: &[Value]) -> Value {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("webgpu");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, serde_json::to_string(pipelines).unwrap()).unwrap();
    run_in_chromium("webgpu.mjs", &file)
}

/// The JSON line that `tests/browser/<script>` prints when run on `input`, where it reports no
/// error.
fn run_in_chromium(script: &str, input: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser")
        .join(script);
    let out = Command::new("node")
        .arg(&script)
        .arg(input)
        .output()
        .expect("node runs (run ./scripts/test, which installs Node.js, Chromium and Playwright)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert!(
        report["error"].is_null(),
        "{}: {}",
        script.display(),
        report["error"]
    );
    report
}

/// The harness can fail: what naga lets through and a browser refuses is refused here.
#[test]
fn chromium_refuses_a_barrier_in_non_uniform_control_flow_and_nine_storage_buffers() {
    let storage = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|_| json!({ "type": "storage", "dynamic": false }))
            .collect()
    };
    let barrier = "@group(0) @binding(0) var<storage, read_write> data: array<f32>;\n\
        @compute @workgroup_size(64) fn main(@builtin(local_invocation_index) i: u32) {\n\
          if (data[i] > 0.0) { workgroupBarrier(); }\n\
          data[i] = 1.0;\n\
        }\n";
    let nine: String = (0..9)
        .map(|b| format!("@group(0) @binding({b}) var<storage, read_write> d{b}: array<f32>;\n"))
        .collect::<String>()
        + "@compute @workgroup_size(1) fn main() {\n"
        + &(0..9)
            .map(|b| format!("  d{b}[0] = 1.0;\n"))
            .collect::<String>()
        + "}\n";
    let pipelines = [
        json!({ "name": "barrier", "source": barrier, "bindings": storage(1), "constants": {} }),
        json!({ "name": "nine", "source": nine, "bindings": storage(9), "constants": {} }),
    ];
    let report = built_in_chromium("refused", &pipelines);
    for result in report["results"].as_array().unwrap() {
        let said = format!("{}{}", result["messages"], result["errors"]);
        println!("{}: {said}", result["name"]);
        assert!(said.len() > 4, "{} was not refused", result["name"]);
    }
    let said = report["results"].to_string();
    assert!(said.contains("uniform"), "{said}");
    assert!(said.contains("torage"), "{said}");
}

/// The bindings `source` declares in group 0, by binding (the variable's name and kind), as
/// naga reads the WGSL; or what is wrong.
fn declared_bindings(source: &str) -> Result<Vec<Option<(String, BindingKind)>>, String> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    let mut declared: Vec<Option<(String, BindingKind)>> = Vec::new();
    for (_, variable) in module.global_variables.iter() {
        let Some(binding) = &variable.binding else {
            continue;
        };
        let name = variable.name.clone().unwrap_or_default();
        if binding.group != 0 {
            return Err(format!("{name} is in group {}", binding.group));
        }
        let kind = match variable.space {
            naga::AddressSpace::Uniform => BindingKind::Uniform,
            naga::AddressSpace::Storage { access }
                if access.contains(naga::StorageAccess::STORE) =>
            {
                BindingKind::Storage
            }
            naga::AddressSpace::Storage { .. } => BindingKind::ReadOnlyStorage,
            other => return Err(format!("{name} is bound in {other:?}")),
        };
        let at = binding.binding as usize;
        if declared.len() <= at {
            declared.resize(at + 1, None);
        }
        declared[at] = Some((name, kind));
    }
    Ok(declared)
}

/// Each kernel's table of bindings (its `KernelDecl` in mlp-wgpu) says what its WGSL declares,
/// binding by binding, name and kind: read naga's own parse of every pipeline of every
/// variant. A table that disagrees with its shader would otherwise show only as a validation
/// error when the pipeline is built, or as a buffer bound where another belongs.
#[test]
fn every_pipeline_s_bindings_table_matches_what_its_wgsl_declares() {
    let networks = [
        ("seed", vec![784, 64, 32, 16, 10], Hyperparameters::seed()),
        ("modern", vec![784, 256, 128, 10], modern()),
    ];
    let mut checked = 0;
    for (network, sizes, hyper) in &networks {
        for variant in KernelVariant::all() {
            for spec in pipelines_of(sizes, hyper, variant) {
                let what = format!("{network} {} {}", variant.name(), spec.name);
                let declared =
                    declared_bindings(&spec.source).unwrap_or_else(|e| panic!("{what}: {e}"));
                let table: Vec<Option<(String, BindingKind)>> = (spec.bindings.iter())
                    .map(|binding| {
                        let kind = match binding.kind {
                            BindingKind::DynamicUniform => BindingKind::Uniform,
                            kind => kind,
                        };
                        Some((binding.name.to_string(), kind))
                    })
                    .collect();
                assert_eq!(table, declared, "{what}: bindings table against WGSL");
                checked += 1;
            }
        }
    }
    println!("{checked} pipelines: every bindings table names and binds what its WGSL declares");
}

#[test]
fn every_pipeline_of_every_variant_builds_in_chromium_at_webgpu_s_default_limits() {
    let networks = [
        ("seed", vec![784, 64, 32, 16, 10], Hyperparameters::seed()),
        ("modern", vec![784, 256, 128, 10], modern()),
    ];
    let mut pipelines: Vec<Value> = Vec::new();
    // The pipelines differ between networks and variants only where their WGSL, layout or
    // constants do: each distinct one is built once.
    let mut seen = std::collections::HashSet::new();
    for (network, sizes, hyper) in &networks {
        for variant in KernelVariant::all() {
            for spec in pipelines_of(sizes, hyper, variant) {
                let key = (
                    spec.source.clone(),
                    format!("{:?}{:?}", spec.bindings, spec.constants),
                );
                if seen.insert(key) {
                    pipelines.push(as_json(&spec, network, &variant.name()));
                }
            }
        }
    }
    let report = built_in_chromium("pipelines", &pipelines);
    println!(
        "Chromium's WebGPU adapter: {}; limits {}",
        report["adapter"], report["limits"]
    );
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), pipelines.len());
    let mut failures = Vec::new();
    for result in results {
        let problems: Vec<&Value> = (result["messages"].as_array().unwrap().iter())
            .chain(result["errors"].as_array().unwrap())
            .collect();
        let verdict = if problems.is_empty() { "ok" } else { "REFUSED" };
        println!("{}: {verdict}", result["name"].as_str().unwrap());
        for problem in &problems {
            println!("    {}", problem.as_str().unwrap());
        }
        if !problems.is_empty() {
            failures.push(result["name"].as_str().unwrap().to_string());
        }
    }
    assert!(
        report["lost"].as_array().unwrap().is_empty(),
        "device lost: {}",
        report["lost"]
    );
    let verdict = format!(
        "Chromium ({}): {} distinct pipelines built, {} refused",
        report["adapter"].as_str().unwrap_or("?"),
        pipelines.len(),
        failures.len()
    );
    println!("{verdict}");
    // scripts/test prints it after the tests, which hide a passing test's output.
    let summary = Path::new(env!("CARGO_TARGET_TMPDIR")).join("webgpu/verdict.txt");
    std::fs::write(summary, format!("{verdict}\n")).unwrap();
    assert!(failures.is_empty(), "refused by Chromium: {failures:?}");
}

/// Writes `capture` into `dir` as `webgpu_step.mjs` reads it, its parameters to be read back.
fn write_capture(dir: &Path, capture: &StepCapture) {
    std::fs::create_dir_all(dir).unwrap();
    for (i, bytes) in capture.buffers.iter().enumerate() {
        std::fs::write(dir.join(format!("buffer-{i}.bin")), bytes).unwrap();
    }
    let pipelines: Vec<Value> = (capture.pipelines.iter())
        .map(|spec| as_json(spec, "step", ""))
        .collect();
    let dispatches: Vec<Value> = (capture.dispatches.iter())
        .map(|d| {
            let bindings: Vec<Value> = (d.bindings.iter())
                .map(|b| json!({ "buffer": b.buffer, "offset": b.offset, "size": b.size }))
                .collect();
            json!({
                "pipeline": d.pipeline,
                "bindings": bindings,
                "dynamic_offset": d.dynamic_offset,
                "workgroups": [d.workgroups.0, d.workgroups.1],
            })
        })
        .collect();
    let step = json!({
        "pipelines": pipelines,
        "buffers": capture.buffers.len(),
        "dispatches": dispatches,
        "read": capture.parameters_buffer,
    });
    std::fs::write(dir.join("step.json"), step.to_string()).unwrap();
}

/// Chromium's parameters after replaying the captured step of `schedule` on the seed network,
/// beside the CPU reference's after the same step; and the kernels it dispatched, in order.
fn replayed_step(schedule: DenseSchedule) -> (Difference, Vec<String>) {
    let mut rng = Rng::new(7);
    let (set, validation) = (random_set(300, &mut rng), random_set(20, &mut rng));
    let hyper = Hyperparameters::seed();
    let sizes = [784, 64, 32, 16, 10];
    let parameters = Parameters::init(&Parameters::layer_sizes_of(&sizes), Init::Normal, 5);
    let mut reference =
        ReferenceBackend::new(parameters.clone(), &hyper, &set, &validation).unwrap();
    // At WebGPU's default limits, so that every offset and size keeps to the browser's.
    let context = GpuContext::with_limits(None, Some(wgpu_default_limits()))
        .unwrap_or_else(|e| panic!("this test needs an adapter: {e}"));
    let variant = KernelVariant {
        schedule,
        reads: Reads::Storage,
    };
    let data = (&set, &validation);
    let mut gpu =
        GpuBackend::with_variant(context, &parameters, &hyper, 100, data, variant).unwrap();
    let capture = gpu.capture_step(0..100).unwrap();
    reference.train_batch(0..100).unwrap();
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("webgpu-step-{}", schedule.name()));
    let _ = std::fs::remove_dir_all(&dir);
    write_capture(&dir, &capture);
    run_in_chromium("webgpu_step.mjs", &dir);
    let after = gpu.parameters_from_bytes(&std::fs::read(dir.join("after.bin")).unwrap());
    let flat = |p: &Parameters| -> Vec<f32> {
        (p.layers.iter())
            .flat_map(|l| {
                l.weights
                    .iter()
                    .chain(l.bias.iter())
                    .copied()
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let expected = reference.parameters().unwrap();
    // The step moves the parameters beyond the tolerance: a replay that did nothing fails.
    let unmoved = Difference::between(&flat(&parameters), &flat(&expected), PARITY);
    assert!(
        !unmoved.passes(),
        "the step moved no parameter beyond PARITY: {unmoved}"
    );
    let kernels = (capture.dispatches.iter())
        .map(|d| capture.pipelines[d.pipeline].name.clone())
        .collect();
    (
        Difference::between(&flat(&after), &flat(&expected), PARITY),
        kernels,
    )
}

/// WebGPU's default limits, which browsers enforce.
fn wgpu_default_limits() -> wgpu::Limits {
    wgpu::Limits::default()
}

#[test]
fn a_step_of_each_schedule_replayed_in_chromium_matches_the_reference() {
    for schedule in DenseSchedule::NAMES.map(|n| n.parse::<DenseSchedule>().unwrap()) {
        let (difference, kernels) = replayed_step(schedule);
        println!(
            "{} ({}): Chromium's parameters after one seed step against the reference's: \
             {difference}",
            schedule.name(),
            kernels.join(", ")
        );
        assert!(difference.passes(), "{}: {difference}", schedule.name());
    }
}
