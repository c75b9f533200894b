// sparse_forward.wgsl's four pieces of W1, from four uniform bindings of W1_PIECE_VEC4S_0..3
// vec4s (constants of the prelude the kernel's builder writes).
@group(0) @binding(7) var<uniform> weights0: array<vec4<f32>, W1_PIECE_VEC4S_0>;
@group(0) @binding(8) var<uniform> weights1: array<vec4<f32>, W1_PIECE_VEC4S_1>;
@group(0) @binding(9) var<uniform> weights2: array<vec4<f32>, W1_PIECE_VEC4S_2>;
@group(0) @binding(10) var<uniform> weights3: array<vec4<f32>, W1_PIECE_VEC4S_3>;

fn w1_piece0(i: u32) -> vec4<f32> {
    return weights0[i];
}

fn w1_piece1(i: u32) -> vec4<f32> {
    return weights1[i];
}

fn w1_piece2(i: u32) -> vec4<f32> {
    return weights2[i];
}

fn w1_piece3(i: u32) -> vec4<f32> {
    return weights3[i];
}
