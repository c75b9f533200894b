// The first layer's weights as pictures, shared by the serve page and the watch page: one
// canvas per unit, its weights as the input image's rows x cols, from the hex string the
// server sends (each unit's pixels, 0..255, two hex digits each).
"use strict";

function drawTiles(weights, tiles) {
  const side = Math.round(Math.sqrt(weights.pixels));
  tiles.replaceChildren();
  for (let unit = 0; unit < weights.units; unit += 1) {
    const canvas = document.createElement("canvas");
    canvas.width = side;
    canvas.height = weights.pixels / side;
    const g = canvas.getContext("2d");
    const image = g.createImageData(canvas.width, canvas.height);
    for (let p = 0; p < weights.pixels; p += 1) {
      const at = 2 * (unit * weights.pixels + p);
      const level = parseInt(weights.hex.slice(at, at + 2), 16);
      image.data.set([level, level, level, 255], 4 * p);
    }
    g.putImageData(image, 0, 0);
    canvas.title = `unit ${unit + 1}`;
    tiles.append(canvas);
  }
  tiles.dataset.units = String(weights.units);
}
