// The dashboard's glue: keeps the list of cameras from the hub socket, routes between the
// grid (`#/`) and one camera's view (`#/camera/<id>`), and wires the other modules together.
// Behaviour lives in those modules; this file only connects them.

import { AdminPage } from "./admin.js";
import { api } from "./api.js";
import { HubConnection } from "./connection.js";
import { Controls } from "./controls.js";
import { EventList, MotionState } from "./events.js";
import { FirmwarePage } from "./firmware.js";
import { Grid } from "./grid.js";
import { Ota } from "./ota.js";
import { initNotifications, notify } from "./notifications.js";
import { loadSession, recheckSession } from "./session.js";
import { Recordings } from "./recordings.js";
import { Snapshots } from "./snapshots.js";
import { Telemetry } from "./telemetry.js";
import { Viewer } from "./viewer.js";
import { ZoneEditor } from "./zones.js";

const $ = (sel) => document.querySelector(sel);

initNotifications($("#toasts"));
// A bug in the page should be visible, not silently freeze the view.
window.addEventListener("error", (e) => notify(`Dashboard error: ${e.message}`, { kind: "error" }));
window.addEventListener("unhandledrejection", (e) =>
  notify(`Dashboard error: ${e.reason?.message ?? e.reason}`, { kind: "error" }),
);

const cameras = new Map(); // camera id -> latest CameraInfo
let resolutions = [];
let current = null; // { id, viewer } of the open camera view

function describeResolution(index) {
  const r = resolutions.find((x) => x.index === index);
  return r ? `${r.name} ${r.width}×${r.height}` : `resolution ${index}`;
}

// ---- Dialogs -------------------------------------------------------------------------------

const confirmDialog = $("#confirm-dialog");
function confirmAction(title, text) {
  confirmDialog.querySelector("#confirm-title").textContent = title;
  confirmDialog.querySelector("#confirm-text").textContent = text;
  confirmDialog.returnValue = "";
  confirmDialog.showModal();
  return new Promise((resolve) =>
    confirmDialog.addEventListener("close", () => resolve(confirmDialog.returnValue === "ok"), {
      once: true,
    }),
  );
}

// ---- Modules -------------------------------------------------------------------------------

const grid = new Grid($("#camera-grid"), $("#grid-empty"), describeResolution);
const controls = new Controls($("#controls"), { confirm: confirmAction });
const ota = new Ota($("#ota"), { notify });
const telemetry = new Telemetry($("#telemetry"), {
  rangeLabel: $("#telemetry-range"),
  rangeButtons: $("#telemetry-ranges"),
});
const snapshots = new Snapshots({
  list: $("#gallery"),
  empty: $("#gallery-empty"),
  count: $("#gallery-count"),
  more: $("#gallery-more"),
  dialog: $("#snapshot-dialog"),
});

const recordings = new Recordings({
  panel: $("#recordings"),
  windows: $("#rec-windows"),
  state: $("#rec-state"),
  error: $("#rec-error"),
  timeline: $("#timeline"),
  start: $("#tl-start"),
  status: $("#playback-status"),
  speeds: $("#speeds"),
  backLive: $("#back-live"),
  selection: $("#selection"),
  exportMkv: $("#export-mkv"),
  exportAvi: $("#export-avi"),
  mode: $("#rec-mode"),
  manual: $("#rec-manual"),
  usage: $("#rec-usage"),
  node: $("#rec-node"),
  nodeBar: $("#rec-node-bar"),
});

