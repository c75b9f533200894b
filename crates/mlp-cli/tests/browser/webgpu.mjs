// Builds the GPU backend's pipelines again in Chromium's WebGPU (Dawn: WGSL compiled by Tint, run
// on SwiftShader's Vulkan here), at WebGPU's default limits, and prints one JSON line: the
// adapter, and for each pipeline the compiler's messages and any error creating it. Run by
// crates/mlp-cli/tests/webgpu.rs:
//   node webgpu.mjs PIPELINES.json
// PIPELINES.json: [{ name, source, bindings: [{ type, dynamic }], constants: { NAME: value } }]
import { readFileSync } from "node:fs";
import { onWebGpuPage } from "./webgpu_page.mjs";

const pipelines = JSON.parse(readFileSync(process.argv[2], "utf8"));
const report = await onWebGpuPage(async (page) => {
  return await page.evaluate(async (pipelines) => {
    if (!navigator.gpu) return { error: "navigator.gpu is missing: WebGPU is off in this browser" };
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return { error: "no WebGPU adapter" };
    const info = adapter.info || {};
    // No required limits: the device has WebGPU's defaults, whatever the adapter could give.
    const device = await adapter.requestDevice();
    const lost = [];
    device.lost.then((l) => lost.push(l.message));
    const results = [];
    for (const p of pipelines) {
      const result = { name: p.name, messages: [], errors: [] };
      device.pushErrorScope("validation");
      const module = device.createShaderModule({ label: p.name, code: p.source });
      const compiled = await module.getCompilationInfo();
      for (const m of compiled.messages) {
        result.messages.push(`${m.type} at ${m.lineNum}:${m.linePos}: ${m.message}`);
      }
      const layout = device.createBindGroupLayout({
        label: p.name,
        entries: p.bindings.map((b, binding) => ({
          binding,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: b.type, hasDynamicOffset: b.dynamic },
        })),
      });
      try {
        await device.createComputePipelineAsync({
          label: p.name,
          layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
          compute: { module, entryPoint: "main", constants: p.constants },
        });
      } catch (e) {
        result.errors.push(`pipeline: ${e.message}`);
      }
      const scoped = await device.popErrorScope();
      if (scoped) result.errors.push(`validation: ${scoped.message}`);
      results.push(result);
    }
    return {
      adapter: [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" / "),
      limits: { maxStorageBuffersPerShaderStage: device.limits.maxStorageBuffersPerShaderStage,
                maxComputeInvocationsPerWorkgroup: device.limits.maxComputeInvocationsPerWorkgroup,
                maxComputeWorkgroupStorageSize: device.limits.maxComputeWorkgroupStorageSize,
                maxUniformBufferBindingSize: device.limits.maxUniformBufferBindingSize },
      lost,
      results,
    };
  }, pipelines);
});
console.log(JSON.stringify(report));
