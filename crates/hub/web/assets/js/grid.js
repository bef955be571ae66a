// The grid of all cameras: one tile per camera with a live picture (a throttled viewer),
// online/offline state and a one-line summary; a tile links to the camera's full view.
// Tiles stream only while the grid is visible. Never sends commands.

import { Viewer } from "./viewer.js";

const TILE_FPS = 5; // enough to look alive, light on a phone with many cameras

export class Grid {
  #tiles = new Map(); // camera id -> { li, canvas, badge, motion, summary, link, viewer }
  #visible = false;
  #inMotion = new Set(); // camera ids with a motion event running (events.js MotionState)

  constructor(list, empty, describeResolution) {
    this.list = list;
    this.empty = empty;
    this.describeResolution = describeResolution;
  }

  /** Adds or updates the tile of `info` (a CameraInfo). */
  upsert(info) {
    let tile = this.#tiles.get(info.id);
    if (!tile) {
      tile = this.#create(info.id);
      this.#tiles.set(info.id, tile);
      // Keep tiles sorted by id so they do not jump around as cameras come and go.
      const after = [...this.#tiles.keys()].sort().find((id) => id > info.id);
      this.list.insertBefore(tile.li, after ? this.#tiles.get(after).li : null);
    }
    const online = Boolean(info.online);
    tile.li.dataset.online = String(online);
    delete tile.li.dataset.stale;
    tile.badge.dataset.online = String(online);
    tile.badge.title = "";
    tile.badge.textContent = online ? "Online" : "Offline";
    const parts = [];
    const res = info.settings?.resolution ?? info.telemetry?.settings?.resolution;
    if (info.width && info.height) parts.push(`${info.width}×${info.height}`);
    else if (res !== undefined) parts.push(this.describeResolution(res));
    if (online && Number.isFinite(info.fps_in)) parts.push(`${info.fps_in.toFixed(0)} fps`);
    if (info.sensor) parts.push(info.sensor);
    tile.summary.textContent = parts.join(" · ") || "\u00a0";
    tile.link.setAttribute("aria-label", `${info.id}, ${online ? "online" : "offline"}: open live view`);
    this.empty.hidden = true;
    if (this.#visible && online) tile.viewer.start();
  }

  /** Shows or hides the "Motion" badge of `id` (kept for a tile created later). */
  setMotion(id, active) {
    if (active) this.#inMotion.add(id);
    else this.#inMotion.delete(id);
    const tile = this.#tiles.get(id);
    if (tile) tile.motion.hidden = !active;
  }

  /** Marks `id` offline (the tile stays, greyed, with its last picture). */
  setOffline(id) {
    const tile = this.#tiles.get(id);
    if (!tile) return;
    tile.li.dataset.online = "false";
    tile.badge.dataset.online = "false";
    tile.badge.textContent = "Offline";
    tile.link.setAttribute("aria-label", `${id}, offline: open live view`);
  }

  /** The hub is unreachable: every tile's state is unknown until it answers again. */
  setUnknown() {
    for (const tile of this.#tiles.values()) {
      tile.li.dataset.stale = "true";
      tile.badge.dataset.online = "unknown";
      tile.badge.textContent = "Unknown";
      tile.badge.title = "The hub is unreachable, so this camera's state is unknown";
    }
  }

  /** Reconnects tiles' streams at once (the hub is back). */
  reconnectNow() {
    for (const tile of this.#tiles.values()) tile.viewer.reconnectNow();
  }

  /** Replaces all tiles with `cameras` (after a (re)connect). */
  reset(cameras) {
    const ids = new Set(cameras.map((c) => c.id));
    for (const [id, tile] of this.#tiles) {
      if (!ids.has(id)) {
        tile.viewer.stop();
        tile.li.remove();
        this.#tiles.delete(id);
      }
    }
    cameras.forEach((c) => this.upsert(c));
    this.empty.hidden = this.#tiles.size > 0;
  }

  /** Starts or stops the tiles' streams. */
  setVisible(visible) {
    this.#visible = visible;
    for (const tile of this.#tiles.values()) {
      if (visible && tile.li.dataset.online === "true") tile.viewer.start();
      else tile.viewer.stop();
    }
  }

  #create(id) {
    const li = document.createElement("li");
    li.className = "tile";
    li.dataset.camera = id;
    li.dataset.testid = "tile";
    const link = document.createElement("a");
    link.className = "tile-link";
    link.href = `#/camera/${encodeURIComponent(id)}`;
    const media = document.createElement("div");
    media.className = "tile-media";
    const canvas = document.createElement("canvas");
    canvas.width = 320;
    canvas.height = 240;
    const badge = document.createElement("span");
    badge.className = "badge";
    const motion = document.createElement("span");
    motion.className = "motion-badge";
    motion.dataset.testid = "motion-badge";
    motion.textContent = "Motion";
    motion.hidden = !this.#inMotion.has(id);
    media.append(canvas, badge, motion);
    const body = document.createElement("div");
    body.className = "tile-body";
    const name = document.createElement("strong");
    name.textContent = id;
    const summary = document.createElement("span");
    summary.className = "muted";
    body.append(name, summary);
    link.append(media, body);
    li.append(link);
    return { li, canvas, badge, motion, summary, link, viewer: new Viewer(canvas, id, { maxFps: TILE_FPS }) };
  }
}
