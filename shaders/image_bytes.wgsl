// The training images as uploaded for the kernels that read pixels where they lie in their
// image (step_forward_backward.wgsl, step_weights_update.wgsl, multi_step.wgsl): every image's
// bytes, four to a u32 in `images`, which the including kernel declares.

// Byte `i` of the training images.
fn image_byte(i: u32) -> u32 {
    return (images[i / 4u] >> (8u * (i % 4u))) & 0xffu;
}
