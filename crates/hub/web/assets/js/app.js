// The dashboard's glue: keeps the list of cameras from the hub socket, routes between the
// grid (`#/`) and one camera's view (`#/camera/<id>`), and wires the other modules together.
// Behaviour lives in those modules; this file only connects them.

import { api } from "./api.js";
import { HubConnection } from "./connection.js";
import { Controls } from "./controls.js";
import { Grid } from "./grid.js";
import { initNotifications, notify } from "./notifications.js";
import { loadSession, recheckSession } from "./session.js";
import { Snapshots } from "./snapshots.js";
import { Telemetry } from "./telemetry.js";
import { Viewer } from "./viewer.js";

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
const telemetry = new Telemetry($("#telemetry"));
const snapshots = new Snapshots({
  list: $("#gallery"),
  empty: $("#gallery-empty"),
  count: $("#gallery-count"),
  more: $("#gallery-more"),
  dialog: $("#snapshot-dialog"),
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
  $("#camera-count").textContent = all.length
    ? `${all.length} camera${all.length === 1 ? "" : "s"} · ${online} online`
    : "";
}

// ---- Camera view ---------------------------------------------------------------------------

const live = $("#live");
const overlay = $("#feed-overlay");

function renderCameraHead(info) {
  $("#camera-title").textContent = info.id;
  const state = $("#camera-state");
  state.dataset.online = String(Boolean(info.online));
  state.textContent = info.online ? "Online" : "Offline";
  const meta = [info.sensor, info.firmware, info.source && `${info.source} camera`].filter(Boolean);
  if (info.viewers !== undefined) meta.push(`${info.viewers} viewer${info.viewers === 1 ? "" : "s"}`);
  $("#camera-meta").textContent = meta.join(" · ");
  if (!info.online) {
    overlay.textContent = "Camera offline";
    overlay.hidden = false;
  } else if (current && current.viewer.frames === 0) {
    overlay.textContent = "Waiting for frames…";
    overlay.hidden = false;
  }
}

function openCamera(id) {
  if (current?.id === id) return;
  closeCamera();
  const viewer = new Viewer(live, id);
  current = { id, viewer };
  live.dataset.camera = id;
  live.dataset.frameCount = "0";
  delete live.dataset.width;
  delete live.dataset.height;
  delete live.dataset.latencyMs;
  live.setAttribute("aria-label", `Live image from ${id}`);
  live.getContext("2d").clearRect(0, 0, live.width, live.height);
  for (const s of ["res", "fps", "kbps", "latency"]) $(`#stat-${s}`).textContent = "–";
  $("#stat-frames").textContent = "0";
  overlay.textContent = "Waiting for frames…";
  overlay.hidden = false;

  viewer.addEventListener("frame", ({ detail }) => {
    overlay.hidden = true;
    $("#stat-res").textContent = `${detail.width}×${detail.height}`;
    $("#stat-frames").textContent = String(viewer.frames);
  });
  viewer.addEventListener("stats", ({ detail: s }) => {
    $("#stat-res").textContent = s.width ? `${s.width}×${s.height}` : "–";
    $("#stat-fps").textContent = String(s.fps);
    $("#stat-kbps").textContent = s.kbps.toFixed(0);
    const lat = $("#stat-latency");
    lat.textContent = s.latencyMs === null ? "–" : `${Math.round(s.latencyMs)} ms`;
    lat.title = s.latencyFrom === "hub" ? "Hub to display (the camera sends no capture time)" : "Capture to display";
    $("#stat-frames").textContent = String(s.frames);
    if (s.connected) telemetry.recordLatency(id, s.latencyMs);
  });
  if (cameras.has(id)) viewer.start();

  const info = cameras.get(id) ?? { id, online: false };
  document.title = `${id} — espcam`;
  renderCameraHead(info);
  controls.setCamera(info);
  telemetry.show(info);
  snapshots.setCamera(id);
}

function closeCamera() {
  if (!current) return;
  current.viewer.stop();
  current = null;
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
}

function route() {
  const m = location.hash.match(/^#\/camera\/([^/]+)$/);
  const id = m ? decodeURIComponent(m[1]) : null;
  $("#grid-view").hidden = Boolean(id);
  $("#camera-view").hidden = !id;
  if (id) {
    grid.setVisible(false);
    openCamera(id);
  } else {
    closeCamera();
    document.title = "espcam";
    grid.setVisible(true);
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
$("#snapshot-btn").addEventListener("click", () => snapshots.save());

document.addEventListener("keydown", (e) => {
  if (!current || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.target.closest?.("input, select, textarea, dialog")) return;
  const key = e.key.toLowerCase();
  if (key === "s") {
    e.preventDefault();
    snapshots.save();
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
  if (current?.id === info.id) {
    current.viewer.start();
    renderCameraHead(info);
    controls.setCamera(info);
  }
}

const hub = new HubConnection();
let everConnected = false;
hub.addEventListener("state", ({ detail }) => {
  showHubState(detail);
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
  updateCount();
  if (current) {
    const known = cameras.get(current.id);
    const info = known ?? { id: current.id, online: false };
    renderCameraHead(info);
    controls.setCamera(info);
    telemetry.show(info);
    if (known) current.viewer.start();
    else overlay.textContent = `No camera called ${current.id} has connected to this hub yet`;
  }
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
hub.addEventListener("snapshot_deleted", ({ detail }) => snapshots.removed(detail.id));
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
loadSession().catch((e) => notify(`Could not ask the hub who you are: ${e.message}`, { kind: "error" }));
route();
hub.start();
