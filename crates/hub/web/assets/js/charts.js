// Small live charts: a line with a soft fill on a <canvas>, sharp on high-DPI screens.
// Knows nothing about cameras: it draws an array of numbers (null = gap) and nothing else.

/** A fixed-capacity series of samples, oldest first. */
export class Series {
  constructor(capacity = 300) {
    this.capacity = capacity;
    this.values = [];
  }

  push(value) {
    this.values.push(Number.isFinite(value) ? value : null);
    if (this.values.length > this.capacity) this.values.shift();
  }

  last() {
    return this.values.length ? this.values[this.values.length - 1] : null;
  }
}

/**
 * Draws `series` on `canvas`. `min`/`max` fix the axis (otherwise it follows the data);
 * the x axis always spans the series' capacity so time runs at a constant speed.
 */
export function drawSparkline(canvas, series, { color = "#58a6ff", min, max } = {}) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
  const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, w, h);

  const values = series.values;
  const present = values.filter((v) => v !== null);
  if (present.length === 0) return;
  let lo = min ?? Math.min(...present);
  let hi = max ?? Math.max(...present);
  if (hi - lo < 1e-9) {
    hi += 1;
    lo -= min === undefined ? 1 : 0;
  }
  if (max === undefined) hi += (hi - lo) * 0.15; // headroom: a steady value is not a flat top edge
  const pad = 2 * dpr;
  // The first half minute fills the width at a steady pace; after that the chart compresses up
  // to the series' capacity, so a fresh chart is not a stub at the right edge.
  const span = Math.min(series.capacity, Math.max(30, values.length));
  const step = (w - 2 * pad) / Math.max(1, span - 1);
  const x0 = w - pad - (values.length - 1) * step;
  const y = (v) => h - pad - ((v - lo) / (hi - lo)) * (h - 2 * pad);

  // One sub-path per run of non-null values, so gaps stay gaps.
  const runs = [];
  let run = null;
  values.forEach((v, i) => {
    if (v === null) {
      run = null;
      return;
    }
    if (!run) runs.push((run = []));
    run.push([x0 + i * step, y(v)]);
  });

  ctx.lineWidth = 1.5 * dpr;
  ctx.strokeStyle = color;
  ctx.fillStyle = color + "26"; // ~15 % opacity
  for (const pts of runs) {
    if (pts.length === 1) pts.push([pts[0][0] + step / 2, pts[0][1]]); // a lone sample: a dash
    ctx.beginPath();
    pts.forEach(([px, py], i) => (i ? ctx.lineTo(px, py) : ctx.moveTo(px, py)));
    ctx.stroke();
    ctx.lineTo(pts[pts.length - 1][0], h);
    ctx.lineTo(pts[0][0], h);
    ctx.closePath();
    ctx.fill();
  }
}
