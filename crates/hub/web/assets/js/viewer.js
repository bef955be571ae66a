// Live view of one camera: `/ws/view/{camera}?meta=1` drawn on a canvas — or, after
// `play()`, its recordings from `/ws/playback/{camera}` (same message format) in the same
// canvas, until `live()`.
//
// Each JPEG is decoded with createImageBitmap, which decodes off the main thread, and at most
// one frame waits while another decodes: a newer frame replaces the waiting one, so a slow
// device shows the newest picture instead of falling further and further behind. Statistics
// (fps, kbit/s, capture-to-display latency) are emitted once a second as a "stats" event and
// mirrored in data-* attributes of the canvas (`data-mode` is live or playback,
// `data-captured-us` the capture time of the picture shown). The only messages it sends are
// the playback socket's seek and speed.

import { backoffDelay, wsUrl } from "./connection.js";

/** Decodes a JPEG blob into something drawImage accepts. */
async function decode(blob) {
  if (typeof createImageBitmap === "function") return createImageBitmap(blob);
  // Older browsers: an <img> decodes on the main thread, still fine for one stream.
  const url = URL.createObjectURL(blob);
  try {
    const img = new Image();
    img.src = url;
    await img.decode();
    return img;
  } finally {
    URL.revokeObjectURL(url);
  }
}

export class Viewer extends EventTarget {
  #ws = null;
  #meta = null; // metadata text message announcing the next binary frame
  #pending = null; // newest frame waiting for the decoder; older ones are dropped
  #decoding = false;
  #throttle = null;
  #retry = null;
  #attempt = 0;
  #tick = null;
  #window = { frames: 0, bytes: 0, latency: [] }; // counters for the current second
  #ctx;
  #mode = "live";
  #speed = "1";
  #playFromMs = 0; // where a reconnecting playback socket resumes: the newest frame shown
  #playNode = null; // cluster node whose recordings are played (null: this hub's)

  /**
   * @param {HTMLCanvasElement} canvas where frames are drawn (resized to each frame's size)
   * @param {string} camera camera id
   * @param {{maxFps?: number}} options maxFps > 0 limits decoding (grid tiles)
   */
  constructor(canvas, camera, { maxFps = 0 } = {}) {
    super();
    this.canvas = canvas;
    this.camera = camera;
    this.minInterval = maxFps > 0 ? 1000 / maxFps : 0;
    this.#ctx = canvas.getContext("2d", { alpha: false });
    this.running = false;
    this.frames = 0; // frames displayed since start
    this.dropped = 0; // frames replaced before they could be displayed
    this.width = 0;
    this.height = 0;
    this.latencyFrom = "capture"; // or "hub" when frames carry no capture time
    this.lastFrameAt = null; // Date.now() when the newest frame was drawn
  }

