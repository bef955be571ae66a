// Small time-series charts on a <canvas>: a line with a soft fill, a value axis (the minimum
// and maximum of the scale, and the unit) and a time axis with a few tick labels counted back
// from now, sharp on high-DPI screens. Knows nothing about cameras: it draws points
// `{t, v, dt}` (ms since the epoch, a number or null for a gap, the sampling interval) over a
// time window, and nothing else. What it drew is mirrored in data-* attributes of the canvas
// (range, scale, ticks, point count, plot box) so tests and tools can read what a user sees.

const FONT_PX = 10;
const TEXT = "#9eabb8";
const GRID = "#2c3644";
/** Candidate spacings of time ticks, ms; the smallest that leaves room for its labels wins. */
const TICK_STEPS = [
  30e3, 60e3, 120e3, 300e3, 600e3, 900e3, 1200e3, 1800e3, 3600e3, 7200e3, 10800e3, 21600e3, 43200e3,
];
/** Least room per time label, CSS px. */
const TICK_ROOM = 40;

/** The smallest of 1, 2, 2.5, 5 × 10^k that is ≥ x (x > 0). */
export function niceCeil(x) {
  if (!(x > 0)) return 1;
  const e = 10 ** Math.floor(Math.log10(x));
  const f = x / e;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * e;
}

/** "now", "−30s", "−4m", "−12h": how long before now `ms` is. */
export function formatAgo(ms) {
  if (ms <= 0) return "now";
  if (ms < 60e3) return `−${Math.round(ms / 1000)}s`;
  if (ms < 3600e3 || ms % 3600e3) return `−${Math.round(ms / 60e3)}m`;
  return `−${Math.round(ms / 3600e3)}h`;
}

function formatValue(v) {
  if (Math.abs(v) >= 10 || Number.isInteger(v)) return String(Math.round(v));
  return String(Number(v.toFixed(2)));
}

/** The value scale for `values`: `[lo, hi]`, with `min` fixed when given. */
function scale(values, min) {
  const dataMin = Math.min(...values);
  const dataMax = Math.max(...values);
  if (min !== undefined) {
    const lo = Math.min(min, dataMin);
    return [lo, lo + niceCeil((dataMax - lo) * 1.05)];
  }
  const step = niceCeil((dataMax - dataMin) / 2 || Math.abs(dataMax) / 10 || 1);
  const lo = Math.floor(dataMin / step) * step;
  let hi = Math.ceil(dataMax / step) * step;
  if (hi <= lo) hi = lo + step;
  return [lo, hi];
}

/**
 * Draws `points` from `now - rangeMs` to `now` on `canvas`. `min` fixes the bottom of the
 * scale (otherwise it follows the data); `unit` labels the value axis.
 */
