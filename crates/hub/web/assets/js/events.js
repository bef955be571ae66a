// Motion events as a list with thumbnails: every camera's on the grid page, one camera's on
// its page. The list loads from `GET /api/events` for a time range (the last hour, day or
// week, or a range the user picks) and then follows the hub's `motion_start`/`motion_end`
// messages on the browser socket (passed in by app.js): a new event appears at the top as it
// starts and is completed when it ends, without asking the hub again. Clicking an event
// hands its playback instant (from `links.playback`) to `onPlay`; app.js plays it in the
// camera page's player. Deleting is for roles with `snapshot_delete` (session.js hides the
// button for others; the hub checks anyway). This module never decodes video and never
// decides what an event is (the hub does).

import { api } from "./api.js";
import { notify } from "./notifications.js";

const PAGE = 50;
/** Most events kept in a list that grows live. */
const MAX_SHOWN = 500;
const RANGES = [
  { key: "1h", label: "1 h", ms: 3600_000 },
  { key: "24h", label: "24 h", ms: 24 * 3600_000 },
  { key: "7d", label: "7 days", ms: 7 * 24 * 3600_000 },
  { key: "custom", label: "Custom", ms: null },
];

function when(ms) {
  return new Date(ms).toLocaleString(undefined, {
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

function seconds(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 120 ? `${s} s` : `${Math.round(s / 60)} min`;
}

/** `<input type=datetime-local>` value of `ms` in local time, and back. */
function localInput(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** The instant (Unix ms) an event's playback link starts at: `?from=` of `links.playback`,
 *  or 5 s before the start when the link is missing or unreadable. */
export function playbackFrom(ev) {
  try {
    const from = new URL(ev.links.playback, location.origin).searchParams.get("from");
    if (from !== null && /^\d+$/.test(from)) return Number(from);
  } catch {
    // No usable link: fall back below.
  }
  return Math.max(0, ev.started_ms - 5000);
}

export class EventList {
  #root;
  #camera = null; // null: every camera
  #items = []; // Event objects shown, newest first
  #range = RANGES[0];
  #custom = { fromMs: null, toMs: null };
  #generation = 0;
  #onPlay;
  #confirm;
  #selected = null; // id of the event last played
  #el = {};

  /**
   * @param {HTMLElement} root an empty section that becomes the list
   * @param {{title: string, onPlay: (ev: object, fromMs: number) => void,
   *          confirm: (title: string, text: string) => Promise<boolean>}} options
   */
  constructor(root, { title, onPlay, confirm }) {
    this.#root = root;
    this.#onPlay = onPlay;
    this.#confirm = confirm;
    this.#build(title);
  }

  #build(title) {
    const root = this.#root;
    root.classList.add("events");
    const head = document.createElement("div");
    head.className = "panel-head";
    const h = document.createElement("h2");
    h.textContent = `${title} `;
    const count = document.createElement("small");
    count.className = "muted";
    h.append(count);
    const ranges = document.createElement("div");
    ranges.className = "segmented";
    ranges.setAttribute("role", "group");
    ranges.setAttribute("aria-label", "Events time range");
    for (const r of RANGES) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "btn small";
      b.textContent = r.label;
      b.dataset.range = r.key;
      b.dataset.testid = `events-range-${r.key}`;
      b.setAttribute("aria-pressed", String(r === this.#range));
      b.addEventListener("click", () => this.#pickRange(r));
      ranges.append(b);
    }
    head.append(h, ranges);

    const form = document.createElement("form");
    form.className = "events-custom";
    form.hidden = true;
    form.noValidate = true;
    const field = (label, name) => {
      const l = document.createElement("label");
      l.textContent = `${label} `;
      const i = document.createElement("input");
      i.type = "datetime-local";
      i.name = name;
      i.dataset.testid = `events-${name}`;
      l.append(i);
      return [l, i];
    };
    const [fromLabel, from] = field("From", "from");
    const [toLabel, to] = field("to", "to");
    const apply = document.createElement("button");
    apply.type = "submit";
    apply.className = "btn small";
    apply.textContent = "Show";
    apply.dataset.testid = "events-apply";
    const hint = document.createElement("small");
    hint.className = "muted";
    hint.textContent = "Leave “to” empty for up to now (then new events appear live).";
    form.append(fromLabel, toLabel, apply, hint);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const f = from.value ? new Date(from.value).getTime() : NaN;
      const t = to.value ? new Date(to.value).getTime() : null;
      if (!Number.isFinite(f) || (t !== null && !(t > f))) {
        notify("Pick a start time, and an end after it (or none)", { kind: "warn" });
        return;
      }
      this.#custom = { fromMs: f, toMs: t };
      this.refresh();
    });

    const empty = document.createElement("p");
    empty.className = "empty";
    empty.dataset.testid = "events-empty";
    const list = document.createElement("ul");
    list.className = "events-list";
    list.dataset.testid = "events-list";
    const more = document.createElement("button");
    more.type = "button";
    more.className = "btn";
    more.textContent = "Load older";
    more.hidden = true;
    more.addEventListener("click", () => this.#load(true));
    root.append(head, form, empty, list, more);
    this.#el = { count, ranges, form, from, to, empty, list, more };
  }

  /** Shows the events of `camera` (null: every camera) and loads them. */
  setCamera(camera) {
    this.#camera = camera;
    this.#items = [];
    this.#selected = null;
    this.refresh();
  }

  /** Loads the current range again (after a reconnect: events may have happened meanwhile). */
  refresh() {
    this.#items = [];
    this.#render();
    return this.#load(false);
  }

  /** The range shown: `{fromMs, toMs}`, `toMs` null when it runs up to now (live). */
  #window() {
    if (this.#range.ms === null) return this.#custom;
    return { fromMs: Date.now() - this.#range.ms, toMs: null };
  }

  #pickRange(r) {
    this.#range = r;
    for (const b of this.#el.ranges.children) b.setAttribute("aria-pressed", String(b.dataset.range === r.key));
    const custom = r.ms === null;
    this.#el.form.hidden = !custom;
    if (custom) {
      // Start from what was shown, so "Custom" narrows a range rather than emptying the list.
      if (this.#custom.fromMs === null) this.#custom = { fromMs: Date.now() - 24 * 3600_000, toMs: null };
      this.#el.from.value = localInput(this.#custom.fromMs);
      this.#el.to.value = this.#custom.toMs === null ? "" : localInput(this.#custom.toMs);
    }
    this.refresh();
  }

  async #load(older) {
    const gen = ++this.#generation;
    const { fromMs, toMs } = this.#window();
    const last = this.#items[this.#items.length - 1];
    // Older pages: events that started before the oldest one shown.
    const to = older && last ? last.started_ms : toMs;
    this.#root.dataset.loading = "true";
    try {
      const body = await api.eventList({ camera: this.#camera, fromMs, toMs: to ?? undefined, limit: PAGE });
      if (gen !== this.#generation) return;
      const page = Array.isArray(body?.events) ? body.events : [];
      const known = new Set(this.#items.map((e) => e.id));
      this.#items.push(...page.filter((e) => !known.has(e.id)));
      this.#el.more.hidden = page.length < PAGE;
      this.#root.dataset.error = "";
    } catch (e) {
      if (gen !== this.#generation) return;
      this.#root.dataset.error = e.message;
      this.#el.more.hidden = true;
      // A hub without motion detection answers 503: say so once, in the list itself.
      if (e.status !== 503) notify(`Could not load motion events: ${e.message}`, { kind: "error" });
    } finally {
      if (gen === this.#generation) delete this.#root.dataset.loading;
    }
    this.#render();
  }

  /** `motion_start` or `motion_end` from the hub: adds or completes the event in place. */
  event(ev) {
    if (!ev || typeof ev.id !== "number" || ev.id <= 0) return; // not stored: nothing to show
    if (this.#camera !== null && ev.camera !== this.#camera) return;
    const i = this.#items.findIndex((e) => e.id === ev.id);
    if (i >= 0) {
      this.#items[i] = { ...this.#items[i], ...ev };
      this.#replace(this.#items[i]);
      return;
    }
    // Only a range that runs up to now shows new events.
    const { fromMs, toMs } = this.#window();
    if (toMs !== null) return;
    this.#items.unshift(ev);
    this.#items.sort((a, b) => b.started_ms - a.started_ms);
    // A page left open for days: what slid out of the range goes, and the list stays short
    // ("Load older" brings back the rest).
    const kept = this.#items.filter((e) => e.ended_ms === null || e.ended_ms === undefined || e.ended_ms >= fromMs);
    if (kept.length > MAX_SHOWN) this.#el.more.hidden = false;
    this.#items = kept.slice(0, MAX_SHOWN);
    this.#render();
  }

  #render() {
    const { count, empty, list } = this.#el;
    const err = this.#root.dataset.error;
    empty.hidden = this.#items.length > 0;
    empty.textContent = err
      ? `Motion events are unavailable: ${err}`
      : this.#camera
        ? "No motion on this camera in this range."
        : "No motion on any camera in this range.";
    count.textContent = this.#items.length ? `(${this.#items.length}${this.#el.more.hidden ? "" : "+"})` : "";
    list.replaceChildren(...this.#items.map((e) => this.#item(e)));
    this.#root.dataset.count = String(this.#items.length);
  }

  #replace(ev) {
    const old = this.#el.list.querySelector(`[data-event-id="${ev.id}"]`);
    if (old) old.replaceWith(this.#item(ev));
    else this.#render();
  }

  #item(ev) {
    const running = ev.ended_ms === null || ev.ended_ms === undefined;
    const li = document.createElement("li");
    li.dataset.testid = "event";
    li.dataset.eventId = String(ev.id);
    li.dataset.camera = ev.camera;
    li.dataset.running = String(running);
    if (ev.id === this.#selected) li.dataset.selected = "true";
    const open = document.createElement("button");
    open.type = "button";
    open.className = "event-open";
    open.dataset.testid = "event-open";
    const img = document.createElement("img");
    // The peak frame changes while the event runs: its end gets a fresh URL, not the cache.
    // Every event carries its links; another node's has none (its thumbnail is not here).
    const thumb = ev.links?.thumb;
    if (thumb) img.src = `${thumb}${running ? "" : "?v=end"}`;
    img.alt = "";
    img.loading = "lazy";
    img.decoding = "async";
    img.dataset.testid = "event-thumb";
    const text = document.createElement("span");
    text.className = "event-text";
    const title = document.createElement("strong");
    title.textContent = this.#camera ? when(ev.started_ms) : `${ev.camera} · ${when(ev.started_ms)}`;
    const detail = document.createElement("span");
    detail.className = "muted";
    const parts = [running ? "motion now" : seconds(ev.ended_ms - ev.started_ms)];
    if (typeof ev.peak_score === "number") parts.push(`peak ${(ev.peak_score * 100).toFixed(1)} %`);
    if (Array.isArray(ev.zones) && ev.zones.length) parts.push(ev.zones.join(", "));
    detail.textContent = parts.join(" · ");
    text.append(title, detail);
    open.append(img, text);
    open.setAttribute("aria-label", `Play motion on ${ev.camera} from ${when(ev.started_ms)}`);
    open.addEventListener("click", () => {
      this.#selected = ev.id;
      for (const x of this.#el.list.querySelectorAll("[data-selected]")) delete x.dataset.selected;
      li.dataset.selected = "true";
      this.#onPlay(ev, playbackFrom(ev));
    });
    const del = document.createElement("button");
    del.type = "button";
    del.className = "btn small danger event-delete";
    del.textContent = "Delete";
    del.dataset.requires = "snapshot_delete";
    del.dataset.testid = "event-delete";
    del.setAttribute("aria-label", `Delete the motion event of ${ev.camera} from ${when(ev.started_ms)}`);
    del.addEventListener("click", () => this.#delete(ev));
    li.append(open, del);
    return li;
  }

  async #delete(ev) {
    const ok = await this.#confirm(
      "Delete this motion event?",
      `${ev.camera}, ${when(ev.started_ms)}: the event and its thumbnail are deleted; its recording stays.`,
    );
    if (!ok) return;
    try {
      await api.deleteEvent(ev.id);
    } catch (e) {
      if (e.status !== 404) {
        notify(`Could not delete the event: ${e.message}`, { kind: "error" });
        return;
      }
    }
    this.#items = this.#items.filter((e) => e.id !== ev.id);
    this.#render();
    notify("Motion event deleted", { kind: "success" });
  }
}

/**
 * Which cameras are in motion now, for the badges: starts from the running events the hub
 * lists (`GET /api/events?from=now`) each time the socket (re)delivers the camera list, then
 * follows `motion_start`/`motion_end`. `onChange(camera, active)` is called on every change.
 */
export class MotionState {
  #active = new Map(); // camera -> id of its running event
  #touched = new Map(); // camera -> generation of the socket message that last changed it
  #generation = 0;
  #epoch = 0; // +1 each time the hub is lost: answers asked for before are stale
  #onChange;

  constructor(onChange) {
    this.#onChange = onChange;
  }

  /** Whether `camera` is in motion now. */
  active(camera) {
    return this.#active.has(camera);
  }

  #set(camera, id) {
    const was = this.#active.has(camera);
    if (id === null) this.#active.delete(camera);
    else this.#active.set(camera, id);
    if (was !== (id !== null)) this.#onChange(camera, id !== null);
  }

  /** The hub is unreachable: whether anything moves is unknown, so no badge says it does
   *  (the next `sync` tells again). */
  forget() {
    this.#generation += 1;
    this.#epoch += 1;
    for (const camera of [...this.#active.keys()]) this.#set(camera, null);
    this.#touched.clear();
  }

  /** A `motion_start`/`motion_end` message. */
  message(type, camera, ev) {
    this.#generation += 1;
    this.#touched.set(camera, this.#generation);
    // A camera has one event at a time: its end is the end of motion there.
    this.#set(camera, type === "motion_start" ? (ev?.id ?? 0) : null);
  }

  /** Asks the hub which events run now; messages that arrive meanwhile win. */
  async sync() {
    const asked = this.#generation;
    const epoch = this.#epoch;
    let body;
    try {
      body = await api.eventList({ fromMs: Date.now(), limit: 500 });
    } catch {
      return; // No motion on this hub (503) or unreachable: badges follow the socket only.
    }
    if (epoch !== this.#epoch) return;
    const running = new Map();
    for (const e of body?.events ?? []) {
      if (e.ended_ms === null && !running.has(e.camera)) running.set(e.camera, e.id);
    }
    const fresh = (camera) => (this.#touched.get(camera) ?? -1) <= asked;
    for (const camera of [...this.#active.keys()]) {
      if (!running.has(camera) && fresh(camera)) this.#set(camera, null);
    }
    for (const [camera, id] of running) if (fresh(camera)) this.#set(camera, id);
  }
}
