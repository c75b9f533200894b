// row_pass_bindings.wgsl's parameters of layers 2..L, from a storage binding.
@group(0) @binding(2) var<storage, read> parameters: array<vec4<f32>>;
