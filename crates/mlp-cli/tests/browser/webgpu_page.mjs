// A page of headless Chromium with WebGPU on (Dawn: WGSL compiled by Tint, run on SwiftShader's
// Vulkan here), for webgpu.mjs and webgpu_step.mjs. WebGPU needs a secure context, which a page
// from 127.0.0.1 is: an empty one, served here for the length of `run(page)`.
import { chromium } from "playwright-core";
import http from "node:http";

export async function onWebGpuPage(run) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--enable-unsafe-webgpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const server = http.createServer((_, response) => {
    response.writeHead(200, { "content-type": "text/html" });
    response.end("<!doctype html><title>WebGPU</title>");
  });
  await new Promise((listening) => server.listen(0, "127.0.0.1", listening));
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    return await run(page);
  } finally {
    await browser.close();
    server.close();
  }
}