// Motion: the events lists (all cameras on the grid page, one camera on its page) and the
// "Motion" badges, kept current by the hub socket's motion_start/motion_end.
let pendingPlay = null; // {camera, fromMs}: an event clicked on the grid page, played once its camera opens
function playEvent(ev, fromMs) {
  if (current?.id === ev.camera) {
    recordings.play(fromMs);
    $("#feed").scrollIntoView({ block: "nearest", behavior: "smooth" });
    return;
  }
  pendingPlay = { camera: ev.camera, fromMs };
  location.hash = `#/camera/${encodeURIComponent(ev.camera)}`;
}
const allEvents = new EventList($("#grid-events"), { title: "Motion events", onPlay: playEvent, confirm: confirmAction });
const cameraEvents = new EventList($("#camera-events"), { title: "Motion events", onPlay: playEvent, confirm: confirmAction });
const motion = new MotionState((camera, active) => {
  grid.setMotion(camera, active);
  if (current?.id === camera) showMotionBadge();
});
function showMotionBadge() {
  $("#camera-motion").hidden = !(current && motion.active(current.id));
}

const zones = new ZoneEditor({
  live: $("#live"),
  overlay: $("#zone-overlay"),
  toggle: $("#zones-btn"),
  panel: $("#zones"),
});

// ---- Header --------------------------------------------------------------------------------

const hubStatus = $("#hub-status");
function showHubState({ state, retryInMs, attempt }) {
  hubStatus.dataset.state = state;
  const label = hubStatus.querySelector(".label");
  if (state === "connected") label.textContent = "Hub connected";
  else if (state === "connecting") label.textContent = attempt ? "Reconnecting…" : "Connecting to hub…";
  else label.textContent = `Hub unreachable, retrying in ${Math.ceil(retryInMs / 1000)} s`;
}

function updateCount() {
  const all = [...cameras.values()];
  const online = all.filter((c) => c.online).length;
  const state = hubListed ? `${online} online` : "state unknown";
  $("#camera-count").textContent = all.length
    ? `${all.length} camera${all.length === 1 ? "" : "s"} · ${state}`
    : "";
}

// ---- Camera view ---------------------------------------------------------------------------
//
// Everything the view shows follows from one status, so no part of it can contradict another:
//   connecting  the page has not had the hub's camera list yet
//   missing     the hub answered and does not know this id (it may still connect later)
//   online, offline   what the hub says
//   unknown     the hub was reachable and is not now: what it said last may no longer be true

const live = $("#live");
const overlay = $("#feed-overlay");
const cameraView = $("#camera-view");

let hubListed = false; // the socket is up and has delivered the camera list since it came up
let everListed = false;

function cameraStatus(id) {
  if (!hubListed) return everListed ? "unknown" : "connecting";
  const info = cameras.get(id);
  if (!info) return "missing";
  return info.online ? "online" : "offline";
}

const BADGE = {
  connecting: "Connecting…",
  missing: "Not found",
  online: "Online",
  offline: "Offline",
  unknown: "Unknown",
};

