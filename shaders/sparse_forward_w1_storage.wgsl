// sparse_forward.wgsl's four pieces of W1, all the whole of W1 from one storage binding
// (PIECE_PIXELS is then past the last pixel, so piece 0 holds every row).
@group(0) @binding(7) var<storage, read> weights0: array<vec4<f32>>;

fn w1_piece0(i: u32) -> vec4<f32> {
    return weights0[i];
}

fn w1_piece1(i: u32) -> vec4<f32> {
    return weights0[i];
}

fn w1_piece2(i: u32) -> vec4<f32> {
    return weights0[i];
}

fn w1_piece3(i: u32) -> vec4<f32> {
    return weights0[i];
}
