// sparse_weights_update.wgsl's D1 as vec4s, from a storage binding.
@group(0) @binding(7) var<storage, read> delta4: array<vec4<f32>>;