function renderCameraView() {
  if (!current) return;
  const { id, viewer } = current;
  const status = cameraStatus(id);
  const info = cameras.get(id) ?? { id, online: false };
  cameraView.dataset.state = status;
  $("#camera-title").textContent = id;
  const badge = $("#camera-state");
  badge.dataset.state = status;
  badge.dataset.online = { online: "true", offline: "false", missing: "false" }[status] ?? "unknown";
  badge.textContent = BADGE[status];
  badge.title = status === "unknown" ? "The hub is unreachable, so this camera's state is unknown" : "";

  $("#camera-missing").hidden = status !== "missing";
  $("#missing-id").textContent = id;
  $("#camera-layout").hidden = status === "missing";

  const meta = [info.sensor, info.firmware, info.source && `${info.source} camera`].filter(Boolean);
  if (info.viewers !== undefined && status === "online") {
    meta.push(`${info.viewers} viewer${info.viewers === 1 ? "" : "s"}`);
  }
  $("#camera-meta").textContent = status === "missing" ? "" : meta.join(" · ");

  // The viewer runs once the hub knows the camera; it reconnects by itself after that.
  if (cameras.has(id)) viewer.start();
  controls.setCamera(info, status === "online" ? null : CONTROLS_OFF[status]);
  if (status !== "missing" && status !== "connecting") ota.setCamera(info, status === "online");
  // The hub saves the frame it has; with no live camera (or no hub) there is none to save.
  snapshotBtn.disabled = status !== "online";
  snapshotBtn.title = status === "online" ? "" : SNAPSHOT_OFF[status];
  if (status !== "missing" && status !== "connecting") telemetry.show(info);
  // A camera held by another hub: its older snapshots are kept there.
  if (info.source === "remote" && info.node) snapshots.setNode(id, info.node);

  // The picture: live, or marked as old with the time it is from.
  const last = viewer.lastFrameAt;
  const frozen = last !== null && Date.now() - last > STALE_MS;
  let text = null;
  if (status === "connecting") text = "Connecting to the hub…";
  else if (status === "unknown") text = last === null ? "Hub unreachable" : `Hub unreachable — picture frozen since ${clock(last)}`;
  else if (status === "offline") text = last === null ? "Camera offline" : `Camera offline — last picture at ${clock(last)}`;
  else if (status === "online" && last === null) text = "Waiting for frames…";
  else if (status === "online" && frozen) text = `No new picture since ${clock(last)}`;
  // A recording plays whatever the camera does now; pauses in it are not a frozen stream.
  if (viewer.mode === "playback" && status !== "connecting") text = null;
  overlay.hidden = text === null;
  if (text !== null) overlay.textContent = text;
  if (last !== null && text !== null) $("#feed").dataset.stale = "true";
  else delete $("#feed").dataset.stale;
}

/** A picture older than this is marked as frozen even while the camera is online. */
const STALE_MS = 3000;

