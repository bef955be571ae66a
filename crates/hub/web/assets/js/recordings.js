// One camera's recordings on its page: a timeline (recorded spans, event markers, the
// playback position and "now"), click to play from an instant into the live canvas (through
// the Viewer's playback socket), speed, back to live, a range dragged on the timeline
// downloaded as MKV or AVI, the recording mode and a manual "Record" toggle (admin only), the
// recording state with its error, and the storage used. It asks the hub every few seconds;
// it never decodes frames (the Viewer does) and never decides what is recorded (the hub does).
// In cluster mode a "Recorded on" choice shows the recordings another node keeps (a remote
// camera's, or this camera's from before a failover): spans, playback and downloads then go
// through that node's routes (`/api/nodes/{node}/…`, `/ws/nodes/{node}/playback/…`).

import { api } from "./api.js";
import { notify } from "./notifications.js";

/** How often the timeline, state and storage are refreshed. */
const REFRESH_MS = 3000;
const WINDOWS = [
  { label: "5 min", ms: 5 * 60_000 },
  { label: "1 h", ms: 3600_000 },
  { label: "24 h", ms: 24 * 3600_000 },
];
const SPEEDS = ["1", "2", "4", "8"];
/** A pointer that moved less than this (CSS px) clicked; more, it selects a range. */
const DRAG_PX = 5;
const MODE_TEXT = { off: "off", continuous: "continuous", events: "on events" };

function clock(ms) {
  return new Date(ms).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function bytes(n) {
  if (typeof n !== "number") return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i += 1;
  }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
}

function duration(ms) {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  const m = Math.round(s / 60);
  return m < 120 ? `${m} min` : `${(m / 60).toFixed(1)} h`;
}

/** Event markers `[{id, startMs, endMs}]` from the recordings answer's `events` (motion
 *  events as `GET /api/events` has them, times in ms); a running one reaches `nowMs`. */
function readEvents(list, nowMs) {
  const out = [];
  for (const e of Array.isArray(list) ? list : []) {
    if (typeof e?.started_ms !== "number") continue;
    const end = typeof e.ended_ms === "number" ? e.ended_ms : nowMs;
    out.push({ id: e.id, startMs: e.started_ms, endMs: Math.max(e.started_ms, end) });
  }
  return out;
}

export class Recordings {
  #el;
  #camera = null;
  #viewer = null;
  #timer = null;
  #windowMs = WINDOWS[0].ms;
  #speed = "1";
  #spans = []; // [{startMs, endMs, frames}]
  #events = [];
  #selection = null; // {fromMs, toMs}
  #playheadMs = null;
  #cursorMs = null; // keyboard position on the timeline
  #drag = null;
  #state = null;
  #generation = 0; // answers for a camera closed since are ignored
  #node = null; // cluster node whose recordings are shown (null: this hub's)
  #onFrame = (e) => this.#frame(e.detail);
  #onEnd = () => this.#showPlayback(true);

