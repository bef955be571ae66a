// Snapshots of one camera: save the current frame (the hub stores it), and the gallery of
// saved ones with thumbnails (the hub's small `thumb.jpg`), full-size view, download and
// delete. Talks only to the REST API; never deletes anything without the user asking for it,
// and a delete can be undone: the snapshot leaves the gallery at once, but the hub is asked to
// delete it only after UNDO_MS (or when the page is closed).
//
// In cluster mode the strip also shows the snapshots another hub (node) saves of the camera
// shown, as `remote_snapshot` messages announce them: their ids are that node's, so they are
// kept apart from this hub's by a key with the node's name; their images come through the
// `url` the message gives (this hub relays them); they cannot be deleted from here. When the
// camera shown is held by another node, that node's newest snapshots of it are listed too
// (`GET /api/nodes/{node}/snapshots`, once per camera and node). Peer text (the node's name)
// reaches the page only as textContent.

import { api } from "./api.js";
import { notify } from "./notifications.js";

const PAGE = 24;
/** How long a deleted snapshot can be brought back before the hub deletes it. */
export const UNDO_MS = 5000;

/** A remote snapshot has no thumbnail route: its full JPEG (through this hub) stands in. */
const thumbUrl = (snap) =>
  snap.node ? snap.url : `/api/snapshots/${encodeURIComponent(snap.id)}/thumb.jpg`;

/** Tells this hub's snapshots from another node's (whose ids may be the same numbers). */
const keyOf = (snap) => (snap.node ? `${snap.node}\u0000${snap.id}` : String(snap.id));

/** Newest first; ids order this hub's own, times order them among other nodes'. */
const newestFirst = (a, b) =>
  b.taken_at_us - a.taken_at_us || (!a.node && !b.node ? b.id - a.id : 0);

