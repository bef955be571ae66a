// Motion zones and mask of one camera, drawn over its live picture: a transparent canvas laid
// exactly on the picture (letterboxing included) shows the zones (named areas scored on their
// own) and the mask (areas ignored); an admin drags rectangles on it, names zones, removes
// rectangles, and saves them with `PUT /api/cameras/{id}/motion`. Rectangles are kept as the
// hub keeps them (espcam-motion's config.rs): fractions of the picture, 0..=1 from the top
// left, `x0 < x1`, `y0 < y1`, so they survive a resolution change; names are 1..=32 ASCII
// letters, digits, space, `-`, `_`, `.`, unique per camera; at most 32 zones and 64 mask
// rectangles. The hub validates again and its message is shown as it is. Viewers see the
// zones, not the drawing tools (session.js hides what `data-requires="settings"` marks).

import { api } from "./api.js";
import { notify } from "./notifications.js";
import { may } from "./session.js";

const MAX_ZONES = 32;
const MAX_MASK = 64;
const NAME = /^[A-Za-z0-9 ._-]{1,32}$/;
/** The smallest rectangle drawn, as a fraction of the picture's side (a click draws none). */
const MIN_SIDE = 0.01;

const round = (v) => Math.round(Math.min(1, Math.max(0, v)) * 10_000) / 10_000;

export class ZoneEditor {
  #live;
  #overlay;
  #toggle;
  #panel;
  #camera = null;
  #settings = null; // the `settings` of GET .../motion, as loaded or last saved
  #zones = []; // [{name, rect: {x0, y0, x1, y1}}]
  #mask = []; // [{x0, y0, x1, y1}]
  #draft = null; // the rectangle being dragged
  #start = null;
  #dirty = false;
  #generation = 0;
  #timer = null;
  #el = {};

