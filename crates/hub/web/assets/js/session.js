// Who is using the dashboard, from GET /api/whoami. Marks every element that has
// `data-requires="<permission>"` (settings, reboot, snapshot_delete, users, …, the keys of
// whoami's `may`) with `data-denied` when the role may not do that, and CSS hides those; so
// other modules only have to tag their admin-only controls. Shows the banner when the hub
// runs with `auth = "off"`, the user's name, and the logout button. Never touches camera
// data; the hub enforces every permission itself, this only keeps the page honest.

let me = null;

/** What whoami said last (null before the first answer). */
export function currentSession() {
  return me;
}

/** Whether the current user may do `permission` (a key of whoami's `may`). */
export function may(permission) {
  return Boolean(me?.may?.[permission]);
}

/** Marks `[data-requires]` elements under `root` for the current role. */
export function applyPermissions(root = document) {
  for (const el of root.querySelectorAll("[data-requires]")) {
    el.toggleAttribute("data-denied", !may(el.dataset.requires));
  }
}

async function fetchWhoami() {
  const res = await fetch("/api/whoami", { credentials: "same-origin", cache: "no-store" });
  if (!res.ok) throw new Error(`whoami answered ${res.status}`);
  return res.json();
}

function render() {
  const root = document.documentElement;
  root.dataset.auth = me.auth;
  root.dataset.role = me.role ?? "none";
  applyPermissions();
  const banner = document.querySelector("#auth-banner");
  if (banner) banner.hidden = me.auth !== "off";
  const who = document.querySelector("#whoami");
  if (who) who.textContent = me.user ? `${me.user} (${me.role})` : "";
  const logout = document.querySelector("#logout-btn");
  if (logout) logout.hidden = !me.user;
}

/** Loads the session and wires the logout button. Resolves when the page is marked. */
export async function loadSession() {
  me = await fetchWhoami();
  render();
  // Controls added later (a camera view opening) are marked as they appear.
  new MutationObserver(() => applyPermissions()).observe(document.body, { childList: true, subtree: true });
  document.querySelector("#logout-btn")?.addEventListener("click", async () => {
    await fetch("/api/logout", {
      method: "POST",
      headers: { "content-type": "application/json" },
      credentials: "same-origin",
    }).catch(() => {});
    location.reload();
  });
  return me;
}

/** After the hub connection dropped: if the session ended (expired, logged out elsewhere,
 *  user removed), reload, and the hub shows the login page. */
export async function recheckSession() {
  try {
    const now = await fetchWhoami();
    if (now.login_required && !now.role) location.reload();
  } catch {
    // The hub is unreachable; the connection's own retry handles that.
  }
}
