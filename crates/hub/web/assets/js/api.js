// The hub's REST API (docs/API.md) as small async functions. Every failure becomes an Error
// whose message is fit to show a user: the hub's own `{"error": ...}` text when it sent one,
// otherwise what went wrong in plain words. Never touches the DOM.

const TIMEOUT_MS = 15_000;

async function request(path, { method = "GET", body, raw, withDate = false, timeoutMs = TIMEOUT_MS } = {}) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeoutMs);
  let res;
  try {
    res = await fetch(path, {
      method,
      signal: ctrl.signal,
      // Every state change says JSON, body or not: the hub refuses other types from a
      // browser (a form on another site cannot send this one).
      headers: method === "GET" ? {} : { "content-type": "application/json" },
      // `raw`: a Blob sent as it is (a firmware image); the hub does not parse it as JSON.
      body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
    });
  } catch (e) {
    throw new Error(
      e.name === "AbortError"
        ? `the hub did not answer within ${timeoutMs / 1000} s`
        : "cannot reach the hub",
    );
  } finally {
    clearTimeout(timer);
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: fall through with the raw text.
  }
  if (!res.ok) {
    const why = json?.error ?? (text.trim() || res.statusText);
    const err = new Error(why);
    err.status = res.status;
    throw err;
  }
  if (withDate) {
    // The hub's clock (HTTP Date, 1 s resolution), to place its timestamps on this one's.
    const date = Date.parse(res.headers.get("date") ?? "");
    return { body: json, hubNow: Number.isFinite(date) ? date : null };
  }
  return json;
}

const cam = (id) => `/api/cameras/${encodeURIComponent(id)}`;
/** Camera `id` on cluster node `node`: its recordings kept there, through this hub. */
const onNode = (node, id) => `/api/nodes/${encodeURIComponent(node)}/cameras/${encodeURIComponent(id)}`;