  /** @param {{live: HTMLCanvasElement, overlay: HTMLCanvasElement, toggle: HTMLButtonElement,
   *           panel: HTMLElement}} el */
  constructor({ live, overlay, toggle, panel }) {
    this.#live = live;
    this.#overlay = overlay;
    this.#toggle = toggle;
    this.#panel = panel;
    this.#build();
    toggle.addEventListener("click", () => (this.#panel.hidden ? this.open() : this.close()));
    overlay.addEventListener("pointerdown", (e) => this.#down(e));
    overlay.addEventListener("pointermove", (e) => this.#move(e));
    overlay.addEventListener("pointerup", (e) => this.#up(e));
    overlay.addEventListener("pointercancel", () => {
      this.#draft = null;
      this.#draw();
    });
    new ResizeObserver(() => this.#place()).observe(live);
  }

  #build() {
    const p = this.#panel;
    const head = document.createElement("div");
    head.className = "panel-head";
    const h = document.createElement("h2");
    h.textContent = "Motion zones and mask";
    head.append(h);
    const help = document.createElement("p");
    help.className = "muted zones-help";
    const tools = document.createElement("div");
    tools.className = "zones-tools";
    tools.dataset.requires = "settings";
    const kind = document.createElement("div");
    kind.className = "segmented";
    kind.setAttribute("role", "group");
    kind.setAttribute("aria-label", "What a drawn rectangle is");
    for (const [value, label] of [
      ["zone", "Zone"],
      ["mask", "Mask area"],
    ]) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "btn small";
      b.textContent = label;
      b.dataset.kind = value;
      b.dataset.testid = `zones-tool-${value}`;
      b.setAttribute("aria-pressed", String(value === "zone"));
      b.addEventListener("click", () => {
        for (const x of kind.children) x.setAttribute("aria-pressed", String(x === b));
        this.#el.nameLabel.hidden = value !== "zone";
      });
      kind.append(b);
    }
    const nameLabel = document.createElement("label");
    nameLabel.textContent = "Name of the next zone ";
    const name = document.createElement("input");
    name.type = "text";
    name.maxLength = 32;
    name.value = "zone 1";
    name.dataset.testid = "zones-name";
    nameLabel.append(name);
    tools.append(kind, nameLabel);

    const list = document.createElement("ul");
    list.className = "zones-list";
    list.dataset.testid = "zones-list";
    const status = document.createElement("p");
    status.className = "zones-status";
    status.dataset.testid = "zones-status";
    status.setAttribute("role", "status");
    const actions = document.createElement("div");
    actions.className = "zones-actions";
    actions.dataset.requires = "settings";
    const button = (label, testid, onClick, cls = "btn") => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = cls;
      b.textContent = label;
      b.dataset.testid = testid;
      b.addEventListener("click", onClick);
      return b;
    };
    const save = button("Save", "zones-save", () => this.#save(), "btn primary");
    actions.append(
      save,
      button("Undo changes", "zones-revert", () => this.#load()),
      button("Remove all", "zones-clear", () => {
        this.#zones = [];
        this.#mask = [];
        this.#changed();
      }),
    );
    p.append(head, help, tools, list, actions, status);
    this.#el = { help, kind, nameLabel, name, list, status, save };
  }

  /** Shows camera `id` (the editor closes). */
  setCamera(id) {
    this.close();
    this.#camera = id;
    this.#settings = null;
    this.#zones = [];
    this.#mask = [];
    this.#dirty = false;
  }

  open() {
    if (!this.#camera) return;
    this.#panel.hidden = false;
    this.#overlay.hidden = false;
    this.#toggle.setAttribute("aria-pressed", "true");
    const editable = may("settings");
    this.#overlay.dataset.editable = String(editable);
    this.#el.help.textContent = editable
      ? "Drag on the picture to draw a rectangle: a zone is scored on its own (events name the zones they hit), a mask area is ignored. With no zones the whole picture counts."
      : "Zones (scored on their own) and mask areas (ignored) of this camera. Only an admin can change them.";
    this.#place();
    // The picture's size can change without its box changing (letterboxing): follow it.
    clearInterval(this.#timer);
    this.#timer = setInterval(() => this.#place(), 1000);
    if (!this.#dirty) this.#load();
  }

  close() {
    this.#panel.hidden = true;
    this.#overlay.hidden = true;
    this.#toggle.setAttribute("aria-pressed", "false");
    clearInterval(this.#timer);
    this.#timer = null;
    this.#draft = null;
  }

  async #load() {
    const id = this.#camera;
    const gen = ++this.#generation;
    this.#panel.dataset.loaded = "false";
    this.#status("Loading…");
    try {
      const m = await api.motion(id);
      if (gen !== this.#generation) return;
      this.#settings = m.settings;
      this.#zones = (m.settings?.detector?.zones ?? []).map((z) => ({ name: z.name, rect: { ...z.rect } }));
      this.#mask = (m.settings?.detector?.mask ?? []).map((r) => ({ ...r }));
      this.#dirty = false;
      this.#panel.dataset.loaded = "true";
      this.#status(this.#summary());
      this.#nextName();
      this.#render();
    } catch (e) {
      if (gen !== this.#generation) return;
      this.#status(`Could not load the motion settings: ${e.message}`, "error");
    }
  }

  #summary() {
    const z = this.#zones.length;
    const m = this.#mask.length;
    return `${z} zone${z === 1 ? "" : "s"}, ${m} mask area${m === 1 ? "" : "s"}${this.#dirty ? " — not saved yet" : ""}`;
  }

  #status(text, kind = "info") {
    this.#el.status.textContent = text;
    this.#el.status.dataset.kind = kind;
  }

  #changed() {
    this.#dirty = true;
    this.#panel.dataset.dirty = "true";
    this.#status(this.#summary());
    this.#render();
  }

  /** Proposes a free name "zone N" for the next zone. */
  #nextName() {
    const taken = new Set(this.#zones.map((z) => z.name));
    let n = this.#zones.length + 1;
    while (taken.has(`zone ${n}`)) n += 1;
    this.#el.name.value = `zone ${n}`;
  }

  async #save() {
    const id = this.#camera;
    if (!id || !this.#settings) return;
    const settings = {
      ...this.#settings,
      detector: { ...this.#settings.detector, zones: this.#zones, mask: this.#mask },
    };
    this.#el.save.disabled = true;
    this.#status("Saving…");
    try {
      const m = await api.setMotion(id, settings);
      if (id !== this.#camera) return;
      this.#settings = m.settings;
      this.#dirty = false;
      delete this.#panel.dataset.dirty;
      this.#panel.dataset.saved = String(Date.now());
      this.#status(`Saved: ${this.#summary()}`, "success");
      notify(`${id}: motion zones saved`, { kind: "success" });
    } catch (e) {
      this.#status(`Not saved: ${e.message}`, "error");
    } finally {
      this.#el.save.disabled = false;
    }
  }

  // ---- Drawing --------------------------------------------------------------------------

  /** Lays the overlay exactly over the picture inside the live canvas' box. */
  #place() {
    const live = this.#live;
    const o = this.#overlay;
    if (o.hidden) return;
    const bw = live.offsetWidth;
    const bh = live.offsetHeight;
    const cw = live.width || 1;
    const ch = live.height || 1;
    const scale = Math.min(bw / cw, bh / ch);
    const w = cw * scale;
    const h = ch * scale;
    o.style.left = `${live.offsetLeft + (bw - w) / 2}px`;
    o.style.top = `${live.offsetTop + (bh - h) / 2}px`;
    o.style.width = `${w}px`;
    o.style.height = `${h}px`;
    const dpr = window.devicePixelRatio || 1;
    const pw = Math.max(1, Math.round(w * dpr));
    const ph = Math.max(1, Math.round(h * dpr));
    if (o.width !== pw || o.height !== ph) {
      o.width = pw;
      o.height = ph;
    }
    this.#draw();
  }

  #point(e) {
    const r = this.#overlay.getBoundingClientRect();
    return {
      x: Math.min(1, Math.max(0, (e.clientX - r.left) / Math.max(1, r.width))),
      y: Math.min(1, Math.max(0, (e.clientY - r.top) / Math.max(1, r.height))),
    };
  }

  #down(e) {
    if (e.button !== 0 || !may("settings") || !this.#settings) return;
    e.preventDefault();
    this.#start = this.#point(e);
    this.#draft = null;
    this.#overlay.setPointerCapture?.(e.pointerId);
  }

  #move(e) {
    if (!this.#start) return;
    const p = this.#point(e);
    const s = this.#start;
    this.#draft = {
      x0: Math.min(s.x, p.x),
      y0: Math.min(s.y, p.y),
      x1: Math.max(s.x, p.x),
      y1: Math.max(s.y, p.y),
    };
    this.#draw();
  }

  #up(e) {
    if (!this.#start) return;
    this.#move(e);
    const d = this.#draft;
    this.#start = null;
    this.#draft = null;
    if (!d || d.x1 - d.x0 < MIN_SIDE || d.y1 - d.y0 < MIN_SIDE) {
      this.#draw();
      return;
    }
    const rect = { x0: round(d.x0), y0: round(d.y0), x1: round(d.x1), y1: round(d.y1) };
    const kind = [...this.#el.kind.children].find((b) => b.getAttribute("aria-pressed") === "true")?.dataset.kind;
    if (kind === "mask") {
      if (this.#mask.length >= MAX_MASK) return notify(`At most ${MAX_MASK} mask areas`, { kind: "warn" });
      this.#mask.push(rect);
    } else {
      const name = this.#el.name.value.trim();
      if (!NAME.test(name)) {
        this.#status("A zone name is 1 to 32 letters, digits, spaces, “-”, “_” or “.”", "error");
        this.#draw();
        return;
      }
      if (this.#zones.some((z) => z.name === name)) {
        this.#status(`There is a zone called “${name}” already: pick another name`, "error");
        this.#draw();
        return;
      }
      if (this.#zones.length >= MAX_ZONES) return notify(`At most ${MAX_ZONES} zones`, { kind: "warn" });
      this.#zones.push({ name, rect });
      this.#nextName();
    }
    this.#changed();
  }

  #render() {
    const items = [
      ...this.#zones.map((z, i) => this.#item("zone", z.name, () => this.#zones.splice(i, 1), z.rect)),
      ...this.#mask.map((r, i) => this.#item("mask", `mask ${i + 1}`, () => this.#mask.splice(i, 1), r)),
    ];
    this.#el.list.replaceChildren(...items);
    this.#overlay.dataset.zones = String(this.#zones.length);
    this.#overlay.dataset.mask = String(this.#mask.length);
    this.#draw();
  }

  #item(kind, label, remove, rect) {
    const li = document.createElement("li");
    li.dataset.testid = "zone-item";
    li.dataset.kind = kind;
    const name = document.createElement("span");
    name.className = "zone-name";
    name.textContent = label;
    const where = document.createElement("small");
    where.className = "muted";
    const pct = (v) => `${Math.round(v * 100)}`;
    where.textContent = ` ${pct(rect.x0)}–${pct(rect.x1)} % × ${pct(rect.y0)}–${pct(rect.y1)} %`;
    const del = document.createElement("button");
    del.type = "button";
    del.className = "btn small";
    del.textContent = "Remove";
    del.dataset.requires = "settings";
    del.setAttribute("aria-label", `Remove ${label}`);
    del.addEventListener("click", () => {
      remove();
      this.#changed();
    });
    li.append(name, where, del);
    return li;
  }

  #draw() {
    const o = this.#overlay;
    const ctx = o.getContext("2d");
    const w = o.width;
    const h = o.height;
    ctx.clearRect(0, 0, w, h);
    const dpr = window.devicePixelRatio || 1;
    const box = (r) => [r.x0 * w, r.y0 * h, (r.x1 - r.x0) * w, (r.y1 - r.y0) * h];
    ctx.lineWidth = 2 * dpr;
    ctx.font = `${13 * dpr}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    for (const r of this.#mask) {
      ctx.fillStyle = "rgba(0, 0, 0, 0.6)";
      ctx.fillRect(...box(r));
      ctx.strokeStyle = "#f85149";
      ctx.strokeRect(...box(r));
      ctx.fillStyle = "#ffb3ad";
      ctx.fillText("mask", r.x0 * w + 4 * dpr, r.y0 * h + 4 * dpr);
    }
    for (const z of this.#zones) {
      ctx.fillStyle = "rgba(88, 166, 255, 0.22)";
      ctx.fillRect(...box(z.rect));
      ctx.strokeStyle = "#58a6ff";
      ctx.strokeRect(...box(z.rect));
      ctx.fillStyle = "#e6edf3";
      ctx.fillText(z.name, z.rect.x0 * w + 4 * dpr, z.rect.y0 * h + 4 * dpr);
    }
    if (this.#draft) {
      ctx.setLineDash([6 * dpr, 4 * dpr]);
      ctx.strokeStyle = "#ffffff";
      ctx.strokeRect(...box(this.#draft));
      ctx.setLineDash([]);
    }
  }
}
