// The page: strokes on #board are sent as a PNG to /api/predict when each one ends, and the
// answer is drawn: the digit, every class's score, the 28 x 28 image the network saw, and each
// hidden layer's activations. A picture dropped on the board is sent as it is.
"use strict";

const board = document.getElementById("board");
const pen = board.getContext("2d");
const preview = document.getElementById("preview").getContext("2d");
const statusLine = document.getElementById("status");
let model = null;
let drawing = false;
let inFlight = 0;

function clearBoard() {
  pen.fillStyle = "#fff";
  pen.fillRect(0, 0, board.width, board.height);
}

function say(text, isError) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", Boolean(isError));
}

function point(event) {
  const box = board.getBoundingClientRect();
  return [(event.clientX - box.left) * board.width / box.width,
          (event.clientY - box.top) * board.height / box.height];
}

board.addEventListener("pointerdown", (event) => {
  drawing = true;
  board.setPointerCapture(event.pointerId);
  const [x, y] = point(event);
  pen.beginPath();
  pen.moveTo(x, y);
  pen.lineTo(x + 0.1, y);
  pen.stroke();
});
board.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const [x, y] = point(event);
  pen.lineTo(x, y);
  pen.stroke();
});
for (const end of ["pointerup", "pointercancel"]) {
  board.addEventListener(end, () => {
    if (!drawing) return;
    drawing = false;
    board.toBlob((png) => send(png, "image/png"), "image/png");
  });
}

document.getElementById("clear").addEventListener("click", () => {
  clearBoard();
  document.getElementById("digit").textContent = "–";
  document.getElementById("bars").replaceChildren();
  document.getElementById("hidden").replaceChildren();
  preview.clearRect(0, 0, 28, 28);
  say("");
});

board.addEventListener("dragover", (event) => { event.preventDefault(); board.classList.add("dropping"); });
board.addEventListener("dragleave", () => board.classList.remove("dropping"));
board.addEventListener("drop", (event) => {
  event.preventDefault();
  board.classList.remove("dropping");
  const file = event.dataTransfer.files[0];
  if (!file) return;
  showPicture(file);
  send(file, file.type || "application/octet-stream");
});

// Draws a dropped picture on the board, fitted, so that the user sees what was read.
function showPicture(file) {
  const url = URL.createObjectURL(file);
  const picture = new Image();
  picture.onload = () => {
    clearBoard();
    const scale = Math.min(board.width / picture.width, board.height / picture.height);
    const w = picture.width * scale, h = picture.height * scale;
    pen.drawImage(picture, (board.width - w) / 2, (board.height - h) / 2, w, h);
    URL.revokeObjectURL(url);
  };
  picture.src = url;
}

async function send(body, type) {
  inFlight += 1;
  document.body.dataset.busy = "true";
  try {
    const response = await fetch("/api/predict", { method: "POST", headers: { "Content-Type": type }, body });
    const answer = await response.json();
    if (!response.ok) {
      say(answer.error || `the server answered ${response.status}`, true);
      return;
    }
    show(answer);
  } catch (error) {
    say(`the server cannot be reached (${error})`, true);
  } finally {
    inFlight -= 1;
    if (inFlight === 0) document.body.dataset.busy = "false";
  }
}

function show(answer) {
  document.getElementById("digit").textContent = String(answer.digit);
  showBars(answer.scores, answer.digit);
  showPreview(answer.image);
  showHidden(answer.hidden);
  say(`computed by ${answer.backend}; the reference functions agree within ${answer.reference_difference.toExponential(1)}`);
  document.body.dataset.predictions = String(Number(document.body.dataset.predictions || 0) + 1);
}

function showBars(scores, best) {
  const bars = scores.map((score, digit) => {
    const row = element("div", digit === best ? "bar best" : "bar");
    row.append(element("span", "class", String(digit)));
    const track = element("div", "track");
    const fill = element("div", "fill");
    fill.style.width = `${(100 * score).toFixed(1)}%`;
    track.append(fill);
    row.append(track, element("span", "value", score.toFixed(3)));
    return row;
  });
  document.getElementById("bars").replaceChildren(...bars);
}

function showPreview(image) {
  const picture = preview.createImageData(28, 28);
  image.forEach((ink, i) => {
    picture.data.set([ink, ink, ink, 255], 4 * i);
  });
  preview.putImageData(picture, 0, 0);
}

// Sigmoid activations are in (0, 1) and shown as they are; ReLU and tanh ones are scaled by
// the layer's largest magnitude, negative ones in red.
function showHidden(layers) {
  const sigmoid = model && model.activation === "sigmoid";
  const rows = layers.map((units, k) => {
    const largest = Math.max(1e-6, ...units.map(Math.abs));
    const layer = element("div", "layer");
    layer.append(element("div", "name", `layer ${k + 1}: ${units.length} units`));
    const cells = element("div", "units");
    for (const [unit, a] of units.entries()) {
      const cell = element("div", "unit");
      const level = Math.round(255 * Math.min(1, Math.abs(sigmoid ? a : a / largest)));
      cell.style.background = a < 0 ? `rgb(${level},0,0)` : `rgb(${level},${level},${level})`;
      cell.title = `unit ${unit}: ${a.toFixed(3)}`;
      cells.append(cell);
    }
    layer.append(cells);
    return layer;
  });
  document.getElementById("hidden").replaceChildren(...rows);
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function loadModel() {
  try {
    const response = await fetch("/api/model");
    model = await response.json();
    const accuracy = model.accuracy == null ? "accuracy not recorded" : `${(100 * model.accuracy).toFixed(2)} % test accuracy`;
    document.getElementById("model").textContent =
      `${model.file}: ${model.layers.join("-")}, ${model.activation} hidden layers, ${model.output} output, ` +
      `${model.epochs} epochs, ${accuracy}`;
    const options = Object.entries(model.options || {}).map(([key, value]) => `${key.replaceAll("_", " ")} ${value}`);
    document.getElementById("options").textContent = options.length ? `options: ${options.join(", ")}` : "";
    document.getElementById("scores-meaning").textContent = `scores: ${model.scores}`;
    drawTiles(model.weights, document.getElementById("tiles"));
  } catch (error) {
    say(`cannot read the model's description (${error})`, true);
  }
}

pen.lineWidth = 20;
pen.lineCap = "round";
pen.lineJoin = "round";
pen.strokeStyle = "#000";
clearBoard();
loadModel();