function clock(ms) {
  return new Date(ms).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** Why the controls are disabled, per status. */
const CONTROLS_OFF = {
  connecting: "Connecting to the hub…",
  missing: "No such camera.",
  offline: "Camera offline: controls are disabled until it is back.",
  unknown: "Hub unreachable: controls are disabled until it is back.",
};

/** Why "Save snapshot" is disabled, per status. */
const SNAPSHOT_OFF = {
  connecting: "Connecting to the hub…",
  missing: "No such camera",
  offline: "The camera is offline: there is no current frame to save",
  unknown: "The hub is unreachable: it is the hub that saves snapshots",
};

const snapshotBtn = $("#snapshot-btn");
function saveSnapshot() {
  if (!snapshotBtn.disabled) snapshots.save();
}

function openCamera(id) {
  if (current?.id === id) return;
  closeCamera();
  const viewer = new Viewer(live, id);
  current = { id, viewer };
  live.dataset.camera = id;
  live.dataset.frameCount = "0";
  live.dataset.mode = "live";
  delete live.dataset.capturedUs;
  delete live.dataset.width;
  delete live.dataset.height;
  delete live.dataset.latencyMs;
  live.setAttribute("aria-label", `Live image from ${id}`);
  live.getContext("2d").clearRect(0, 0, live.width, live.height);
  for (const s of ["res", "fps", "kbps", "latency"]) $(`#stat-${s}`).textContent = "–";
  $("#stat-frames").textContent = "0";

  viewer.addEventListener("frame", ({ detail }) => {
    if (!overlay.hidden) renderCameraView(); // a first frame, or frames again after a pause
    $("#stat-res").textContent = `${detail.width}×${detail.height}`;
    $("#stat-frames").textContent = String(viewer.frames);
  });
  viewer.addEventListener("stats", ({ detail: s }) => {
    $("#stat-res").textContent = s.width ? `${s.width}×${s.height}` : "–";
    $("#stat-fps").textContent = String(s.fps);
    $("#stat-kbps").textContent = s.kbps.toFixed(0);
    const lat = $("#stat-latency");
    lat.textContent = s.latencyMs === null ? "–" : `${Math.round(s.latencyMs)} ms`;
    if (s.mode === "playback") lat.textContent = "playback";
    lat.title = s.latencyFrom === "hub" ? "Hub to display (the camera sends no capture time)" : "Capture to display";
    $("#stat-frames").textContent = String(s.frames);
    if (s.connected && s.mode === "live") telemetry.recordLatency(id, s.latencyMs);
  });

  document.title = `${id} — espcam`;
  // A stream that stops without the hub saying anything must still show as stale.
  current.tick = setInterval(renderCameraView, 1000);
  renderCameraView();
  snapshots.setCamera(id);
  const info = cameras.get(id);
  if (info?.source === "remote" && info.node) snapshots.setNode(id, info.node);
  recordings.setCamera(id, viewer);
  cameraEvents.setCamera(id);
  zones.setCamera(id);
  showMotionBadge();
  if (pendingPlay?.camera === id) recordings.play(pendingPlay.fromMs);
  pendingPlay = null;
}

function closeCamera() {
  if (!current) return;
  current.viewer.stop();
  recordings.close();
  zones.close();
  clearInterval(current.tick);
  delete $("#feed").dataset.stale;
  current = null;
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
}

function route() {
  const m = location.hash.match(/^#\/camera\/([^/]+)$/);
  const id = m ? decodeURIComponent(m[1]) : null;
  const firmware = location.hash === "#/firmware";
  const admin = location.hash === "#/admin";
  firmwarePage.setVisible(firmware);
  adminPage.setVisible(admin);
  $("#grid-view").hidden = Boolean(id) || firmware || admin;
  $("#camera-view").hidden = !id;
  if (id) {
    grid.setVisible(false);
    openCamera(id);
  } else {
    closeCamera();
    document.title = firmware ? "Firmware — espcam" : admin ? "Admin — espcam" : "espcam";
    grid.setVisible(!firmware && !admin);
  }
  $("#main").focus({ preventScroll: true });
}

// ---- Fullscreen and keyboard ---------------------------------------------------------------

const feed = $("#feed");
const fullscreenBtn = $("#fullscreen-btn");
function toggleFullscreen() {
  if (document.fullscreenElement) return document.exitFullscreen().catch(() => {});
  const req = feed.requestFullscreen ?? feed.webkitRequestFullscreen;
  if (!req) return notify("Fullscreen is not available in this browser", { kind: "warn" });
  Promise.resolve(req.call(feed)).catch((e) => notify(`Fullscreen refused: ${e.message}`, { kind: "warn" }));
}
fullscreenBtn.addEventListener("click", toggleFullscreen);
document.addEventListener("fullscreenchange", () => {
  fullscreenBtn.firstChild.textContent = document.fullscreenElement ? "Exit fullscreen " : "Fullscreen ";
});
snapshotBtn.addEventListener("click", saveSnapshot);

document.addEventListener("keydown", (e) => {
  if (!current || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.target.closest?.("input, select, textarea, dialog")) return;
  const key = e.key.toLowerCase();
  if (key === "s") {
    e.preventDefault();
    saveSnapshot();
  } else if (key === "f") {
    e.preventDefault();
    toggleFullscreen();
  } else if (key === "escape" && !document.fullscreenElement) {
    location.hash = "#/";
  }
});

// ---- Hub events ----------------------------------------------------------------------------

function updateCamera(info) {
  cameras.set(info.id, info);
  grid.upsert(info);
  updateCount();
  if (current?.id === info.id) renderCameraView();
}

const hub = new HubConnection();
const firmwarePage = new FirmwarePage($("#firmware-view"), { hub, notify });
const adminPage = new AdminPage($("#admin-view"), { confirm: confirmAction });
let everConnected = false;
hub.addEventListener("state", ({ detail }) => {
  showHubState(detail);
  // Until the hub sends its list again, nothing it said before can be trusted.
  if (hubListed) {
    hubListed = false;
    grid.setUnknown();
    motion.forget();
    updateCount();
    renderCameraView();
  }
  if (detail.state === "connected") {
    if (detail.reconnected) notify("Reconnected to the hub", { kind: "success" });
    everConnected = true;
  } else if (detail.state === "disconnected" && detail.attempt === 1 && everConnected) {
    notify("Lost the connection to the hub; reconnecting…", { kind: "warn" });
  }
  if (detail.state === "disconnected") recheckSession();
});
hub.addEventListener("cameras", ({ detail }) => {
  const list = Array.isArray(detail.cameras) ? detail.cameras : [];
  cameras.clear();
  list.forEach((c) => cameras.set(c.id, c));
  grid.reset(list);
  hubListed = true;
  // Back after an outage: the hub's history covers the gap (or restarted empty; the page keeps
  // what it saw).
  const again = everListed;
  if (again) telemetry.refresh();
  everListed = true;
  updateCount();
  renderCameraView();
  // Motion that started or ended while the socket was down (or while this browser fell
  // behind) is asked for, then followed live.
  motion.sync();
  if (again) {
    allEvents.refresh();
    if (current) cameraEvents.refresh();
  }
  // Streams that were retrying while the hub was away reconnect now, not after their backoff.
  grid.reconnectNow();
  current?.viewer.reconnectNow();
});
hub.addEventListener("online", ({ detail }) => {
  updateCamera(detail.camera);
  notify(`${detail.camera.id} is online`, { kind: "success" });
});
hub.addEventListener("offline", ({ detail }) => {
  const info = { ...(cameras.get(detail.camera) ?? { id: detail.camera }), online: false };
  updateCamera(info);
  grid.setOffline(detail.camera);
  notify(`${detail.camera} went offline${detail.reason ? `: ${detail.reason}` : ""}`, { kind: "warn" });
});
hub.addEventListener("telemetry", ({ detail }) => {
  telemetry.record(detail.camera);
  updateCamera(detail.camera);
});
function onSettings({ detail }) {
  if (!detail.settings) return;
  const prev = cameras.get(detail.camera);
  if (prev) cameras.set(detail.camera, { ...prev, settings: detail.settings });
  if (current?.id === detail.camera) controls.showSettings(detail.settings);
}
hub.addEventListener("settings", onSettings);
hub.addEventListener("ack", (e) => e.detail.ok && onSettings(e));
hub.addEventListener("snapshot", ({ detail }) => snapshots.added(detail.snapshot));
hub.addEventListener("ota", ({ detail }) => {
  const prev = cameras.get(detail.camera);
  if (prev) cameras.set(detail.camera, { ...prev, ota: detail.ota });
  ota.event(detail.camera, detail.ota);
});
for (const type of ["motion_start", "motion_end"]) {
  hub.addEventListener(type, ({ detail }) => {
    motion.message(type, detail.camera, detail.event);
    allEvents.event(detail.event);
    if (current) cameraEvents.event(detail.event);
  });
}
hub.addEventListener("snapshot_deleted", ({ detail }) => snapshots.removed(detail.id));
hub.addEventListener("remote_snapshot", ({ detail }) => snapshots.remoteAdded(detail.node, detail.snapshot));
hub.addEventListener("remote_snapshot_deleted", ({ detail }) => snapshots.remoteRemoved(detail.node, detail.id));
hub.addEventListener("error", ({ detail }) => {
  notify(detail.camera ? `${detail.camera}: ${detail.message}` : detail.message, { kind: "error" });
});

// ---- Start ---------------------------------------------------------------------------------

window.addEventListener("hashchange", route);
api
  .resolutions()
  .then((list) => {
    resolutions = list;
    controls.setResolutions(list);
  })
  .catch((e) => notify(`Could not load the resolution table: ${e.message}`, { kind: "error" }));
loadSession().then(() => adminPage.refresh()).catch((e) => notify(`Could not ask the hub who you are: ${e.message}`, { kind: "error" }));
route();
allEvents.setCamera(null);
hub.start();
