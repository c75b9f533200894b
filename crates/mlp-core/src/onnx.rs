//! A model as ONNX, for onnxruntime, a browser or a phone: the network as standard operators
//! (opset 17), one `Gemm` per layer followed by its activation (`Sigmoid`, `Relu`, `Tanh`),
//! the output layer's `Sigmoid` or `Softmax`, and an `ArgMax` giving each image's class.
//!
//! - input `pixels`: float32 [N, inputs], each pixel's byte / 255 (0 = background), the
//!   image's rows one after another, as the network was trained on them;
//! - output `scores`: float32 [N, classes], what the model's last layer gives (sigmoid
//!   outputs for the seed network, probabilities for a softmax one);
//! - output `class`: int64 [N], the class of the largest score.
//!
//! The model's metadata (`metadata_props`) holds its layers, activation and output, the class
//! names (one per line of `class_names`, where the data named them), how its pictures were
//! read, and the training options it recorded.
//!
//! The protobuf messages are ONNX's own schema as `onnx-protobuf` generates it, serialised by
//! `protobuf` (rust-protobuf): nothing is encoded by hand. `tract-onnx` also carries the schema,
//! but with its whole inference engine; it is the better choice for reading models, not for
//! writing one.

use std::path::Path;

use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
};

use crate::atomic::write_atomically;
use crate::model::{Model, ModelError};
use crate::options::{Activation, Output};

/// The operator set the graph uses: supported by every onnxruntime since 1.13 (2022).
pub const OPSET: i64 = 17;
/// The IR version of opset 17's ONNX release (1.12).
pub const IR_VERSION: i64 = 8;

/// The input's and outputs' names.
pub const INPUT: &str = "pixels";
pub const SCORES: &str = "scores";
pub const CLASS: &str = "class";

impl Model {
    /// The model as ONNX bytes (see the module's documentation).
    pub fn to_onnx(&self) -> Vec<u8> {
        onnx_model(self)
            .write_to_bytes()
            .expect("a graph of plain tensors always serialises")
    }

    /// Writes the model as ONNX to `path`, atomically: a failed write leaves what was there.
    pub fn save_onnx(&self, path: &Path) -> Result<(), ModelError> {
        self.check_finite(path)?;
        Ok(write_atomically(path, &self.to_onnx())?)
    }
}

fn onnx_model(model: &Model) -> ModelProto {
    let sizes = model.parameters.sizes();
    let mut graph = GraphProto {
        name: "mlp".into(),
        doc_string: format!(
            "{} multilayer perceptron: pixels float32 [N, {}] in 0..1 (byte / 255), scores \
             float32 [N, {}], class int64 [N]",
            layer_list(&sizes),
            sizes[0],
            sizes[sizes.len() - 1]
        ),
        ..GraphProto::default()
    };
    graph
        .input
        .push(value_info(INPUT, DataType::FLOAT, &[None, Some(sizes[0])]));
    let last = model.parameters.layers.len();
    let mut activation = INPUT.to_string();
    for (k, layer) in model.parameters.layers.iter().enumerate() {
        let k = k + 1;
        let (inputs, outputs) = layer.weights.dim();
        let (weights, bias) = (format!("layer{k}.weights"), format!("layer{k}.bias"));
        graph.initializer.push(float_tensor(
            &weights,
            &[inputs, outputs],
            layer.weights.iter().copied(),
        ));
        graph
            .initializer
            .push(float_tensor(&bias, &[outputs], layer.bias.iter().copied()));
        let sum = format!("layer{k}.sum");
        graph
            .node
            .push(node("Gemm", &[&activation, &weights, &bias], &sum));
        let (op, attributes) = if k == last {
            output_op(model.info.output)
        } else {
            (activation_op(model.info.activation), Vec::new())
        };
        activation = if k == last {
            SCORES.to_string()
        } else {
            format!("layer{k}.activation")
        };
        let mut apply = node(op, &[&sum], &activation);
        apply.attribute = attributes;
        graph.node.push(apply);
    }
    let mut argmax = node("ArgMax", &[SCORES], CLASS);
    argmax.attribute = vec![int_attribute("axis", 1), int_attribute("keepdims", 0)];
    graph.node.push(argmax);
    let classes = sizes[sizes.len() - 1];
    graph
        .output
        .push(value_info(SCORES, DataType::FLOAT, &[None, Some(classes)]));
    graph
        .output
        .push(value_info(CLASS, DataType::INT64, &[None]));
    ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
            ..OperatorSetIdProto::default()
        }],
        producer_name: "mlp".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: graph.doc_string.clone(),
        graph: Some(graph).into(),
        metadata_props: metadata(model),
        ..ModelProto::default()
    }
}

fn layer_list(sizes: &[usize]) -> String {
    let sizes: Vec<String> = sizes.iter().map(ToString::to_string).collect();
    sizes.join("-")
}

/// The model's description as ONNX metadata: the safetensors header's keys, the class names
/// one per line, and the input's meaning.
fn metadata(model: &Model) -> Vec<StringStringEntryProto> {
    let mut entries: Vec<(String, String)> = (model.metadata().into_iter())
        .filter(|(key, _)| key != "format")
        .collect();
    for (key, value) in &mut entries {
        if key == "class_names" {
            *value = value.split("; ").collect::<Vec<_>>().join("\n");
        }
    }
    entries.push((
        "input".into(),
        "pixels: float32 [N, inputs], each pixel's byte / 255, 0 = background, rows in order"
            .into(),
    ));
    entries.sort();
    entries
        .into_iter()
        .map(|(key, value)| StringStringEntryProto {
            key,
            value,
            ..StringStringEntryProto::default()
        })
        .collect()
}

fn activation_op(activation: Activation) -> &'static str {
    match activation {
        Activation::Sigmoid => "Sigmoid",
        Activation::Relu => "Relu",
        Activation::Tanh => "Tanh",
    }
}

fn output_op(output: Output) -> (&'static str, Vec<AttributeProto>) {
    match output {
        Output::SigmoidMse => ("Sigmoid", Vec::new()),
        Output::SoftmaxCrossEntropy => ("Softmax", vec![int_attribute("axis", 1)]),
    }
}

fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: output.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..NodeProto::default()
    }
}

fn int_attribute(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INT.into(),
        i: value,
        ..AttributeProto::default()
    }
}

/// A float32 tensor `name` of `dims`, its values little-endian in `raw_data`.
fn float_tensor(name: &str, dims: &[usize], values: impl Iterator<Item = f32>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::FLOAT as i32,
        raw_data: values.flat_map(f32::to_le_bytes).collect(),
        ..TensorProto::default()
    }
}

/// A graph input or output `name` of element type `kind` and `dims`, `None` being the batch
/// dimension `N`.
fn value_info(name: &str, kind: DataType, dims: &[Option<usize>]) -> ValueInfoProto {
    let dim = |d: &Option<usize>| tensor_shape_proto::Dimension {
        value: Some(match d {
            Some(size) => tensor_shape_proto::dimension::Value::DimValue(*size as i64),
            None => tensor_shape_proto::dimension::Value::DimParam("N".into()),
        }),
        ..Default::default()
    };
    let tensor = type_proto::Tensor {
        elem_type: kind as i32,
        shape: Some(TensorShapeProto {
            dim: dims.iter().map(dim).collect(),
            ..TensorShapeProto::default()
        })
        .into(),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.into(),
        type_: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(tensor)),
            ..TypeProto::default()
        })
        .into(),
        ..ValueInfoProto::default()
    }
}
