// Firmware updates in the camera view: the version the camera runs, the images that fit its
// board, an "Update" button, and the update's progress bar and outcome (the `ota` field the
// hub reports per camera, kept current by its `ota` events). The hub and the camera decide
// everything; this module only shows what they say and asks for an update.

import { api } from "./api.js";
import { may } from "./session.js";

const PHASE = {
  offered: "Update offered to the camera…",
  downloading: "Downloading",
  rebooting: "Installed; the camera restarts…",
  confirming: "Restarted; confirming the new image…",
  done: "Updated",
  failed: "Update failed",
};

function pct(o) {
  return o.total ? Math.floor((100 * o.bytes) / o.total) : 0;
}

export class Ota {
  #root;
  #camera = null; // CameraInfo of the open camera
  #images = null; // from GET /api/firmware; null until loaded
  #loading = null;
  #notify;

  constructor(root, { notify }) {
    this.#root = root;
    this.#notify = notify;
    this.#el("update").addEventListener("click", () => this.#update());
  }

  #el(name) {
    return this.#root.querySelector(`[data-ota=${name}]`);
  }

  /** Shows `info` (a CameraInfo); `online` says whether an update can start now. */
  setCamera(info, online) {
    const changed = this.#camera?.id !== info.id;
    this.#camera = info;
    if (changed || this.#images === null) this.#load();
    this.#render(online);
  }

  /** An `ota` event from the hub. */
  event(camera, ota) {
    if (this.#camera?.id !== camera) return;
    this.#camera = { ...this.#camera, ota };
    this.#render(true);
  }

  #load() {
    // Only admins see this panel; others would only get a 403 for the list.
    if (this.#loading || !may("firmware")) return;
    this.#loading = api
      .firmware()
      .then((list) => {
        this.#images = Array.isArray(list) ? list : [];
        this.#render(this.#camera?.online);
      })
      .catch((e) => {
        this.#images = [];
        this.#el("status").textContent = `Could not list firmware images: ${e.message}`;
      })
      .finally(() => {
        this.#loading = null;
      });
  }

  #render(online) {
    const info = this.#camera;
    if (!info) return;
    this.#el("version").textContent = info.firmware ?? "unknown";
    this.#el("board").textContent = info.board ? `board ${info.board}` : "no board reported";
    const select = this.#el("image");
    const fits = (this.#images ?? []).filter((i) => i.board === info.board);
    const keep = select.value;
    select.replaceChildren(
      ...fits.map((i) => {
        const o = document.createElement("option");
        o.value = i.id;
        o.textContent = `${i.version} (${Math.round(i.size / 1024)} KiB)`;
        return o;
      }),
    );
    if (fits.some((i) => i.id === keep)) select.value = keep;
    const o = info.ota;
    const running = o && ["offered", "downloading", "rebooting", "confirming"].includes(o.phase);
    const button = this.#el("update");
    button.disabled = !online || !info.board || fits.length === 0 || Boolean(running);
    button.title = !info.board
      ? "This camera cannot be updated from the hub"
      : fits.length === 0
        ? `No image for board ${info.board}: add one with espcam firmware add`
        : "";

    const bar = this.#el("progress");
    const status = this.#el("status");
    this.#root.dataset.phase = o?.phase ?? "none";
    if (!o) {
      bar.hidden = true;
      status.textContent = "";
      return;
    }
    bar.hidden = o.phase === "failed";
    bar.max = o.total || 1;
    bar.value = o.phase === "done" ? bar.max : o.bytes;
    bar.dataset.percent = String(o.phase === "done" ? 100 : pct(o));
    let text = `${PHASE[o.phase] ?? o.phase} ${o.version}`;
    if (o.phase === "downloading") text += ` — ${pct(o)} %`;
    if (o.phase === "failed" && o.error) text += `: ${o.error}`;
    status.textContent = text;
    status.dataset.kind = o.phase === "failed" ? "error" : o.phase === "done" ? "success" : "info";
  }

  async #update() {
    const info = this.#camera;
    const id = this.#el("image").value;
    if (!info || !id) return;
    const button = this.#el("update");
    button.disabled = true;
    try {
      const r = await api.updateFirmware(info.id, id);
      this.event(info.id, r.ota);
    } catch (e) {
      this.#notify(`${info.id}: update refused: ${e.message}`, { kind: "error" });
      this.#render(info.online);
    }
  }
}