function formatTime(us) {
  return new Date(us / 1000).toLocaleString(undefined, {
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

export class Snapshots {
  #camera = null;
  #items = []; // Snapshot objects shown, newest first
  #open = null; // the snapshot shown in the dialog
  #saving = false;
  #deleting = new Map(); // snapshot id -> { snap, timer, toast }: deleted, still undoable
  #nodesLoaded = new Set(); // nodes whose snapshots of the camera shown were listed

  constructor({ list, empty, count, more, dialog }) {
    this.list = list;
    this.empty = empty;
    this.count = count;
    this.more = more;
    this.dialog = dialog;
    this.full = dialog.querySelector("#snapshot-full");
    this.title = dialog.querySelector("#snapshot-title");
    this.download = dialog.querySelector("#snapshot-download");
    this.deleteBtn = dialog.querySelector("#snapshot-delete");
    more.addEventListener("click", () => this.#load(true));
    this.deleteBtn.addEventListener("click", () => this.#delete());
    dialog.addEventListener("close", () => this.full.removeAttribute("src"));
    // Closing the page ends the undo window: what the user deleted is deleted.
    window.addEventListener("pagehide", () => this.#flush());
  }

  /** Shows the gallery of `camera`. */
  setCamera(camera) {
    if (camera === this.#camera) return;
    this.#camera = camera;
    this.#items = [];
    this.#nodesLoaded = new Set();
    this.#render();
    this.#load(false);
  }

  /**
   * Camera `camera`, if it is the one shown, is held by another node: list that node's newest
   * snapshots of it (once per camera and node; called again with the same node, it does
   * nothing).
   */
  setNode(camera, node) {
    if (!camera || camera !== this.#camera) return;
    if (typeof node !== "string" || !node || this.#nodesLoaded.has(node)) return;
    this.#nodesLoaded.add(node);
    this.#loadNode(camera, node);
  }

  async #loadNode(camera, node) {
    try {
      const page = await api.nodeSnapshots(node, camera, { limit: PAGE });
      if (camera !== this.#camera || !Array.isArray(page)) return;
      for (const snap of page) this.remoteAdded(node, snap);
    } catch (e) {
      if (camera !== this.#camera) return;
      this.#nodesLoaded.delete(node); // asked again at the next update of the camera
      notify(`Could not load the snapshots kept on ${node}: ${e.message}`, { kind: "error" });
    }
  }

  /** Saves the camera's current frame and adds it to the gallery. */
  async save() {
    const camera = this.#camera;
    if (!camera || this.#saving) return;
    this.#saving = true;
    try {
      const snap = await api.takeSnapshot(camera);
      if (camera === this.#camera && !this.#items.some((s) => keyOf(s) === keyOf(snap))) {
        this.#items.unshift(snap);
        this.#render();
      }
      notify(`Snapshot saved (${snap.width}×${snap.height}, ${Math.round(snap.bytes / 1024)} KiB)`, {
        kind: "success",
      });
    } catch (e) {
      notify(`${camera}: snapshot failed: ${e.message}`, { kind: "error" });
    } finally {
      this.#saving = false;
    }
  }

  /** A snapshot saved elsewhere (another tab, the REST API): show it if it is this camera's. */
  added(snap) {
    if (snap?.camera !== this.#camera || this.#items.some((s) => keyOf(s) === keyOf(snap))) return;
    this.#items.unshift(snap);
    this.#render();
  }

  /** A snapshot deleted elsewhere: drop it, and close it if it is open. */
  removed(id) {
    this.#drop(String(id));
  }

  /**
   * Another node saved `snap` (a `remote_snapshot` message): show it if it is of the camera
   * shown. Anything malformed is ignored.
   */
  remoteAdded(node, snap) {
    if (typeof node !== "string" || !node || !snap || typeof snap.url !== "string") return;
    if (!Number.isSafeInteger(snap.id) || !snap.url.startsWith("/api/nodes/")) return;
    const remote = { ...snap, node };
    if (remote.camera !== this.#camera || this.#items.some((s) => keyOf(s) === keyOf(remote))) return;
    this.#items.push(remote);
    this.#items.sort(newestFirst);
    this.#render();
  }

  /** Another node deleted its snapshot `id` (a `remote_snapshot_deleted` message). */
  remoteRemoved(node, id) {
    if (typeof node !== "string" || !node) return;
    this.#drop(keyOf({ node, id }));
  }

  #drop(key) {
    if (!this.#items.some((s) => keyOf(s) === key)) return;
    this.#items = this.#items.filter((s) => keyOf(s) !== key);
    this.#render();
    if (this.#open && keyOf(this.#open) === key && this.dialog.open) this.dialog.close();
  }

  /** The last of this hub's own snapshots shown: where the next page starts. */
  #lastLocal() {
    for (let i = this.#items.length - 1; i >= 0; i--) if (!this.#items[i].node) return this.#items[i];
    return undefined;
  }

  async #load(older) {
    const camera = this.#camera;
    const last = this.#lastLocal();
    try {
      const page = await api.snapshots(camera, {
        limit: PAGE,
        before: older && last ? last.id : undefined,
      });
      if (camera !== this.#camera) return;
      const known = new Set(this.#items.map(keyOf));
      this.#items.push(...page.filter((s) => !known.has(keyOf(s)) && !this.#deleting.has(s.id)));
      if (this.#items.some((s) => s.node)) this.#items.sort(newestFirst);
      this.more.hidden = page.length < PAGE;
      this.#render();
    } catch (e) {
      notify(`Could not load snapshots: ${e.message}`, { kind: "error" });
    }
  }

  #render() {
    this.empty.hidden = this.#items.length > 0;
    this.count.textContent = this.#items.length ? `(${this.#items.length}${this.more.hidden ? "" : "+"})` : "";
    this.list.replaceChildren(...this.#items.map((s) => this.#tile(s)));
  }

  #tile(snap) {
    const li = document.createElement("li");
    li.dataset.snapshotId = String(snap.id);
    li.dataset.testid = "snapshot";
    if (snap.node) li.dataset.node = snap.node;
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "thumb";
    const when = formatTime(snap.taken_at_us);
    const from = snap.node ? ` on ${snap.node}` : "";
    btn.setAttribute("aria-label", `Open snapshot from ${when}${from}, ${snap.width}×${snap.height}`);
    const img = document.createElement("img");
    img.src = thumbUrl(snap);
    img.alt = "";
    img.loading = "lazy";
    img.decoding = "async";
    const cap = document.createElement("span");
    cap.className = "caption";
    cap.textContent = `${when} · ${snap.width}×${snap.height}`;
    btn.append(img, cap);
    if (snap.node) {
      const node = document.createElement("span");
      node.className = "caption node";
      node.dataset.testid = "snapshot-node";
      node.textContent = snap.node;
      btn.append(node);
    }
    btn.addEventListener("click", () => this.#show(snap));
    li.append(btn);
    return li;
  }

  #show(snap) {
    this.#open = snap;
    const from = snap.node ? ` (on ${snap.node})` : "";
    this.title.textContent = `${snap.camera} — ${formatTime(snap.taken_at_us)}${from}`;
    this.full.src = snap.url;
    this.full.alt = `Snapshot of ${snap.camera}, ${snap.width}×${snap.height}`;
    this.download.href = snap.url;
    this.download.download = snap.node ? `${snap.camera}-${snap.node}-${snap.id}.jpg` : `${snap.camera}-${snap.id}.jpg`;
    // Another node's snapshot is deleted there, not through this hub.
    this.deleteBtn.hidden = Boolean(snap.node);
    this.dialog.showModal();
  }

  /** Deletes the open snapshot, undoably: gone from view now, from the hub in UNDO_MS. */
  #delete() {
    const snap = this.#open;
    if (!snap || snap.node || this.#deleting.has(snap.id)) return;
    this.#items = this.#items.filter((s) => s.id !== snap.id);
    this.#render();
    this.dialog.close();
    const timer = setTimeout(() => this.#commit(snap.id), UNDO_MS);
    const toast = notify("Snapshot deleted", {
      kind: "info",
      timeout: UNDO_MS,
      action: { label: "Undo", run: () => this.#undo(snap.id) },
    });
    this.#deleting.set(snap.id, { snap, timer, toast });
  }

  #undo(id) {
    const d = this.#deleting.get(id);
    if (!d) return;
    clearTimeout(d.timer);
    this.#deleting.delete(id);
    this.#restore(d.snap);
    notify("Snapshot kept", { kind: "success" });
  }

  /** Puts `snap` back in its place (newest first), if it belongs to the camera shown. */
  #restore(snap) {
    if (snap.camera !== this.#camera || this.#items.some((s) => keyOf(s) === keyOf(snap))) return;
    this.#items.push(snap);
    this.#items.sort(newestFirst);
    this.#render();
  }

  async #commit(id) {
    const d = this.#deleting.get(id);
    if (!d) return;
    try {
      await api.deleteSnapshot(id);
      this.#deleting.delete(id);
    } catch (e) {
      this.#deleting.delete(id);
      if (e.status === 404) return; // deleted elsewhere meanwhile: the outcome wanted
      this.#restore(d.snap);
      notify(`Could not delete snapshot: ${e.message}`, { kind: "error" });
    }
  }

  /** The page is going away: send the deletes still waiting, without waiting for answers. */
  #flush() {
    for (const [id, d] of this.#deleting) {
      clearTimeout(d.timer);
      fetch(`/api/snapshots/${encodeURIComponent(id)}`, { method: "DELETE", keepalive: true }).catch(() => {});
    }
    this.#deleting.clear();
  }
}