  /** @param {Record<string, HTMLElement>} el the panel's elements (see index.html) */
  constructor(el) {
    this.#el = el;
    for (const w of WINDOWS) {
      const b = this.#button(w.label, () => {
        this.#windowMs = w.ms;
        this.#pressed(el.windows, b);
        this.refresh();
      });
      b.dataset.testid = `window-${w.label.replace(/\s/g, "")}`;
      b.setAttribute("aria-pressed", String(w.ms === this.#windowMs));
      el.windows.append(b);
    }
    for (const s of SPEEDS) {
      const b = this.#button(`${s}×`, () => {
        this.#speed = s;
        this.#pressed(el.speeds, b);
        this.#viewer?.setSpeed(s);
        this.#showPlayback(false);
      });
      b.dataset.testid = `speed-${s}`;
      b.dataset.speed = s;
      b.setAttribute("aria-pressed", String(s === this.#speed));
      el.speeds.append(b);
    }
    el.backLive.addEventListener("click", () => this.backToLive());
    el.mode.addEventListener("change", () => this.#change({ mode: el.mode.value }));
    el.manual.addEventListener("click", () =>
      this.#change({ recording: el.manual.getAttribute("aria-pressed") !== "true" }),
    );
    const tl = el.timeline;
    tl.addEventListener("pointerdown", (e) => this.#pointerDown(e));
    tl.addEventListener("pointermove", (e) => this.#pointerMove(e));
    tl.addEventListener("pointerup", (e) => this.#pointerUp(e));
    tl.addEventListener("pointercancel", () => {
      this.#drag = null;
    });
    tl.addEventListener("keydown", (e) => this.#key(e));
    el.node.addEventListener("change", () => {
      this.#node = el.node.value || null;
      this.#generation += 1;
      this.#spans = [];
      this.#events = [];
      this.#selection = null;
      this.#showSelection();
      if (this.#viewer?.mode === "playback") this.backToLive();
      this.refresh();
    });
    new ResizeObserver(() => this.#draw()).observe(tl);
  }

  #button(label, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "btn small";
    b.textContent = label;
    b.addEventListener("click", onClick);
    return b;
  }

  #pressed(group, button) {
    for (const b of group.children) b.setAttribute("aria-pressed", String(b === button));
  }

  /** Shows camera `id`, whose picture `viewer` draws (live or playback); `node`: the
   *  cluster node whose recordings to show first (null: this hub's, or in cluster mode the
   *  node holding the camera when another one does). */
  setCamera(id, viewer, node = null) {
    this.close();
    this.#camera = id;
    this.#node = node;
    this.#viewer = viewer;
    this.#generation += 1;
    this.#spans = [];
    this.#events = [];
    this.#selection = null;
    this.#playheadMs = null;
    this.#cursorMs = null;
    viewer.addEventListener("frame", this.#onFrame);
    viewer.addEventListener("end", this.#onEnd);
    this.#showSelection();
    this.#showPlayback(false);
    this.refresh();
    this.#timer = setInterval(() => this.refresh(), REFRESH_MS);
    this.#loadNodes(this.#generation);
  }

  /** Cluster mode: offers this hub and every other node as places the recordings may be,
   *  starting on the node that holds the camera when another one does (it records it). */
  async #loadNodes(gen) {
    const el = this.#el;
    const id = this.#camera;
    const answer = await api.nodes().catch(() => null);
    if (gen !== this.#generation) return;
    const here = answer?.node;
    if (typeof here !== "string") {
      el.nodeBar.hidden = true; // not in cluster mode
      return;
    }
    // The REST list has each camera's node (the ui socket's camera objects do not); the
    // list, not `GET /api/cameras/{id}`, so that a camera the hub does not know is no 404.
    const list = this.#node ? null : await api.cameras().catch(() => null);
    if (gen !== this.#generation) return;
    const info = Array.isArray(list) ? list.find((c) => c?.id === id) : null;
    if (info?.source === "remote" && typeof info.node === "string" && info.node !== here) {
      this.#node = info.node;
      this.#generation += 1;
      this.refresh();
    }
    const nodes = new Set(Array.isArray(answer.nodes) ? answer.nodes : []);
    if (this.#node) nodes.add(this.#node);
    el.node.replaceChildren();
    const add = (value, label) => {
      const o = document.createElement("option");
      o.value = value;
      o.textContent = label;
      el.node.append(o);
    };
    add("", `${here} (this hub)`);
    for (const n of [...nodes].sort()) if (n !== here) add(n, n);
    if (this.#node === here) this.#node = null;
    el.node.value = this.#node ?? "";
    el.nodeBar.hidden = false;
  }

  /** Stops refreshing (the camera view closed). */
  close() {
    clearInterval(this.#timer);
    this.#timer = null;
    this.#viewer?.removeEventListener("frame", this.#onFrame);
    this.#viewer?.removeEventListener("end", this.#onEnd);
    this.#viewer = null;
    this.#camera = null;
  }

  /** Plays from `ms` (Unix ms) at the chosen speed. */
  play(ms) {
    if (!this.#viewer) return;
    this.#playheadMs = ms;
    this.#viewer.play(ms, this.#speed, this.#node);
    this.#showPlayback(false);
    this.#draw();
  }

  backToLive() {
    if (!this.#viewer) return;
    this.#viewer.live();
    this.#playheadMs = null;
    this.#showPlayback(false);
    this.#draw();
  }

  async refresh() {
    const id = this.#camera;
    if (!id) return;
    const gen = this.#generation;
    const toMs = Date.now();
    const fromMs = toMs - this.#windowMs;
    try {
      const node = this.#node;
      const [rec, all] = await Promise.all([
        node ? api.nodeRecordings(node, id, fromMs, toMs) : api.recordings(id, fromMs, toMs),
        node ? null : api.recordingsOverview(),
      ]);
      if (gen !== this.#generation) return;
      this.#spans = (rec.spans ?? []).map((s) => ({ startMs: s.start_us / 1000, endMs: s.end_us / 1000, frames: s.frames }));
      this.#events = readEvents(rec.events, toMs);
      this.#state = rec.state ?? null;
      this.#showState(rec.state);
      this.#showUsage(rec.usage, all);
      this.#el.panel.dataset.unavailable = "false";
    } catch (e) {
      if (gen !== this.#generation) return;
      this.#el.panel.dataset.unavailable = "true";
      // Another node's spans are not shown while they cannot be played or downloaded.
      if (this.#node) {
        this.#spans = [];
        this.#events = [];
      }
      const where = this.#node ? `node ${this.#node}` : "this hub";
      this.#el.state.textContent =
        e.status === 503 || e.status === 504
          ? this.#node
            ? `The recordings on ${where} are unavailable: ${e.message}`
            : "Recording is unavailable on this hub."
          : `Could not load the recordings: ${e.message}`;
      delete this.#el.state.dataset.recording;
    }
    this.#fromMs = fromMs;
    this.#toMs = toMs;
    this.#draw();
  }

  #fromMs = Date.now() - WINDOWS[0].ms;
  #toMs = Date.now();

  #showState(state) {
    const el = this.#el;
    if (state) {
      const what = state.recording
        ? state.manual
          ? "Recording (manual)"
          : "Recording"
        : state.error
          ? "Stopped by an error"
          : "Not recording";
      el.state.textContent = `${what} · mode ${MODE_TEXT[state.mode] ?? state.mode}${
        state.mode === "events" ? (state.event_active ? " · event active" : " · waiting for an event") : ""
      }`;
      el.state.dataset.recording = String(Boolean(state.recording));
      el.state.dataset.mode = state.mode;
      if (document.activeElement !== el.mode) el.mode.value = state.mode;
      el.manual.setAttribute("aria-pressed", String(Boolean(state.manual)));
      el.manual.textContent = state.manual ? "Stop recording" : "Record";
      el.error.hidden = !state.error;
      el.error.textContent = state.error
        ? `Recording stopped: ${state.error}. Live view continues; recording resumes by itself once the hub can write again.`
        : "";
    }
  }

  #showUsage(usage, all) {
    const el = this.#el;
    const here = usage ? `${bytes(usage.bytes)} in ${usage.segments} segment${usage.segments === 1 ? "" : "s"}` : "nothing";
    const disk = all?.disk_free_bytes;
    el.usage.textContent = this.#node
      ? `This camera on ${this.#node}: ${here}`
      : `This camera: ${here} · all cameras: ${bytes(all?.bytes)} · disk free: ${
          typeof disk === "number" ? bytes(disk) : "unknown"
        }`;
    el.usage.dataset.bytes = String(usage?.bytes ?? 0);
    el.usage.dataset.diskFree = String(disk ?? "");
  }

  async #change(change) {
    const id = this.#camera;
    if (!id) return;
    try {
      const state = await api.record(id, change);
      if (id !== this.#camera) return;
      this.#state = state;
      this.#showState(state);
      this.refresh();
    } catch (e) {
      notify(`${id}: could not change recording: ${e.message}`, { kind: "error" });
      this.refresh();
    }
  }

  #frame(detail) {
    if (detail.mode !== "playback") return;
    const us = detail.meta?.received_us ?? detail.meta?.captured_us;
    if (typeof us === "number") this.#playheadMs = us / 1000;
    this.#showPlayback(false);
    this.#draw();
  }

  #showPlayback(ended) {
    const el = this.#el;
    const playing = this.#viewer?.mode === "playback";
    el.status.dataset.mode = playing ? "playback" : "live";
    el.backLive.hidden = !playing;
    if (!playing) {
      el.status.textContent = "Live";
      return;
    }
    const at = this.#playheadMs === null ? "" : ` · ${clock(this.#playheadMs)}`;
    el.status.textContent = `Playback${at} · ${this.#speed}×${ended ? " · end of recording" : ""}`;
    if (ended) el.status.dataset.ended = "true";
    else delete el.status.dataset.ended;
  }

  // ---- Timeline ------------------------------------------------------------------------

  #msAt(clientX) {
    const r = this.#el.timeline.getBoundingClientRect();
    const f = Math.min(1, Math.max(0, (clientX - r.left) / Math.max(1, r.width)));
    return this.#fromMs + f * (this.#toMs - this.#fromMs);
  }

  #pointerDown(e) {
    if (e.button !== 0) return;
    this.#drag = { x: e.clientX, ms: this.#msAt(e.clientX), moved: false };
    this.#el.timeline.setPointerCapture?.(e.pointerId);
  }

  #pointerMove(e) {
    const d = this.#drag;
    if (!d) return;
    if (Math.abs(e.clientX - d.x) >= DRAG_PX) d.moved = true;
    if (!d.moved) return;
    const ms = this.#msAt(e.clientX);
    this.#selection = { fromMs: Math.min(d.ms, ms), toMs: Math.max(d.ms, ms) };
    this.#showSelection();
    this.#draw();
  }

  #pointerUp(e) {
    const d = this.#drag;
    this.#drag = null;
    if (!d) return;
    if (d.moved) {
      this.#pointerMove(e);
      return;
    }
    this.play(this.#msAt(e.clientX));
  }

  #key(e) {
    const step = (this.#toMs - this.#fromMs) / 50;
    const at = this.#cursorMs ?? this.#playheadMs ?? this.#toMs;
    if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
      e.preventDefault();
      const ms = at + (e.key === "ArrowLeft" ? -step : step);
      this.#cursorMs = Math.min(this.#toMs, Math.max(this.#fromMs, ms));
      this.#draw();
    } else if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      this.play(at);
    }
  }

  #showSelection() {
    const el = this.#el;
    const s = this.#selection;
    // A range with nothing recorded in it has no file to offer (the hub would answer 404).
    const recorded = s && this.#spans.some((x) => x.startMs < s.toMs && x.endMs > s.fromMs);
    el.exportMkv.hidden = !recorded;
    el.exportAvi.hidden = !recorded;
    if (!s) {
      el.selection.textContent = "Drag on the timeline to select a range.";
      return;
    }
    const range = `${clock(s.fromMs)} – ${clock(s.toMs)} (${duration(s.toMs - s.fromMs)})`;
    el.selection.textContent = recorded ? range : `${range}: nothing recorded`;
    el.exportMkv.href = api.exportUrl(this.#camera, s.fromMs, s.toMs, "mkv", this.#node);
    el.exportAvi.href = api.exportUrl(this.#camera, s.fromMs, s.toMs, "avi", this.#node);
  }

  #draw() {
    const tl = this.#el.timeline;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(tl.clientWidth * dpr));
    const h = Math.max(1, Math.round(tl.clientHeight * dpr));
    if (tl.width !== w || tl.height !== h) {
      tl.width = w;
      tl.height = h;
    }
    const ctx = tl.getContext("2d");
    const from = this.#fromMs;
    const span = Math.max(1, this.#toMs - from);
    const x = (ms) => ((ms - from) / span) * w;
    ctx.clearRect(0, 0, w, h);
    const css = getComputedStyle(tl);
    const color = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
    // Recorded spans: at least one device pixel wide, so a short one stays visible.
    ctx.fillStyle = color("--accent", "#58a6ff");
    for (const s of this.#spans) {
      const x0 = Math.max(0, x(s.startMs));
      const x1 = Math.min(w, x(s.endMs));
      if (x1 >= 0 && x0 <= w) ctx.fillRect(x0, h * 0.3, Math.max(dpr, x1 - x0), h * 0.45);
    }
    // Event markers.
    ctx.fillStyle = color("--warn", "#d29922");
    for (const ev of this.#events) {
      const x0 = x(ev.startMs);
      const x1 = x(ev.endMs);
      if (x1 < 0 || x0 > w) continue;
      ctx.fillRect(Math.max(0, x0), 0, Math.max(2 * dpr, x1 - x0), h * 0.22);
    }
    // The selected range.
    if (this.#selection) {
      ctx.fillStyle = "rgba(255, 255, 255, 0.18)";
      const x0 = x(this.#selection.fromMs);
      ctx.fillRect(x0, 0, x(this.#selection.toMs) - x0, h);
    }
    const line = (ms, style, width) => {
      ctx.fillStyle = style;
      ctx.fillRect(Math.min(w - width, Math.max(0, x(ms) - width / 2)), 0, width, h);
    };
    if (this.#cursorMs !== null) line(this.#cursorMs, color("--muted", "#9eabb8"), dpr);
    if (this.#playheadMs !== null && this.#viewer?.mode === "playback") line(this.#playheadMs, "#ffffff", 2 * dpr);
    // Now: the right edge.
    line(this.#toMs, color("--err", "#f85149"), 2 * dpr);
    tl.dataset.fromMs = String(Math.floor(from));
    tl.dataset.toMs = String(Math.floor(this.#toMs));
    tl.dataset.spans = String(this.#spans.length);
    tl.dataset.events = String(this.#events.length);
    const at = this.#cursorMs ?? this.#playheadMs ?? this.#toMs;
    tl.setAttribute("aria-valuenow", String(Math.round(((at - from) / span) * 100)));
    tl.setAttribute("aria-valuetext", at >= this.#toMs ? "now" : clock(at));
    this.#el.start.textContent = clock(from);
  }
}