export function drawChart(canvas, points, { rangeMs, now = Date.now(), color = "#58a6ff", min, unit = "" }) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
  const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, w, h);
  const d = canvas.dataset;
  d.rangeMs = String(rangeMs);
  d.unit = unit;

  const from = now - rangeMs;
  const shown = points.filter((p) => p.t >= from && p.t <= now + 2000);
  const values = shown.filter((p) => p.v !== null).map((p) => p.v);
  d.points = String(values.length);
  const first = shown.find((p) => p.v !== null);
  if (first) d.first = String(Math.round(first.t));
  else delete d.first;
  const [lo, hi] = values.length ? scale(values, min) : [min ?? 0, (min ?? 0) + 1];
  d.yMin = String(lo);
  d.yMax = String(hi);
  if (values.length) d.max = String(Math.max(...values));
  else delete d.max;

  // Layout: value labels in a gutter on the left, time labels in one below.
  ctx.font = `${FONT_PX * dpr}px system-ui, sans-serif`;
  const loText = formatValue(lo);
  const hiText = formatValue(hi);
  const gutter = Math.ceil(Math.max(...[loText, hiText, unit].map((s) => ctx.measureText(s).width)) + 5 * dpr);
  const plot = {
    left: gutter,
    top: Math.round((FONT_PX / 2 + 1) * dpr),
    right: w - Math.round(2 * dpr),
    bottom: h - Math.round((FONT_PX + 4) * dpr),
  };
  d.plot = JSON.stringify(plot);
  const pw = Math.max(1, plot.right - plot.left);
  const ph = Math.max(1, plot.bottom - plot.top);
  const x = (t) => plot.left + ((t - from) / rangeMs) * pw;
  const y = (v) => plot.bottom - ((v - lo) / (hi - lo)) * ph;

  // Scale lines at the bottom and top, and the value labels.
  ctx.strokeStyle = GRID;
  ctx.lineWidth = dpr;
  ctx.beginPath();
  for (const gy of [plot.top, plot.bottom]) {
    ctx.moveTo(plot.left, gy + 0.5);
    ctx.lineTo(plot.right, gy + 0.5);
  }
  ctx.stroke();
  ctx.fillStyle = TEXT;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  const lx = gutter - 4 * dpr;
  ctx.fillText(hiText, lx, plot.top);
  ctx.fillText(loText, lx, plot.bottom);
  if (unit && ph > 3 * FONT_PX * dpr) ctx.fillText(unit, lx, plot.top + (FONT_PX + 2) * dpr);

  // Time ticks: every `step` back from now, as many as fit.
  const step = TICK_STEPS.find((s) => (s / rangeMs) * pw >= TICK_ROOM * dpr) ?? rangeMs;
  const ticks = [];
  for (let ago = 0; ago <= rangeMs + 1; ago += step) ticks.push(ago);
  ctx.textBaseline = "top";
  ctx.beginPath();
  for (const ago of ticks) {
    const tx = x(now - ago);
    ctx.textAlign = ago === 0 ? "right" : tx - plot.left < 12 * dpr ? "left" : "center";
    ctx.fillText(formatAgo(ago), ago === 0 ? plot.right : tx, plot.bottom + 3 * dpr);
    ctx.moveTo(Math.round(tx) + 0.5, plot.bottom);
    ctx.lineTo(Math.round(tx) + 0.5, plot.bottom + 2 * dpr);
  }
  ctx.stroke();
  d.ticks = ticks
    .slice()
    .reverse()
    .map((ago) => formatAgo(ago))
    .join(",");

  if (!values.length) return;
  // One sub-path per run of samples without a gap; samples sharing a pixel column are
  // averaged, so a day of data costs no more to draw than the chart is wide.
  const runs = [];
  let run = null;
  let prev = null;
  let bucket = null;
  const flush = () => {
    if (bucket) run.push([bucket.x, y(bucket.sum / bucket.n)]);
    bucket = null;
  };
  for (const p of shown) {
    const gap = prev && p.t - prev.t > 2.5 * Math.max(p.dt ?? 1000, prev.dt ?? 1000);
    if (p.v === null || gap) {
      flush();
      run = null;
    }
    prev = p;
    if (p.v === null) continue;
    if (!run) runs.push((run = []));
    const px = Math.round(x(p.t));
    if (bucket && bucket.x === px) {
      bucket.sum += p.v;
      bucket.n += 1;
    } else {
      flush();
      bucket = { x: px, sum: p.v, n: 1 };
    }
  }
  flush();

  ctx.save();
  ctx.beginPath();
  ctx.rect(plot.left, 0, pw, plot.bottom);
  ctx.clip();
  ctx.lineWidth = 1.5 * dpr;
  ctx.strokeStyle = color;
  ctx.fillStyle = color + "26"; // ~15 % opacity
  for (const pts of runs) {
    if (pts.length === 1) pts.push([pts[0][0] + 2 * dpr, pts[0][1]]); // a lone sample: a dash
    ctx.beginPath();
    pts.forEach(([px, py], i) => (i ? ctx.lineTo(px, py) : ctx.moveTo(px, py)));
    ctx.stroke();
    ctx.lineTo(pts[pts.length - 1][0], plot.bottom);
    ctx.lineTo(pts[0][0], plot.bottom);
    ctx.closePath();
    ctx.fill();
  }
  ctx.restore();
}
