// The hub's REST API (docs/API.md) as small async functions. Every failure becomes an Error
// whose message is fit to show a user: the hub's own `{"error": ...}` text when it sent one,
// otherwise what went wrong in plain words. Never touches the DOM.

const TIMEOUT_MS = 15_000;

async function request(path, { method = "GET", body, withDate = false } = {}) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), TIMEOUT_MS);
  let res;
  try {
    res = await fetch(path, {
      method,
      signal: ctrl.signal,
      // Every state change says JSON, body or not: the hub refuses other types from a
      // browser (a form on another site cannot send this one).
      headers: method === "GET" ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new Error(
      e.name === "AbortError"
        ? `the hub did not answer within ${TIMEOUT_MS / 1000} s`
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
  takeSnapshot: (id) => request(`${cam(id)}/snapshots`, { method: "POST" }),
  snapshots: (id, { limit = 24, before } = {}) => {
    const q = new URLSearchParams({ camera: id, limit: String(limit) });
    if (before !== undefined) q.set("before", String(before));
    return request(`/api/snapshots?${q}`);
  },
  deleteSnapshot: (snapshotId) =>
    request(`/api/snapshots/${encodeURIComponent(snapshotId)}`, { method: "DELETE" }),
  resolutions: () => request("/assets/resolutions.json"),
  /** Spans, state and storage of `id` between `fromMs` and `toMs` (Unix ms). */
  recordings: (id, fromMs, toMs) =>
    request(`${cam(id)}/recordings?from=${Math.floor(fromMs)}&to=${Math.ceil(toMs)}`),
  /** Storage of every camera and the disk free. */
  recordingsOverview: () => request("/api/recordings"),
  /** `change`: `{recording: bool}` and/or `{mode}`; resolves to the new state. */
  record: async (id, change) => (await request(`${cam(id)}/record`, { method: "POST", body: change })).state,
  /** Events of `id` (the events API may be absent: the caller handles a 404). */
  events: (id) => request(`/api/events?camera=${encodeURIComponent(id)}`),
  /** The URL of the export of `id` between `fromMs` and `toMs` as `format` (mkv, avi). */
  exportUrl: (id, fromMs, toMs, format) =>
    `${cam(id)}/export?from=${Math.floor(fromMs)}&to=${Math.ceil(toMs)}&format=${format}`,
};
