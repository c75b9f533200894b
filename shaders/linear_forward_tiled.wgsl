// Ak = f(A(k-1) Wk + bk), as linear_forward.wgsl computes it, but with the operands staged in
// workgroup memory: each workgroup computes a 16 x 16 block of Ak, stepping along `in` one
// 16-wide tile at a time; every invocation loads one value of the A(k-1) tile and one of the
// Wk tile, then all of them read the whole tiles from workgroup memory. Each value comes from
// storage memory once per workgroup instead of once per invocation: what real GPUs reward.
// On lavapipe, where workgroup barriers are costly, linear_forward.wgsl's register blocks are
// faster (`--kernel tiled` chooses this one). A second body of the same equation because its
// operands live in workgroup tiles, which a function shared with the register kernel cannot
// read.
//
// bindings: step (B rows), layer (in, out, activation f),
//           input: A(k-1), (B, in); parameters: [Wk; bk], (in + 1, out); output: Ak, (B, out)
// Tiles past the edge of the matrices read 0 and write nothing, so any B, in, out works.

const TILE: u32 = 16u;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> layer: Layer;
@group(0) @binding(2) var<storage, read_write> input: array<f32>;
@group(0) @binding(3) var<storage, read> parameters: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

var<workgroup> input_tile: array<array<f32, 16>, 16>;
var<workgroup> weights_tile: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let n_in = layer.inputs;
    let n_out = layer.outputs;
    let n = wid.x * TILE + lid.x; // this invocation's column of Ak
    let m = wid.y * TILE + lid.y; // and row
    var sum = 0.0;
    // Every invocation runs every tile (none returns early) so that all reach each barrier.
    for (var k0 = 0u; k0 < n_in; k0 = k0 + TILE) {
        let k_input = k0 + lid.x;
        let k_weights = k0 + lid.y;
        var a = 0.0;
        if (m < step.rows && k_input < n_in) {
            a = input[m * n_in + k_input];
        }
        var w = 0.0;
        if (k_weights < n_in && n < n_out) {
            w = parameters[k_weights * n_out + n];
        }
        input_tile[lid.y][lid.x] = a;
        weights_tile[lid.y][lid.x] = w;
        workgroupBarrier();
        for (var k = 0u; k < TILE; k = k + 1u) {
            sum = sum + input_tile[lid.y][k] * weights_tile[k][lid.x];
        }
        workgroupBarrier();
    }
    if (m < step.rows && n < n_out) {
        output[m * n_out + n] = activate(parameters[n_in * n_out + n] + sum, layer.activation);
    }
}
