// row_pass_bindings.wgsl's parameters of layers 2..L, from a uniform binding of
// DENSE_PARAMETER_VEC4S vec4s (a constant of the prelude the kernel's builder writes).
@group(0) @binding(2) var<uniform> parameters: array<vec4<f32>, DENSE_PARAMETER_VEC4S>;
