// The watch page: Server-Sent Events from /api/events draw the run as it goes. The loss and
// accuracy curves grow, the first layer's weights are redrawn as pictures each epoch, the
// confusion matrix is the latest validation's, and a drawn digit is read by the latest
// epoch's model on demand and again after each epoch.
"use strict";

const run = { info: null, batches: [], epochs: [], ended: false };
const statusLine = document.getElementById("status");
const board = document.getElementById("board");
const pen = board.getContext("2d");
let drawn = false;
let drawing = false;

function say(text) { statusLine.textContent = text; }
function setState(text) { document.getElementById("state").textContent = text; }

// A chart of series [{points: [[x, y]], colour, dots}] on a canvas, axes from the data.
function chart(canvas, series, yLabel, xMax) {
  const g = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, left = 70, bottom = 40, top = 10, right = 10;
  g.clearRect(0, 0, w, h);
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  if (ys.length === 0) return;
  let low = Math.min(...ys), high = Math.max(...ys);
  if (high - low < 1e-9) { high += 1e-3; low -= 1e-3; }
  const x = (v) => left + (v / Math.max(xMax, 1)) * (w - left - right);
  const y = (v) => top + (1 - (v - low) / (high - low)) * (h - top - bottom);
  g.strokeStyle = "#999"; g.fillStyle = "#555"; g.font = "20px system-ui"; g.lineWidth = 1;
  g.beginPath(); g.moveTo(left, top); g.lineTo(left, h - bottom); g.lineTo(w - right, h - bottom); g.stroke();
  for (const v of [low, (low + high) / 2, high]) g.fillText(v.toPrecision(3), 2, y(v) + 6);
  g.fillText(`epoch (of ${xMax})`, w / 2 - 50, h - 8);
  for (const s of series) {
    g.strokeStyle = s.colour; g.fillStyle = s.colour; g.lineWidth = s.dots ? 3 : 2;
    g.beginPath();
    s.points.forEach(([px, py], i) => (i ? g.lineTo(x(px), y(py)) : g.moveTo(x(px), y(py))));
    g.stroke();
    if (s.dots) for (const [px, py] of s.points) { g.beginPath(); g.arc(x(px), y(py), 5, 0, 7); g.fill(); }
  }
  canvas.dataset.points = String(series.reduce((n, s) => n + s.points.length, 0));
  canvas.setAttribute("aria-label", `${yLabel}: ${canvas.dataset.points} points`);
}

function drawCharts() {
  const epochs = run.info ? run.info.epochs : 1;
  chart(document.getElementById("loss"), [
    { points: run.batches.map((b) => [b.epoch - 1 + b.batch / b.batches, b.loss]), colour: "#9ab" },
    { points: run.epochs.map((e) => [e.epoch, e.train_loss]), colour: "#4a78c2", dots: true },
    { points: run.epochs.map((e) => [e.epoch, e.val_loss]), colour: "#d62", dots: true },
  ], "loss", epochs);
  chart(document.getElementById("accuracy"), [
    { points: run.epochs.map((e) => [e.epoch, 100 * e.val_accuracy]), colour: "#0a7", dots: true },
  ], "accuracy %", epochs);
}

// The first layer's pictures (tiles.js); wide layers get smaller ones, so that all of them
// fit beside the curves.
function showTiles(weights) {
  const tiles = document.getElementById("tiles");
  drawTiles(weights, tiles);
  const size = weights.units > 100 ? "28px" : "42px";
  for (const canvas of tiles.children) canvas.style.width = canvas.style.height = size;
}

function drawConfusion(counts) {
  const names = (run.info && run.info.class_names) || counts.map((_, i) => String(i));
  const table = document.getElementById("confusion");
  const head = `<tr><th>true\\read</th>${counts.map((_, i) => `<th>${names[i] ?? i}</th>`).join("")}</tr>`;
  const rows = counts.map((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    const cells = row.map((n, j) => {
      const share = n / total;
      const colour = i === j ? `rgba(0,170,119,${share})` : `rgba(214,102,34,${Math.min(1, 4 * share)})`;
      return `<td style="background:${colour}">${n}</td>`;
    });
    return `<tr><th>${names[i] ?? i}</th>${cells.join("")}</tr>`;
  });
  table.innerHTML = head + rows.join("");
}

