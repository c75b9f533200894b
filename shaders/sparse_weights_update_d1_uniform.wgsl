// sparse_weights_update.wgsl's D1 as vec4s, from a uniform binding of D1_VEC4S vec4s (a
// constant of the prelude the kernel's builder writes): lavapipe reads a uniform far faster than storage.
@group(0) @binding(7) var<uniform> delta4: array<vec4<f32>, D1_VEC4S>;
