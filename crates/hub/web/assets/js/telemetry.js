// Telemetry: the last five minutes of every camera's health (from the hub's once-a-second
// `telemetry` messages) and of the open live view (latency), shown as cards with a number and
// a small chart. History is kept for all cameras, so opening one shows its past at once.
// Never talks to the network.

import { Series, drawSparkline } from "./charts.js";

const HISTORY = 300; // samples at 1 Hz: five minutes

const METRICS = [
  { key: "fps", label: "Frame rate", unit: "fps", color: "#58a6ff", min: 0, fmt: (v) => v.toFixed(1) },
  { key: "kbps", label: "Bitrate in", unit: "kbit/s", color: "#a371f7", min: 0, fmt: (v) => v.toFixed(0) },
  { key: "latency", label: "Latency", unit: "ms", color: "#f0883e", min: 0, fmt: (v) => v.toFixed(0) },
  { key: "heap", label: "Heap free", unit: "KiB", color: "#3fb950", min: 0, fmt: (v) => v.toFixed(0) },
  { key: "psram", label: "PSRAM free", unit: "MiB", color: "#39c5cf", min: 0, fmt: (v) => v.toFixed(2) },
  { key: "rssi", label: "Wi-Fi signal", unit: "dBm", color: "#d29922", fmt: (v) => v.toFixed(0) },
];

export function formatUptime(ms) {
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d) return `${d}d ${h}h ${m}m`;
  if (h) return `${h}h ${m}m ${s}s`;
  return `${m}m ${s}s`;
}

export class Telemetry {
  #history = new Map(); // camera id -> { series: {key: Series}, lastBytes, lastT }
  #camera = null;
  #cards = {};
  #info = null;

  constructor(root) {
    this.root = root;
    for (const m of METRICS) {
      const card = document.createElement("div");
      card.className = "metric";
      card.dataset.metric = m.key;
      const label = document.createElement("span");
      label.className = "metric-label";
      label.textContent = m.label;
      label.id = `metric-${m.key}`;
      const value = document.createElement("span");
      value.className = "metric-value";
      value.textContent = "–";
      const canvas = document.createElement("canvas");
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", `${m.label}, last 5 minutes`);
      card.append(label, value, canvas);
      root.append(card);
      this.#cards[m.key] = { value, canvas, metric: m };
    }
    const extra = document.createElement("div");
    extra.className = "metric";
    extra.innerHTML =
      '<span class="metric-label">Uptime</span><span class="metric-value" id="metric-uptime">–</span>' +
      '<span class="metric-label">Dropped: camera / hub</span><span class="metric-value" id="metric-dropped">–</span>';
    root.append(extra);
    this.uptime = extra.querySelector("#metric-uptime");
    this.droppedEl = extra.querySelector("#metric-dropped");
    // Canvases are sized from CSS; redraw when the layout changes size.
    new ResizeObserver(() => this.#draw()).observe(root);
  }

  #entry(id) {
    let e = this.#history.get(id);
    if (!e) {
      e = { series: Object.fromEntries(METRICS.map((m) => [m.key, new Series(HISTORY)])), lastBytes: null, lastT: 0 };
      this.#history.set(id, e);
    }
    return e;
  }

  /** Records one `telemetry` update (a CameraInfo). */
  record(info) {
    const e = this.#entry(info.id);
    const t = info.telemetry;
    const now = performance.now();
    let kbps = null;
    if (e.lastBytes !== null && info.bytes_in >= e.lastBytes && now > e.lastT) {
      kbps = ((info.bytes_in - e.lastBytes) * 8) / (now - e.lastT); // bytes/ms*8 = kbit/s
    }
    e.lastBytes = info.bytes_in;
    e.lastT = now;
    e.series.fps.push(t?.fps ?? info.fps_in);
    e.series.kbps.push(kbps);
    e.series.heap.push(t ? t.heap_free / 1024 : null);
    e.series.psram.push(t && t.psram_free > 0 ? t.psram_free / (1024 * 1024) : null);
    e.series.rssi.push(t?.rssi ?? null);
    if (info.id === this.#camera) {
      this.#info = info;
      this.#draw();
    }
  }

  /** Records the live view's latency for the last second (ms, or null when unknown). */
  recordLatency(id, ms) {
    this.#entry(id).series.latency.push(ms);
    if (id === this.#camera) this.#draw();
  }

  /** Shows `info`'s camera. */
  show(info) {
    this.#camera = info.id;
    this.#info = info;
    this.#entry(info.id);
    this.#draw();
  }

  #draw() {
    const e = this.#camera && this.#history.get(this.#camera);
    if (!e) return;
    for (const { value, canvas, metric } of Object.values(this.#cards)) {
      const s = e.series[metric.key];
      const last = s.last();
      value.replaceChildren(last === null ? "–" : metric.fmt(last));
      if (last !== null) {
        const unit = document.createElement("small");
        unit.textContent = metric.unit;
        value.append(unit);
      }
      drawSparkline(canvas, s, metric);
    }
    const t = this.#info?.telemetry;
    this.uptime.textContent = t ? formatUptime(t.uptime_ms) : "–";
    const hubDropped = this.#info?.frames_dropped;
    this.droppedEl.textContent = `${t ? t.frames_dropped : "–"} / ${hubDropped ?? "–"}`;
  }
}
