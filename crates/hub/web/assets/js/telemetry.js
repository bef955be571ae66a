// Telemetry of the open camera: cards with the current value and a chart over a chosen range
// (5 minutes, an hour, a day). The past comes from the hub's history
// (`GET /api/cameras/{camera}/telemetry`: an hour at 1 s, a day at 1 min), loaded when a
// camera is shown, again after the hub comes back and every few minutes; the hub's
// once-a-second `telemetry` messages are appended live. Latency is measured by this page's
// viewer, so its chart starts when the page opened. Never draws a range it does not label.

import { api } from "./api.js";
import { drawChart } from "./charts.js";

const FINE_MS = 3600e3; // the hub keeps an hour at 1 s
const RELOAD_MS = 5 * 60e3;

export const RANGES = [
  { ms: 300e3, label: "last 5 minutes", button: "5 min" },
  { ms: 3600e3, label: "last hour", button: "1 h" },
  { ms: 86400e3, label: "last 24 hours", button: "24 h" },
];

const KIB = 1024;
const MIB = 1024 * 1024;

const METRICS = [
  { key: "fps", label: "Frame rate", unit: "fps", color: "#58a6ff", min: 0, fmt: (v) => v.toFixed(1) },
  { key: "kbps", label: "Bitrate in", unit: "kbit/s", color: "#a371f7", min: 0, fmt: (v) => v.toFixed(0) },
  { key: "latency", label: "Latency (this page)", unit: "ms", color: "#f0883e", min: 0, fmt: (v) => v.toFixed(0) },
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

/** A hub history sample as the charts keep it (`dt` = its sampling interval). */
function fromHub(s, dt, skew) {
  const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);
  const psram = num(s.psram_free);
  const heap = num(s.heap_free);
  return {
    t: s.t_ms + skew,
    dt,
    fps: num(s.fps),
    kbps: num(s.kbps),
    heap: heap === null ? null : heap / KIB,
    psram: psram ? psram / MIB : null,
    rssi: num(s.rssi),
  };
}

export class Telemetry {
  #history = new Map(); // camera id -> { fine, coarse, latency, lastBytes, lastT, loadedAt }
  #camera = null;
  #cards = {};
  #info = null;
  #range = RANGES[0];
  #skew = 0; // this browser's clock minus the hub's, when they differ by more than a second

