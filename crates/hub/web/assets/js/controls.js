// The controls sidebar: resolution, quality, brightness, flips and reboot for one camera.
//
// The form always shows the settings the camera acknowledged, never merely what was clicked:
// a change is sent through the REST API, the control is marked pending, and it then shows the
// settings from the camera's ack — or goes back to the last acknowledged value and says why
// the change failed. Settings pushed by the hub (another browser, telemetry) update every
// control that is not waiting for its own answer. This module never opens sockets.

import { api } from "./api.js";
import { notify } from "./notifications.js";

const FIELDS = ["resolution", "quality", "brightness", "vflip", "hmirror"];
// Sliders send once the user settles, not for every arrow key press.
const SLIDER_DEBOUNCE_MS = 350;

export class Controls {
  #camera = null;
  #acked = null; // last settings the camera acknowledged
  #pending = new Set(); // fields waiting for an ack; hub pushes must not overwrite them
  #editing = new Set(); // sliders being dragged; a telemetry update must not yank them back
  #timers = {};
  #resolutions = [];
  #info = null; // the CameraInfo shown

  /**
   * @param {HTMLFormElement} form
   * @param {{confirm: (title: string, text: string) => Promise<boolean>}} ui
   */
  constructor(form, ui) {
    this.form = form;
    this.ui = ui;
    this.fieldset = form.querySelector("fieldset");
    this.note = form.querySelector("#controls-note");
    this.el = Object.fromEntries(FIELDS.map((f) => [f, form.elements.namedItem(f)]));
    this.out = {
      quality: form.querySelector("#out-quality"),
      brightness: form.querySelector("#out-brightness"),
    };
    form.addEventListener("submit", (e) => e.preventDefault());

    this.el.resolution.addEventListener("change", () =>
      this.#apply("resolution", Number(this.el.resolution.value)),
    );
    for (const f of ["quality", "brightness"]) {
      this.el[f].addEventListener("input", () => {
        this.#editing.add(f);
        this.#showValue(f, Number(this.el[f].value));
      });
      this.el[f].addEventListener("change", () => {
        clearTimeout(this.#timers[f]);
        this.#timers[f] = setTimeout(() => this.#apply(f, Number(this.el[f].value)), SLIDER_DEBOUNCE_MS);
      });
    }
    for (const f of ["vflip", "hmirror"]) {
      this.el[f].addEventListener("change", () => this.#apply(f, this.el[f].checked ? 1 : 0));
    }
    form.querySelector("#reboot-btn").addEventListener("click", () => this.#reboot());
  }

  /** Fills the resolution choices: `[{index, name, width, height}]`. */
  setResolutions(list) {
    this.#resolutions = list;
    const sel = this.el.resolution;
    sel.replaceChildren(
      ...list.map((r) => new Option(`${r.name} — ${r.width}×${r.height}`, String(r.index))),
    );
    if (this.#acked) this.#render(this.#acked);
    else if (this.#info) this.#showUnknown(this.#info);
  }

  resolutionName(index) {
    const r = this.#resolutions.find((x) => x.index === index);
    return r ? r.name : `#${index}`;
  }

  /**
   * Shows `info` (a CameraInfo); called on every hub update for the open camera. `disabled` is
   * null when the controls can work, otherwise the reason they cannot (shown in the form).
   */
  setCamera(info, disabled = info.online ? null : "Camera offline: controls are disabled until it is back.") {
    this.#info = info;
    const switched = info.id !== this.#camera;
    if (switched) {
      this.#camera = info.id;
      this.#pending.clear();
      this.#editing.clear();
      this.#acked = null;
    }
    this.fieldset.disabled = disabled !== null;
    const settings = info.settings ?? info.telemetry?.settings;
    if (settings) this.showSettings(settings);
    else if (!this.#acked) this.#showUnknown(info);
    // Why the controls are off wins; otherwise say what is not known (a pulled camera).
    const unknown = this.#acked ? null : this.#unknownText(info);
    this.note.hidden = disabled === null && unknown === null;
    this.note.dataset.kind = disabled === null ? "info" : "warn";
    this.note.textContent = disabled ?? unknown ?? "";
  }

  #unknownText(info) {
    const size = info.width && info.height ? `${info.width}×${info.height}` : null;
    return (
      "This camera does not report its settings" +
      (size ? `; it sends ${size} frames.` : ".") +
      " A setting you change here is applied and then shown."
    );
  }

  /**
   * No settings known (a standalone camera until its first acknowledged command): show that,
   * and the frame size it sends, instead of controls at made-up values.
   */
  #showUnknown(info) {
    const sel = this.el.resolution;
    let opt = sel.querySelector("option[data-unknown]");
    if (!opt) {
      opt = new Option("", "");
      opt.dataset.unknown = "true";
      sel.prepend(opt);
    }
    const size = info.width && info.height ? `${info.width}×${info.height}` : null;
    opt.textContent = size ? `Not reported — sends ${size}` : "Not reported";
    if (!this.#pending.has("resolution")) sel.value = "";
    for (const f of ["quality", "brightness"]) {
      if (this.#pending.has(f) || this.#editing.has(f)) continue;
      this.el[f].dataset.unknown = "true";
      this.out[f].value = "?";
    }
    for (const f of ["vflip", "hmirror"]) {
      if (!this.#pending.has(f)) this.el[f].indeterminate = true;
    }
  }

  /** Shows acknowledged `settings`, leaving controls that wait for their own ack alone. */
  showSettings(settings) {
    this.#acked = { ...settings };
    this.el.resolution.querySelector("option[data-unknown]")?.remove();
    for (const f of FIELDS) {
      delete this.el[f].dataset.unknown;
      if (this.el[f].type === "checkbox") this.el[f].indeterminate = false;
    }
    if (this.note.dataset.kind === "info") this.note.hidden = true;
    this.#render(settings);
  }

  #render(s) {
    for (const f of FIELDS) {
      if (this.#pending.has(f) || this.#editing.has(f) || s[f] === undefined) continue;
      const el = this.el[f];
      const v = Number(s[f]);
      if (el.type === "checkbox") el.checked = v === 1;
      else el.value = String(v);
      // A value the camera now reports supersedes an earlier failure on this control.
      if (el.dataset.state === "error" && el.dataset.acked !== String(v)) el.dataset.state = "ok";
      el.dataset.acked = String(v);
      this.#showValue(f, v);
    }
  }

  #showValue(field, v) {
    if (field === "quality") this.out.quality.value = String(v);
    if (field === "brightness") this.out.brightness.value = v > 0 ? `+${v}` : String(v);
  }

  async #apply(field, value) {
    const camera = this.#camera;
    if (!camera) return;
    const el = this.el[field];
    this.#editing.delete(field);
    this.#pending.add(field);
    el.dataset.state = "pending";
    el.setAttribute("aria-busy", "true");
    try {
      const settings = await api.applySettings(camera, { [field]: value });
      if (camera !== this.#camera) return;
      this.#pending.delete(field);
      el.dataset.state = "ok";
      this.showSettings(settings);
      const shown = field === "resolution" ? this.resolutionName(settings.resolution) : settings[field];
      notify(`${camera}: ${field} set to ${shown}`, { kind: "success" });
    } catch (e) {
      if (camera !== this.#camera) return;
      this.#pending.delete(field);
      el.dataset.state = "error";
      // The toast says why; the red outline only needs to catch the eye for a moment.
      setTimeout(() => el.dataset.state === "error" && delete el.dataset.state, 8000);
      if (this.#acked) this.#render(this.#acked);
      notify(`${camera}: could not set ${field}: ${e.message}`, { kind: "error" });
    } finally {
      el.removeAttribute("aria-busy");
    }
  }

  async #reboot() {
    const camera = this.#camera;
    if (!camera) return;
    const ok = await this.ui.confirm(
      `Reboot ${camera}?`,
      "The camera restarts and its stream stops for a few seconds.",
    );
    if (!ok) return;
    try {
      await api.reboot(camera);
      notify(`${camera}: reboot requested`, { kind: "info" });
    } catch (e) {
      notify(`${camera}: reboot failed: ${e.message}`, { kind: "error" });
    }
  }
}
