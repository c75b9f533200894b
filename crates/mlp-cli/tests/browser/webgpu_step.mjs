// Replays one captured training step of the GPU backend in Chromium's WebGPU (Dawn: Tint,
// SwiftShader) at WebGPU's default limits, and writes the buffer it was asked for as it is after
// the step. Run by crates/mlp-cli/tests/webgpu.rs:
//   node webgpu_step.mjs DIR
// DIR/step.json: { pipelines: [{ name, source, bindings: [{ type, dynamic }], constants }],
//   buffers: N (their bytes in DIR/buffer-<i>.bin), dispatches: [{ pipeline, bindings:
//   [{ buffer, offset, size }], dynamic_offset, workgroups: [x, y] }], read: i }
// Writes DIR/after.bin and prints one JSON line: the adapter, and any error.
import { readFileSync, writeFileSync } from "node:fs";
import { onWebGpuPage } from "./webgpu_page.mjs";
import { join } from "node:path";

const dir = process.argv[2];
const step = JSON.parse(readFileSync(join(dir, "step.json"), "utf8"));
const buffers = [...Array(step.buffers).keys()].map((i) =>
  readFileSync(join(dir, `buffer-${i}.bin`)).toString("base64"));
const report = await onWebGpuPage(async (page) => {
  return await page.evaluate(async ({ step, buffers }) => {
    const adapter = await navigator.gpu?.requestAdapter();
    if (!adapter) return { error: "no WebGPU adapter" };
    const device = await adapter.requestDevice();
    device.pushErrorScope("validation");
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_SRC |
      GPUBufferUsage.COPY_DST;
    const gpuBuffers = buffers.map((base64) => {
      const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      const buffer = device.createBuffer({ size: Math.max(4, bytes.length), usage, mappedAtCreation: true });
      new Uint8Array(buffer.getMappedRange()).set(bytes);
      buffer.unmap();
      return buffer;
    });
    const pipelines = step.pipelines.map((p) => {
      const layout = device.createBindGroupLayout({
        entries: p.bindings.map((b, binding) => ({
          binding, visibility: GPUShaderStage.COMPUTE,
          buffer: { type: b.type, hasDynamicOffset: b.dynamic },
        })),
      });
      const pipeline = device.createComputePipeline({
        label: p.name,
        layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module: device.createShaderModule({ code: p.source }), entryPoint: "main", constants: p.constants },
      });
      return { pipeline, layout };
    });
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    for (const d of step.dispatches) {
      const { pipeline, layout } = pipelines[d.pipeline];
      const group = device.createBindGroup({
        layout,
        entries: d.bindings.map((b, binding) => ({
          binding,
          resource: { buffer: gpuBuffers[b.buffer], offset: b.offset, size: b.size ?? undefined },
        })),
      });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group, [d.dynamic_offset]);
      pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1]);
    }
    pass.end();
    const source = gpuBuffers[step.read];
    const readBack = device.createBuffer({ size: source.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    encoder.copyBufferToBuffer(source, 0, readBack, 0, source.size);
    device.queue.submit([encoder.finish()]);
    const error = await device.popErrorScope();
    if (error) return { error: `validation: ${error.message}` };
    await readBack.mapAsync(GPUMapMode.READ);
    const after = new Uint8Array(readBack.getMappedRange());
    let binary = "";
    for (let i = 0; i < after.length; i += 0x8000) {
      binary += String.fromCharCode(...after.subarray(i, i + 0x8000));
    }
    const info = adapter.info || {};
    return { adapter: `${info.vendor} / ${info.architecture}`, after: btoa(binary) };
  }, { step, buffers });
});
if (report.after) {
  writeFileSync(join(dir, "after.bin"), Buffer.from(report.after, "base64"));
  delete report.after;
}
console.log(JSON.stringify(report));
