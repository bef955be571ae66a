// The firmware page (`#/firmware`, admins only): upload an image, the library with version,
// board, size and SHA-256, every camera's running version with an "Update" button per
// camera, "Update all cameras of board X" per image (a rollout), and each update's progress
// and outcome, failure reason included. Cameras and their `ota` status come from the hub
// socket's events (the same ones the camera view uses); the hub and the cameras decide
// everything, this module only shows what they say and asks for updates. It must never
// call the firmware routes for a role that may not use them (the hub refuses them anyway).

import { api } from "./api.js";
import { stale } from "./ota.js";
import { may } from "./session.js";

const RUNNING = ["offered", "downloading", "rebooting", "confirming"];
const PHASE = {
  offered: "Offered…",
  downloading: "Downloading",
  rebooting: "Installed; restarting…",
  confirming: "Confirming the new image…",
  done: "Updated",
  failed: "Failed",
};

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(e.dataset, v);
    else if (k in e) e[k] = v;
    else e.setAttribute(k, v);
  }
  e.append(...children.filter((c) => c !== null && c !== undefined));
  return e;
}

function kib(n) {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${Math.round(n / 1024)} KiB`;
}

export class FirmwarePage {
  #root;
  #notify;
  #cameras = new Map(); // id -> CameraInfo, from the hub socket
  #images = []; // from GET /api/firmware
  #chosen = new Map(); // camera id -> image id picked in its row (rows are rebuilt)
  #shown = { images: "", cameras: "" }; // what each table was last built from
  #visible = false;

  constructor(root, { hub, notify }) {
    this.#root = root;
    this.#notify = notify;
    const q = (s) => root.querySelector(s);
    q("[data-fw=upload]").addEventListener("submit", (e) => {
      e.preventDefault();
      this.#upload();
    });
    q("[data-fw=file]").addEventListener("change", () => this.#suggest());
    hub.addEventListener("cameras", ({ detail }) => {
      this.#cameras = new Map((detail.cameras ?? []).map((c) => [c.id, c]));
      this.#render();
    });
    for (const kind of ["online", "telemetry"]) {
      hub.addEventListener(kind, ({ detail }) => this.#camera(detail.camera));
    }
    hub.addEventListener("offline", ({ detail }) => {
      const c = this.#cameras.get(detail.camera);
      if (c) this.#camera({ ...c, online: false });
    });
    hub.addEventListener("ota", ({ detail }) => {
      const c = this.#cameras.get(detail.camera);
      if (c) this.#camera({ ...c, ota: detail.ota });
    });
  }

  /** Shows or hides the page; the library is (re)loaded each time it is shown. */
  setVisible(visible) {
    this.#visible = visible;
    this.#root.hidden = !visible;
    if (visible) this.#load();
  }

  #camera(info) {
    // `telemetry` and `online` carry the whole CameraInfo; keep an ota the event lacks.
    const prev = this.#cameras.get(info.id);
    // A request's answer can arrive after the socket's later news: keep the newer status.
    const ota = info.ota && !stale(prev?.ota, info.ota) ? info.ota : prev?.ota;
    this.#cameras.set(info.id, { ...prev, ...info, ota });
    this.#render();
  }

  async #load() {
    if (!may("firmware")) return;
    try {
      const list = await api.firmware();
      this.#images = Array.isArray(list) ? list : [];
    } catch (e) {
      this.#status("upload-status", `Could not list firmware images: ${e.message}`, "error");
    }
    this.#render();
  }

  #status(name, text, kind = "info") {
    const s = this.#root.querySelector(`[data-fw=${name}]`);
    s.textContent = text;
    s.dataset.kind = kind;
  }

  /** A virtual camera's image names its version and board in its first line: offer them. */
  async #suggest() {
    const file = this.#root.querySelector("[data-fw=file]").files[0];
    if (!file) return;
    const head = await file.slice(0, 200).text().catch(() => "");
    const m = head.match(/^espcam-image board=(\S+) version=([^\n]+)/);
    const board = this.#root.querySelector("[data-fw=board]");
    if (m && !board.value) board.value = m[1];
  }

  async #upload() {
    const q = (s) => this.#root.querySelector(`[data-fw=${s}]`);
    const file = q("file").files[0];
    if (!file) return this.#status("upload-status", "Choose an image file first.", "error");
    const button = q("upload-btn");
    button.disabled = true;
    this.#status("upload-status", `Uploading ${file.name} (${kib(file.size)})…`);
    try {
      const img = await api.uploadFirmware(file, { version: q("version").value.trim(), board: q("board").value.trim() });
      this.#status("upload-status", `Added ${img.version} for board ${img.board} (${img.id}).`, "success");
      q("upload").reset();
      await this.#load();
    } catch (e) {
      this.#status("upload-status", `Upload refused: ${e.message}`, "error");
    } finally {
      button.disabled = false;
    }
  }

  async #rollout(img) {
    try {
      const r = await api.rolloutFirmware(img.id);
      for (const s of r.started ?? []) this.#camera({ ...this.#cameras.get(s.camera), id: s.camera, ota: s.ota });
      const skipped = (r.skipped ?? []).map((s) => `${s.camera}: ${s.reason}`);
      const text = `${img.version} to board ${img.board}: ${r.started?.length ?? 0} started` +
        (skipped.length ? `; skipped ${skipped.join("; ")}` : "");
      this.#status("rollout-status", text, skipped.length ? "warn" : "success");
    } catch (e) {
      this.#status("rollout-status", `Rollout refused: ${e.message}`, "error");
    }
  }

  async #update(camera, imageId) {
    try {
      const r = await api.updateFirmware(camera, imageId);
      this.#camera({ ...this.#cameras.get(camera), ota: r.ota });
    } catch (e) {
      this.#notify(`${camera}: update refused: ${e.message}`, { kind: "error" });
    }
  }

  #render() {
    if (!this.#visible) return;
    const images = this.#images;
    const cams = [...this.#cameras.values()].sort((a, b) => a.id.localeCompare(b.id));
    const boards = new Set([...cams.map((c) => c.board), ...images.map((i) => i.board)].filter(Boolean));
    this.#root.querySelector("[data-fw=boards]").replaceChildren(...[...boards].map((b) => el("option", { value: b })));

    // Rebuilt only when what they show changed (telemetry arrives every second and must
    // not replace a button under the user's pointer).
    const facts = cams.map((c) => [c.id, c.board, c.firmware, c.online]);
    const imagesKey = JSON.stringify([images, facts]);
    if (imagesKey !== this.#shown.images) {
      this.#shown.images = imagesKey;
      this.#root.querySelector("[data-fw=images]").replaceChildren(...images.map((img) => this.#imageRow(img, cams)));
      this.#root.querySelector("[data-fw=images-empty]").hidden = images.length > 0;
    }
    const camerasKey = JSON.stringify([images.map((i) => i.id), facts, cams.map((c) => c.ota ?? null)]);
    if (camerasKey !== this.#shown.cameras) {
      this.#shown.cameras = camerasKey;
      this.#root.querySelector("[data-fw=cameras]").replaceChildren(...cams.map((c) => this.#cameraRow(c, images)));
      this.#root.querySelector("[data-fw=cameras-empty]").hidden = cams.length > 0;
    }
  }

  #imageRow(img, cams) {
    const same = cams.filter((c) => c.board === img.board);
    const button = el("button", {
      className: "btn",
      type: "button",
      textContent: `Update all cameras of board ${img.board}`,
      dataset: { testid: "fw-rollout", image: img.id },
      disabled: !same.some((c) => c.online && c.firmware !== img.version),
      title: same.length ? "" : `No camera of board ${img.board} is known`,
    });
    button.addEventListener("click", () => this.#rollout(img));
    return el(
      "tr",
      { dataset: { testid: "fw-image", image: img.id } },
      el("td", { textContent: img.version }),
      el("td", { textContent: img.board }),
      el("td", { textContent: kib(img.size), title: `${img.size} bytes` }),
      el("td", {}, el("code", { className: "fw-sha", textContent: img.sha256, title: "SHA-256" })),
      el("td", {}, button),
    );
  }

  #cameraRow(c, images) {
    const fits = images.filter((i) => i.board && i.board === c.board);
    const select = el(
      "select",
      { dataset: { testid: "fw-camera-image" }, "aria-label": `Image for ${c.id}` },
      ...fits.map((i) => el("option", { value: i.id, textContent: `${i.version} (${kib(i.size)})` })),
    );
    if (fits.some((i) => i.id === this.#chosen.get(c.id))) select.value = this.#chosen.get(c.id);
    select.addEventListener("change", () => this.#chosen.set(c.id, select.value));
    const o = c.ota;
    const running = o && RUNNING.includes(o.phase);
    const button = el("button", {
      className: "btn",
      type: "button",
      textContent: "Update",
      dataset: { testid: "fw-camera-update" },
      disabled: !c.online || !c.board || fits.length === 0 || Boolean(running),
      title: !c.board
        ? "This camera reports no board: it cannot be updated from the hub"
        : fits.length === 0
          ? `No image for board ${c.board}`
          : c.online ? "" : "The camera is offline",
    });
    button.addEventListener("click", () => this.#update(c.id, select.value));

    const cell = el("td", { className: "fw-progress" });
    if (o) {
      const pct = o.total ? Math.floor((100 * o.bytes) / o.total) : 0;
      const done = o.phase === "done";
      const bar = el("progress", {
        max: o.total || 1,
        value: done ? o.total || 1 : o.bytes,
        hidden: o.phase === "failed",
        dataset: { testid: "fw-progress", percent: String(done ? 100 : pct) },
      });
      let text = `${PHASE[o.phase] ?? o.phase} ${o.version}`;
      if (o.phase === "downloading") text += ` — ${pct} %`;
      if (o.phase === "failed" && o.error) text += `: ${o.error}`;
      const kind = o.phase === "failed" ? "error" : done ? "success" : "info";
      cell.append(bar, el("p", { className: "ota-status", textContent: text, role: "status", dataset: { kind, testid: "fw-status" } }));
    }
    return el(
      "tr",
      { dataset: { testid: "fw-camera", camera: c.id, phase: o?.phase ?? "none" } },
      el("td", {}, el("a", { href: `#/camera/${encodeURIComponent(c.id)}`, textContent: c.id })),
      el("td", { textContent: c.board ?? "–" }),
      el("td", { textContent: c.firmware ?? "unknown", dataset: { testid: "fw-running" } }),
      el("td", { textContent: c.online ? "online" : "offline" }),
      el("td", {}, el("div", { className: "ota-row" }, select, button)),
      cell,
    );
  }
}