  /**
   * @param {HTMLElement} root where the cards go
   * @param {{rangeLabel: HTMLElement, rangeButtons: HTMLElement}} ui the heading's range text
   *   and the element to fill with range buttons
   */
  constructor(root, { rangeLabel, rangeButtons }) {
    this.root = root;
    this.rangeLabel = rangeLabel;
    this.buttons = RANGES.map((r) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "btn small";
      b.textContent = r.button;
      b.dataset.range = String(r.ms);
      b.setAttribute("aria-pressed", String(r === this.#range));
      b.addEventListener("click", () => this.setRange(r.ms));
      return b;
    });
    rangeButtons.replaceChildren(...this.buttons);
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
    this.#showRange();
    // Canvases are sized from CSS; redraw when the layout changes size.
    new ResizeObserver(() => this.#draw()).observe(root);
    // The time axis moves even when no sample arrives (camera offline, hub away).
    setInterval(() => this.#draw(), 1000);
    setInterval(() => this.#camera && this.#load(this.#camera), RELOAD_MS);
  }

  /** Shows the range of `ms` (one of RANGES). */
  setRange(ms) {
    this.#range = RANGES.find((r) => r.ms === ms) ?? RANGES[0];
    this.#showRange();
    this.#draw();
  }

  #showRange() {
    this.rangeLabel.textContent = this.#range.label;
    for (const b of this.buttons) b.setAttribute("aria-pressed", String(b.dataset.range === String(this.#range.ms)));
    for (const { canvas, metric } of Object.values(this.#cards)) {
      canvas.setAttribute("aria-label", `${metric.label}, ${this.#range.label}`);
    }
  }

  #entry(id) {
    let e = this.#history.get(id);
    if (!e) {
      e = { fine: [], coarse: [], latency: [], lastBytes: null, lastT: 0, loadedAt: 0 };
      this.#history.set(id, e);
    }
    return e;
  }

  /** Records one live `telemetry` update (a CameraInfo). */
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
    // The same quantities as the hub's history: frames the hub received, bytes it received.
    e.fine.push({
      t: Date.now(),
      dt: 1000,
      fps: Number.isFinite(info.fps_in) ? info.fps_in : null,
      kbps,
      heap: t ? t.heap_free / KIB : null,
      psram: t && t.psram_free > 0 ? t.psram_free / MIB : null,
      rssi: t?.rssi ?? null,
    });
    this.#trim(e);
    if (info.id === this.#camera) {
      this.#info = info;
      this.#draw();
    }
  }

  /** Records the live view's latency for the last second (ms, or null when unknown). */
  recordLatency(id, ms) {
    const e = this.#entry(id);
    e.latency.push({ t: Date.now(), dt: 1000, latency: ms });
    this.#trim(e);
    if (id === this.#camera) this.#draw();
  }

  /** Shows `info`'s camera, loading its history the first time. */
  show(info) {
    const switched = info.id !== this.#camera;
    this.#camera = info.id;
    this.#info = info;
    const e = this.#entry(info.id);
    if (switched) {
      if (!e.loadedAt) this.#load(info.id);
      this.#draw();
    }
  }

  /** Loads the open camera's history again (the hub is back after an outage). */
  refresh() {
    if (this.#camera) this.#load(this.#camera);
  }

  async #load(id) {
    let res;
    try {
      res = await api.telemetry(id);
    } catch {
      return; // Unknown camera or hub away: live samples still arrive, the next load fills in.
    }
    const { body, hubNow } = res;
    if (hubNow !== null) {
      const skew = Date.now() - hubNow;
      // The Date header has 1 s resolution: only a larger difference is a real clock skew.
      this.#skew = Math.abs(skew) > 2000 ? skew : 0;
    }
    const e = this.#entry(id);
    const fine = (Array.isArray(body?.fine) ? body.fine : []).map((s) => fromHub(s, 1000, this.#skew));
    const coarse = (Array.isArray(body?.coarse) ? body.coarse : []).map((s) => fromHub(s, 60e3, this.#skew));
    if (fine.length) {
      // Keep what this page saw before and after what the hub has (a hub restart forgets).
      const start = fine[0].t - 500;
      const end = fine[fine.length - 1].t + 500;
      e.fine = [...e.fine.filter((s) => s.t < start), ...fine, ...e.fine.filter((s) => s.t > end)];
    }
    if (coarse.length) e.coarse = coarse;
    e.loadedAt = Date.now();
    this.#trim(e);
    if (id === this.#camera) this.#draw();
  }

  #trim(e) {
    const oldest = Date.now() - FINE_MS - 60e3;
    while (e.fine.length && e.fine[0].t < oldest) e.fine.shift();
    while (e.latency.length && e.latency[0].t < oldest) e.latency.shift();
  }

  #draw() {
    const e = this.#camera && this.#history.get(this.#camera);
    if (!e) return;
    const now = Date.now();
    // Beyond the fine hour, the hub's per-minute means fill in the rest of the day.
    let samples = e.fine;
    if (this.#range.ms > FINE_MS && e.coarse.length) {
      const fineStart = e.fine.length ? e.fine[0].t : Infinity;
      samples = [...e.coarse.filter((s) => s.t < fineStart - 30e3), ...e.fine];
    }
    for (const { value, canvas, metric } of Object.values(this.#cards)) {
      const source = metric.key === "latency" ? e.latency : samples;
      const points = source.map((s) => ({ t: s.t, dt: s.dt, v: s[metric.key] ?? null }));
      // The newest value; a live sample without one (the first bitrate after a reload has no
      // earlier byte count) falls back to the one just before it, never to an old one.
      const n = points.length;
      let last = n ? points[n - 1].v : null;
      if (last === null && n > 1 && points[n - 1].t - points[n - 2].t < 2500) last = points[n - 2].v;
      value.replaceChildren(last === null ? "–" : metric.fmt(last));
      if (last !== null) {
        const unit = document.createElement("small");
        unit.textContent = metric.unit;
        value.append(unit);
      }
      drawChart(canvas, points, { rangeMs: this.#range.ms, now, color: metric.color, min: metric.min, unit: metric.unit });
    }
    const t = this.#info?.telemetry;
    this.uptime.textContent = t ? formatUptime(t.uptime_ms) : "–";
    const hubDropped = this.#info?.frames_dropped;
    this.droppedEl.textContent = `${t ? t.frames_dropped : "–"} / ${hubDropped ?? "–"}`;
  }
}