const events = new EventSource("/api/events");
events.addEventListener("run", (event) => {
  run.info = JSON.parse(event.data);
  run.batches = []; run.epochs = [];
  document.getElementById("model").textContent = `${run.info.backend}`;
  document.getElementById("options").textContent = `${run.info.settings}; ${run.info.training_images} training images, validation on ${run.info.validation}`;
  document.getElementById("save").disabled = !run.info.can_save;
  document.getElementById("save").title = run.info.can_save ? "" : "the run was given no --save FILE";
  setState(`training: ${run.info.epochs} epochs of ${run.info.batches} batches`);
});
events.addEventListener("batch", (event) => {
  run.batches.push(JSON.parse(event.data));
  drawCharts();
});
events.addEventListener("epoch", (event) => {
  const epoch = JSON.parse(event.data);
  run.epochs.push(epoch);
  if (epoch.weights) showTiles(epoch.weights);
  if (epoch.confusion) drawConfusion(epoch.confusion);
  drawCharts();
  setState(`epoch ${epoch.epoch} of ${run.info ? run.info.epochs : "?"}: validation accuracy ${(100 * epoch.val_accuracy).toFixed(2)} %`);
  document.body.dataset.epochs = String(run.epochs.length);
  if (drawn) read();
});
events.addEventListener("end", (event) => {
  run.ended = true;
  setState(`the run has ended: ${JSON.parse(event.data).reason}`);
  document.body.dataset.ended = "true";
  document.getElementById("stop").disabled = true;
  document.getElementById("save").disabled = true;
  events.close();
});
events.onerror = () => { if (!run.ended) say("the run cannot be reached; retrying"); };
events.onopen = () => say("");

document.getElementById("stop").addEventListener("click", async () => {
  // Said before asking: the run's "end" event may arrive before the answer does.
  setState("stopping…");
  await post("/api/stop");
});
document.getElementById("save").addEventListener("click", async () => {
  const answer = await post("/api/save");
  if (answer && answer.saved) say(`saved the model of epoch ${answer.epoch} to ${answer.saved}`);
});

async function post(path, body, type) {
  try {
    const response = await fetch(path, { method: "POST", headers: type ? { "Content-Type": type } : {}, body });
    const answer = await response.json();
    if (!response.ok) { say(answer.error || `the run answered ${response.status}`); return null; }
    return answer;
  } catch (error) {
    say(`the run cannot be reached (${error})`);
    return null;
  }
}

// The drawing: white paper, black ink, read when a stroke ends and after each epoch.
function clearBoard() { pen.fillStyle = "#fff"; pen.fillRect(0, 0, board.width, board.height); }
clearBoard();
pen.lineWidth = 22; pen.lineCap = "round"; pen.lineJoin = "round"; pen.strokeStyle = "#000";
function point(event) {
  const box = board.getBoundingClientRect();
  return [(event.clientX - box.left) * board.width / box.width, (event.clientY - box.top) * board.height / box.height];
}
board.addEventListener("pointerdown", (event) => {
  drawing = true; board.setPointerCapture(event.pointerId);
  const [x, y] = point(event);
  pen.beginPath(); pen.moveTo(x, y); pen.lineTo(x + 0.1, y); pen.stroke();
});
board.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const [x, y] = point(event);
  pen.lineTo(x, y); pen.stroke();
});
for (const end of ["pointerup", "pointercancel"]) {
  board.addEventListener(end, () => { if (drawing) { drawing = false; drawn = true; read(); } });
}
document.getElementById("clear").addEventListener("click", () => {
  clearBoard(); drawn = false;
  document.getElementById("digit").textContent = "–";
  document.getElementById("bars").replaceChildren();
});

function read() {
  board.toBlob(async (png) => {
    const answer = await post("/api/predict", png, "image/png");
    if (!answer) return;
    document.getElementById("digit").textContent = String(answer.digit);
    document.getElementById("read-epoch").textContent = `by the model of epoch ${answer.epoch}`;
    document.body.dataset.read = String(answer.digit);
    const bars = document.getElementById("bars");
    bars.replaceChildren(...answer.scores.map((score, i) => {
      const bar = document.createElement("div");
      bar.className = i === answer.digit ? "bar best" : "bar";
      bar.innerHTML = `<span class="class">${i}</span><span class="track"><span class="fill" style="display:block;width:${(100 * score).toFixed(1)}%"></span></span><span class="value">${score.toFixed(3)}</span>`;
      return bar;
    }));
  }, "image/png");
}
