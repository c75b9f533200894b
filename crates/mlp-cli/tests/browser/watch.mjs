// Opens the watch page of a running `mlp-cli train --watch` in headless Chromium, watches the
// curves grow and the weight pictures appear, draws a "1" for the latest model to read, presses
// Stop, and prints what it saw as one JSON line. Run by crates/mlp-cli/tests/watch_page.rs:
//   node watch.mjs URL SCREENSHOT_DIR
import { chromium } from "playwright-core";
import { join } from "node:path";

const [url, screenshots] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

const browser = await chromium.launch({
  executablePath,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 1400 } });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  await page.goto(url);
  const epochs = () => page.evaluate(() => Number(document.body.dataset.epochs || 0));
  const points = () => page.evaluate(() => Number(document.getElementById("loss").dataset.points || 0));
  await page.waitForFunction(() => Number(document.body.dataset.epochs || 0) >= 1, null, { timeout: 60000 });
  const first = { epochs: await epochs(), lossPoints: await points() };
  await page.waitForFunction((n) => Number(document.body.dataset.epochs || 0) >= n + 2, first.epochs, { timeout: 60000 });
  const later = { epochs: await epochs(), lossPoints: await points() };
  const tiles = await page.evaluate(() => document.querySelectorAll("#tiles canvas").length);
  const tileInk = await page.evaluate(() => {
    const canvas = document.querySelector("#tiles canvas");
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const levels = new Set();
    for (let i = 0; i < data.length; i += 4) levels.add(data[i]);
    return levels.size;
  });
  const confusionRows = await page.evaluate(() => document.querySelectorAll("#confusion tr").length);

  // A "1", as a person draws it.
  const box = await page.locator("#board").boundingBox();
  const at = ([x, y]) => [box.x + x * box.width / 280, box.y + y * box.height / 280];
  await page.mouse.move(...at([150, 40]));
  await page.mouse.down();
  await page.mouse.move(...at([140, 140]), { steps: 12 });
  await page.mouse.move(...at([135, 240]), { steps: 12 });
  await page.mouse.up();
  await page.waitForFunction(() => document.body.dataset.read !== undefined, null, { timeout: 20000 });
  const read = await page.evaluate(() => document.body.dataset.read);
  await page.screenshot({ path: join(screenshots, "watch.png"), fullPage: true });

  await page.click("#stop");
  await page.waitForFunction(() => document.body.dataset.ended === "true", null, { timeout: 30000 });
  const state = await page.textContent("#state");
  await page.screenshot({ path: join(screenshots, "watch-stopped.png"), fullPage: true });
  console.log(JSON.stringify({ first, later, tiles, tileInk, confusionRows, read, state, problems,
    model: await page.textContent("#model"), options: await page.textContent("#options") }));
} finally {
  await browser.close();
}