export const api = {
  cameras: () => request("/api/cameras"),
  /** Resolves to the settings the camera acknowledged. */
  applySettings: async (id, change) =>
    (await request(`${cam(id)}/settings`, { method: "POST", body: change })).settings,
  /** Resolves to `{body, hubNow}`: the history (docs/API.md) and the hub's clock, ms. */
  telemetry: (id) => request(`${cam(id)}/telemetry`, { withDate: true }),
  reboot: (id) => request(`${cam(id)}/reboot`, { method: "POST" }),
  /** Firmware images in the hub's library (ota.js). */
  firmware: () => request("/api/firmware"),
  /** Starts updating camera `id` to image `firmware`; resolves to `{camera, ota}`. */
  updateFirmware: (id, firmware) =>
    request(`${cam(id)}/update`, { method: "POST", body: { firmware } }),
  /** Adds `file` (a Blob) to the library; empty version/board: what the image says. */
  uploadFirmware: (file, { version, board } = {}) => {
    const q = new URLSearchParams();
    if (version) q.set("version", version);
    if (board) q.set("board", board);
    const query = String(q) ? `?${q}` : "";
    return request(`/api/firmware${query}`, { method: "POST", raw: file, timeoutMs: 300_000 });
  },
  /** Updates every online camera of the image's board; resolves to `{started, skipped}`. */
  rolloutFirmware: (id) => request(`/api/firmware/${encodeURIComponent(id)}/rollout`, { method: "POST" }),
  takeSnapshot: (id) => request(`${cam(id)}/snapshots`, { method: "POST" }),
  snapshots: (id, { limit = 24, before } = {}) => {
    const q = new URLSearchParams({ camera: id, limit: String(limit) });
    if (before !== undefined) q.set("before", String(before));
    return request(`/api/snapshots?${q}`);
  },
  /** Snapshots of camera `id` kept on another node of the cluster, newest first. */
  nodeSnapshots: (node, id, { limit = 24 } = {}) => {
    const q = new URLSearchParams({ camera: id, limit: String(limit) });
    return request(`/api/nodes/${encodeURIComponent(node)}/snapshots?${q}`);
  },
  deleteSnapshot: (snapshotId) =>
    request(`/api/snapshots/${encodeURIComponent(snapshotId)}`, { method: "DELETE" }),
  resolutions: () => request("/assets/resolutions.json"),
  /** Spans, state and storage of `id` between `fromMs` and `toMs` (Unix ms). */
  recordings: (id, fromMs, toMs) =>
    request(`${cam(id)}/recordings?from=${Math.floor(fromMs)}&to=${Math.ceil(toMs)}`),
  /** Cluster mode: `{node, nodes}`, this hub's name and every node seen (404 otherwise). */
  nodes: () => request("/api/nodes"),
  /** Like `recordings`, for the recordings kept on cluster node `node`. */
  nodeRecordings: (node, id, fromMs, toMs) =>
    request(`${onNode(node, id)}/recordings?from=${Math.floor(fromMs)}&to=${Math.ceil(toMs)}`),
  /** Storage of every camera and the disk free. */
  recordingsOverview: () => request("/api/recordings"),
  /** `change`: `{recording: bool}` and/or `{mode}`; resolves to the new state. */
  record: async (id, change) => (await request(`${cam(id)}/record`, { method: "POST", body: change })).state,
  /** Motion events, newest first: `camera` (all when absent), `fromMs`/`toMs` (Unix ms,
   *  events overlapping the range; open ends when absent), `limit` 1..=500. */
  eventList: ({ camera, fromMs, toMs, limit = 50 } = {}) => {
    const q = new URLSearchParams({ limit: String(limit) });
    if (camera) q.set("camera", camera);
    if (fromMs !== undefined && fromMs !== null) q.set("from", String(Math.floor(fromMs)));
    if (toMs !== undefined && toMs !== null) q.set("to", String(Math.ceil(toMs)));
    return request(`/api/events?${q}`);
  },
  deleteEvent: (eventId) => request(`/api/events/${encodeURIComponent(eventId)}`, { method: "DELETE" }),
  /** `{camera, settings: {enabled, fps, detector}, status}` of camera `id`. */
  motion: (id) => request(`${cam(id)}/motion`),
  /** Replaces the motion settings of `id` (a whole `settings` object); resolves as `motion`. */
  setMotion: (id, settings) => request(`${cam(id)}/motion`, { method: "PUT", body: settings }),
  /** The URL of the export of `id` between `fromMs` and `toMs` as `format` (mkv, avi);
   *  with `node`, of the recordings kept on that cluster node (through this hub). */
  exportUrl: (id, fromMs, toMs, format, node = null) =>
    `${node ? onNode(node, id) : cam(id)}/export?from=${Math.floor(fromMs)}&to=${Math.ceil(toMs)}&format=${format}`,
};

// ---- Admin (admin.js; docs/API.md "Admin routes") ------------------------------------------

const enc = encodeURIComponent;
export const adminApi = {
  /** `[{id, state: "pending"|"accepted", first_seen_us, last_seen_us, addr}]`. */
  pairing: () => request("/api/pairing"),
  accept: (camera) => request(`${cam(camera)}/accept`, { method: "POST" }),
  /** Forgets the pairing (refuses a pending camera; its next hello pairs afresh). */
  refuse: (camera) => request(`/api/pairing/${enc(camera)}`, { method: "DELETE" }),
  /** Newest first; `before`: an entry id, for older pages. */
  audit: ({ limit = 100, before } = {}) => {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before !== undefined) q.set("before", String(before));
    return request(`/api/audit?${q}`);
  },
  users: () => request("/api/users"),
  addUser: (name, role, password) => request("/api/users", { method: "POST", body: { name, role, password } }),
  removeUser: (name) => request(`/api/users/${enc(name)}`, { method: "DELETE" }),
  /** Resolves to `{name, role}`; 409 when it would demote the last admin. */
  setRole: (name, role) => request(`/api/users/${enc(name)}`, { method: "PATCH", body: { role } }),
  setPassword: (name, password) =>
    request(`/api/users/${enc(name)}/password`, { method: "POST", body: { password } }),
  tokens: () => request("/api/tokens"),
  /** Resolves to `{name, role, token}`: the only time the secret is shown. */
  addToken: (name, role) => request("/api/tokens", { method: "POST", body: { name, role } }),
  revokeToken: (name) => request(`/api/tokens/${enc(name)}`, { method: "DELETE" }),
};
