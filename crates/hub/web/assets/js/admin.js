// The admin page (`#/admin`, admins only): cameras waiting to be paired (Accept, Refuse), the
// audit log newest first, the users (add, remove, change a role or a password) and the API tokens (add,
// showing the secret once, and revoke). It only shows what the hub's admin routes answer and
// asks them for changes; the hub checks every permission and audits every change itself.
// Every string in here comes from a peer (camera ids, user names, audit details, client
// addresses): it must only ever reach the page as text (textContent), never as markup, and
// the module must never call an admin route for a role that may not use it.

import { adminApi } from "./api.js";
import { may } from "./session.js";

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

/** A hub time (Unix µs) as local date and time; "never" for null. */
function when(us) {
  if (us === null || us === undefined) return "never";
  return new Date(Number(us) / 1000).toLocaleString(undefined, {
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

const list = (v) => (Array.isArray(v) ? v : []);

export class AdminPage {
  #root;
  #confirm;
  #visible = false;
  #auditOldest = null; // id of the oldest audit entry shown, for "Load older"

  constructor(root, { confirm }) {
    this.#root = root;
    this.#confirm = confirm;
    const q = (s) => root.querySelector(`[data-adm=${s}]`);
    q("refresh").addEventListener("click", () => this.#load());
    q("audit-more").addEventListener("click", () => this.#loadAudit(true));
    q("user-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.#addUser();
    });
    q("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.#addToken();
    });
  }

  /** Shows or hides the page; everything is (re)loaded each time it is shown. */
  setVisible(visible) {
    this.#visible = visible;
    this.#root.hidden = !visible;
    if (visible) this.#load();
  }

  /** Reloads what is shown (after the session is known: before, `may` says no to all). */
  refresh() {
    this.#load();
  }

  #q(name) {
    return this.#root.querySelector(`[data-adm=${name}]`);
  }

  #status(name, text, kind = "info") {
    const s = this.#q(name);
    s.textContent = text;
    s.dataset.kind = kind;
  }

  #load() {
    if (!this.#visible) return;
    if (may("camera_accept")) this.#loadPairing();
    if (may("audit")) this.#loadAudit(false);
    if (may("users")) this.#loadUsers();
    if (may("tokens")) this.#loadTokens();
  }

  // ---- Pending cameras ---------------------------------------------------------------------

  async #loadPairing() {
    let rows;
    try {
      rows = list(await adminApi.pairing());
    } catch (e) {
      return this.#status("pairing-status", `Could not list cameras waiting to pair: ${e.message}`, "error");
    }
    const pending = rows.filter((r) => r.state === "pending");
    this.#q("pairing").replaceChildren(...pending.map((r) => this.#pairingRow(r)));
    this.#q("pairing-empty").hidden = pending.length > 0;
    const accepted = rows.filter((r) => r.state === "accepted").map((r) => r.id);
    this.#q("paired").textContent = accepted.length ? `Paired: ${accepted.join(", ")}` : "";
  }

  #pairingRow(r) {
    const accept = el("button", { className: "btn primary", type: "button", textContent: "Accept", dataset: { testid: "adm-accept" } });
    const refuse = el("button", { className: "btn danger", type: "button", textContent: "Refuse", dataset: { testid: "adm-refuse" } });
    accept.addEventListener("click", () =>
      this.#act("pairing-status", () => adminApi.accept(r.id), `Accepted ${r.id}.`, () => this.#loadPairing()),
    );
    refuse.addEventListener("click", async () => {
      const ok = await this.#confirm(`Refuse ${r.id}?`, `Its pairing request is dropped; if it connects again it waits here again.`);
      if (ok) this.#act("pairing-status", () => adminApi.refuse(r.id), `Refused ${r.id}.`, () => this.#loadPairing());
    });
    return el(
      "tr",
      { dataset: { testid: "adm-pending", camera: r.id } },
      el("td", { textContent: r.id }),
      el("td", { textContent: r.addr ?? "–" }),
      el("td", { textContent: when(r.first_seen_us) }),
      el("td", { textContent: when(r.last_seen_us) }),
      el("td", {}, el("div", { className: "ota-row" }, accept, refuse)),
    );
  }

  // ---- Audit log ---------------------------------------------------------------------------

  async #loadAudit(older) {
    const before = older ? this.#auditOldest : undefined;
    let rows;
    try {
      rows = list(await adminApi.audit({ limit: 100, before: before ?? undefined }));
    } catch (e) {
      return this.#status("audit-status", `Could not read the audit log: ${e.message}`, "error");
    }
    this.#status("audit-status", "");
    const tbody = this.#q("audit");
    const made = rows.map((r) => this.#auditRow(r));
    if (older) tbody.append(...made);
    else tbody.replaceChildren(...made);
    if (rows.length) this.#auditOldest = rows[rows.length - 1].id;
    else if (!older) this.#auditOldest = null;
    this.#q("audit-empty").hidden = tbody.children.length > 0;
    this.#q("audit-more").hidden = rows.length < 100;
  }

  #auditRow(r) {
    return el(
      "tr",
      { dataset: { testid: "adm-audit", action: String(r.action ?? ""), id: String(r.id ?? "") } },
      el("td", { textContent: when(r.at_us) }),
      el("td", { textContent: r.actor ?? "" }),
      el("td", { textContent: r.action ?? "" }),
      el("td", { textContent: r.target ?? "" }),
      el("td", { className: "adm-detail", textContent: r.detail ?? "" }),
      el("td", { textContent: r.addr ?? "" }),
    );
  }

  // ---- Users -------------------------------------------------------------------------------

  async #loadUsers() {
    let rows;
    try {
      rows = list(await adminApi.users());
    } catch (e) {
      return this.#status("user-status", `Could not list users: ${e.message}`, "error");
    }
    this.#q("users").replaceChildren(...rows.map((u) => this.#userRow(u)));
  }

  #userRow(u) {
    const pw = el("input", { type: "password", autocomplete: "new-password", placeholder: "new password", "aria-label": `New password for ${u.name}`, dataset: { testid: "adm-user-pw" } });
    const set = el("button", { className: "btn", type: "button", textContent: "Change password", dataset: { testid: "adm-user-passwd" } });
    const remove = el("button", { className: "btn danger", type: "button", textContent: "Remove", dataset: { testid: "adm-user-remove" } });
    const role = el(
      "select",
      { "aria-label": `Role of ${u.name}`, dataset: { testid: "adm-user-role-select" } },
      ...["viewer", "admin"].map((r) => el("option", { value: r, textContent: r, selected: r === u.role })),
    );
    role.addEventListener("change", async () => {
      const value = role.value;
      await this.#act("user-status", () => adminApi.setRole(u.name, value), `${u.name} is now ${value}.`);
      // Reloaded either way: after a refusal (the last admin) the selector shows the role kept.
      await this.#loadUsers();
    });
    set.addEventListener("click", () => {
      if (!pw.value) return this.#status("user-status", `Type the new password for ${u.name} first.`, "error");
      const value = pw.value;
      this.#act("user-status", () => adminApi.setPassword(u.name, value), `Password of ${u.name} changed; their sessions ended.`, () => {
        pw.value = "";
      });
    });
    remove.addEventListener("click", async () => {
      const ok = await this.#confirm(`Remove ${u.name}?`, `${u.name} is logged out everywhere and can no longer log in.`);
      if (ok) this.#act("user-status", () => adminApi.removeUser(u.name), `Removed ${u.name}.`, () => this.#loadUsers());
    });
    return el(
      "tr",
      { dataset: { testid: "adm-user", user: u.name } },
      el("td", { textContent: u.name }),
      el("td", {}, role),
      el("td", { textContent: when(u.created_us) }),
      el("td", { textContent: when(u.last_login_us) }),
      el("td", {}, el("div", { className: "ota-row" }, pw, set, remove)),
    );
  }

  async #addUser() {
    const name = this.#q("user-name").value.trim();
    const role = this.#q("user-role").value;
    const password = this.#q("user-password").value;
    await this.#act("user-status", () => adminApi.addUser(name, role, password), `Added ${name} (${role}).`, () => {
      this.#q("user-form").reset();
      return this.#loadUsers();
    });
  }

  // ---- Tokens ------------------------------------------------------------------------------

  async #loadTokens() {
    let rows;
    try {
      rows = list(await adminApi.tokens());
    } catch (e) {
      return this.#status("token-status", `Could not list tokens: ${e.message}`, "error");
    }
    this.#q("tokens").replaceChildren(...rows.map((t) => this.#tokenRow(t)));
    this.#q("tokens-empty").hidden = rows.length > 0;
  }

  #tokenRow(t) {
    const revoke = el("button", { className: "btn danger", type: "button", textContent: "Revoke", dataset: { testid: "adm-token-revoke" } });
    revoke.addEventListener("click", async () => {
      const ok = await this.#confirm(`Revoke token ${t.name}?`, "Whatever uses it is refused from now on, open streams included.");
      if (ok) this.#act("token-status", () => adminApi.revokeToken(t.name), `Revoked ${t.name}.`, () => this.#loadTokens());
    });
    return el(
      "tr",
      { dataset: { testid: "adm-token", token: t.name } },
      el("td", { textContent: t.name }),
      el("td", { textContent: t.role }),
      el("td", { textContent: when(t.created_us) }),
      el("td", { textContent: when(t.last_used_us) }),
      el("td", {}, revoke),
    );
  }

  async #addToken() {
    const name = this.#q("token-name").value.trim();
    const role = this.#q("token-role").value;
    const secret = this.#q("token-secret");
    secret.hidden = true;
    await this.#act("token-status", () => adminApi.addToken(name, role), "", async (made) => {
      this.#q("token-form").reset();
      // Shown once: the hub keeps only its hash. Gone when the page is left or reloaded.
      secret.querySelector("code").textContent = made?.token ?? "";
      secret.querySelector("b").textContent = made?.name ?? name;
      secret.hidden = false;
      this.#status("token-status", `Added ${made?.name ?? name} (${made?.role ?? role}). Copy the token now: it is not shown again.`, "success");
      await this.#loadTokens();
    });
  }

  // ---- Shared ------------------------------------------------------------------------------

  /** Runs `call`; on success shows `done` in `status` and runs `then(answer)`; on failure
   *  shows the hub's reason. Reloads the audit log either way (the hub audits changes). */
  async #act(status, call, done, then) {
    try {
      const answer = await call();
      if (done) this.#status(status, done, "success");
      await then?.(answer);
    } catch (e) {
      this.#status(status, `Refused: ${e.message}`, "error");
    }
    if (may("audit")) this.#loadAudit(false);
  }
}
