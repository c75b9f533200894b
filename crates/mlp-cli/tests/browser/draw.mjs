// Draws digits on the page of a running `mlp-cli serve` in headless Chromium, drops a picture on
// it, and prints what the page read as one JSON line. Run by crates/mlp-cli/tests/serve_page.rs:
//   node draw.mjs URL SCREENSHOT_DIR DROPPED_PNG
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const [url, screenshots, droppedPng] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

// Strokes on the 280 x 280 board, each a list of points: a "1" and a "7" as a person draws them.
const DIGITS = {
  one: [[[150, 40], [140, 140], [135, 240]]],
  seven: [[[70, 50], [140, 48], [215, 52]], [[215, 52], [170, 140], [125, 245]]],
};

const browser = await chromium.launch({
  executablePath,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 760 } });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  await page.goto(url);
  await page.waitForFunction(() => !document.getElementById("model").textContent.startsWith("loading"));
  const result = { model: await page.textContent("#model"), options: await page.textContent("#options"),
    tiles: await page.evaluate(() => document.querySelectorAll("#tiles canvas").length) };

  for (const [name, strokes] of Object.entries(DIGITS)) {
    await page.click("#clear");
    for (const stroke of strokes) {
      const before = await predictions(page);
      await drawStroke(page, stroke);
      await page.waitForFunction((n) => Number(document.body.dataset.predictions || 0) > n, before);
    }
    result[name] = await reading(page);
    await page.screenshot({ path: join(screenshots, `drawn-${name}.png`), fullPage: true });
  }

  await page.click("#clear");
  const before = await predictions(page);
  const bytes = readFileSync(droppedPng).toString("base64");
  const transfer = await page.evaluateHandle((b64) => {
    const data = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([data], "digit.png", { type: "image/png" }));
    return dt;
  }, bytes);
  await page.dispatchEvent("#board", "drop", { dataTransfer: transfer });
  await page.waitForFunction((n) => Number(document.body.dataset.predictions || 0) > n, before);
  result.dropped = await reading(page);
  await page.screenshot({ path: join(screenshots, "dropped.png"), fullPage: true });
  result.problems = problems;
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}

async function predictions(page) {
  return page.evaluate(() => Number(document.body.dataset.predictions || 0));
}

async function drawStroke(page, points) {
  const box = await page.locator("#board").boundingBox();
  const at = ([x, y]) => [box.x + x * box.width / 280, box.y + y * box.height / 280];
  await page.mouse.move(...at(points[0]));
  await page.mouse.down();
  for (let i = 1; i < points.length; i++) {
    await page.mouse.move(...at(points[i]), { steps: 12 });
  }
  await page.mouse.up();
}

// The digit shown, the number of score bars, the ink in the 28 x 28 preview, and the number
// of hidden units drawn.
async function reading(page) {
  return page.evaluate(() => {
    const preview = document.getElementById("preview").getContext("2d").getImageData(0, 0, 28, 28).data;
    let ink = 0;
    for (let i = 0; i < preview.length; i += 4) ink += preview[i];
    return {
      digit: document.getElementById("digit").textContent,
      bars: document.querySelectorAll("#bars .bar").length,
      previewInk: ink,
      hiddenUnits: document.querySelectorAll("#hidden .unit").length,
      status: document.getElementById("status").textContent,
    };
  });
}