  /** Skips the remaining reconnect delay, if any (the hub is back: no need to wait). */
  reconnectNow() {
    if (!this.running || this.#ws) return;
    clearTimeout(this.#retry);
    this.#attempt = 0;
    this.#connect();
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.#connect();
    this.#tick = setInterval(() => this.#emitStats(), 1000);
  }

  /** "live" or "playback". */
  get mode() {
    return this.#mode;
  }

  /** Plays the recordings from `fromMs` (Unix ms) at `speed` (1, 2, 4, 8 or max); with
   *  `node`, those kept on that cluster node (through this hub). */
  play(fromMs, speed = this.#speed, node = null) {
    this.#mode = "playback";
    this.#playNode = node;
    this.#speed = String(speed);
    this.#playFromMs = Math.floor(fromMs);
    this.canvas.dataset.mode = "playback";
    this.#switchSource();
  }

  /** Changes the playback speed (kept for the next playback). */
  setSpeed(speed) {
    this.#speed = String(speed);
    if (this.#mode === "playback" && this.#ws?.readyState === WebSocket.OPEN) {
      this.#ws.send(JSON.stringify({ speed: this.#speed }));
    }
  }

  /** Back to the live stream. */
  live() {
    if (this.#mode === "live") return;
    this.#mode = "live";
    this.canvas.dataset.mode = "live";
    this.#switchSource();
  }

  #switchSource() {
    this.#pending = null;
    this.#meta = null;
    this.#window.latency = [];
    if (this.#ws) {
      const ws = this.#ws;
      this.#ws = null; // its close event must not schedule a reconnect
      ws.close();
    }
    clearTimeout(this.#retry);
    this.#attempt = 0;
    if (this.running) this.#connect();
  }

  #path() {
    const cam = encodeURIComponent(this.camera);
    if (this.#mode === "live") return `/ws/view/${cam}?meta=1`;
    const q = new URLSearchParams({ from: String(this.#playFromMs), speed: this.#speed, meta: "1" });
    if (this.#playNode) return `/ws/nodes/${encodeURIComponent(this.#playNode)}/playback/${cam}?${q}`;
    return `/ws/playback/${cam}?${q}`;
  }

  stop() {
    this.running = false;
    clearInterval(this.#tick);
    clearTimeout(this.#retry);
    clearTimeout(this.#throttle);
    this.#throttle = null;
    this.#pending = null;
    if (this.#ws) {
      const ws = this.#ws;
      this.#ws = null;
      ws.close();
    }
  }

  #connect() {
    const ws = new WebSocket(wsUrl(this.#path()));
    // Blobs stay out of the JS heap and go straight to createImageBitmap.
    ws.binaryType = "blob";
    this.#ws = ws;
    ws.addEventListener("open", () => {
      this.#attempt = 0;
      this.dispatchEvent(new CustomEvent("connected"));
    });
    ws.addEventListener("message", (ev) => this.#onMessage(ev.data));
    ws.addEventListener("close", () => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      this.dispatchEvent(new CustomEvent("disconnected"));
      if (!this.running) return;
      this.#retry = setTimeout(() => this.running && this.#connect(), backoffDelay(this.#attempt++));
    });
  }

  #onMessage(data) {
    if (typeof data === "string") {
      try {
        const meta = JSON.parse(data);
        this.#meta = meta && meta.type === "frame" ? meta : null;
        if (meta?.type === "end" && this.#mode === "playback") {
          this.dispatchEvent(new CustomEvent("end", { detail: meta }));
        }
      } catch {
        this.#meta = null;
      }
      return;
    }
    const frame = { blob: data, meta: this.#meta, mode: this.#mode };
    this.#meta = null;
    this.#window.bytes += data.size;
    if (this.#decoding || this.#throttle) {
      if (this.#pending) this.dropped += 1;
      this.#pending = frame;
      return;
    }
    this.#show(frame);
  }

  async #show(frame) {
    this.#decoding = true;
    try {
      const image = await decode(frame.blob);
      // A frame of the source switched away from is not drawn.
      if (this.running && frame.mode === this.#mode) this.#draw(image, frame.meta);
      image.close?.();
    } catch {
      // A corrupt JPEG costs one frame, nothing more.
      this.dispatchEvent(new CustomEvent("decode-error"));
    } finally {
      this.#decoding = false;
    }
    if (!this.running) return;
    if (this.minInterval > 0) {
      this.#throttle = setTimeout(() => {
        this.#throttle = null;
        this.#next();
      }, this.minInterval);
    } else {
      this.#next();
    }
  }

  #next() {
    const next = this.#pending;
    this.#pending = null;
    if (next && this.running) this.#show(next);
  }

  #draw(image, meta) {
    const w = image.width;
    const h = image.height;
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    this.#ctx.drawImage(image, 0, 0);
    this.width = w;
    this.height = h;
    this.frames += 1;
    this.lastFrameAt = Date.now();
    this.#window.frames += 1;
    // Capture-to-display latency needs the camera's capture time; frames from cameras that
    // cannot tell it fall back to the hub's receive time (then it is hub-to-display).
    const captured = typeof meta?.captured_us === "number";
    const stamp = captured ? meta.captured_us : meta?.received_us;
    // A recorded frame is old on purpose: its age is not a latency.
    const live = this.#mode === "live";
    if (live && typeof stamp === "number") this.#window.latency.push(Date.now() - stamp / 1000);
    if (!live && typeof meta?.received_us === "number") this.#playFromMs = Math.floor(meta.received_us / 1000);
    this.latencyFrom = captured ? "capture" : "hub";
    const d = this.canvas.dataset;
    d.frameCount = String(this.frames);
    d.width = String(w);
    d.height = String(h);
    d.mode = this.#mode;
    if (typeof stamp === "number") d.capturedUs = String(stamp);
    else delete d.capturedUs;
    this.dispatchEvent(new CustomEvent("frame", { detail: { width: w, height: h, meta, mode: this.#mode } }));
  }

  #emitStats() {
    const win = this.#window;
    this.#window = { frames: 0, bytes: 0, latency: [] };
    const latencyMs = win.latency.length
      ? win.latency.reduce((a, b) => a + b, 0) / win.latency.length
      : null;
    const stats = {
      fps: win.frames,
      kbps: (win.bytes * 8) / 1000,
      latencyMs,
      latencyFrom: this.latencyFrom,
      frames: this.frames,
      dropped: this.dropped,
      width: this.width,
      height: this.height,
      connected: this.#ws?.readyState === WebSocket.OPEN,
      mode: this.#mode,
    };
    if (latencyMs !== null) this.canvas.dataset.latencyMs = String(Math.round(latencyMs));
    this.dispatchEvent(new CustomEvent("stats", { detail: stats }));
  }
}
