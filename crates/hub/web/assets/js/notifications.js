// Toasts: short messages in a polite live region, dismissed by themselves or by the user.
// Knows nothing about cameras or the hub; it must never throw, since every other module
// reports its failures through it.

const DEFAULT_TIMEOUT = { info: 4000, success: 3500, warn: 6000, error: 9000 };
const MAX_VISIBLE = 4;
// The same message twice within this window is shown once (e.g. a flapping camera).
const DEDUPE_MS = 1500;

let container = null;
const recent = new Map();

/** Binds the toasts to their container element. */
export function initNotifications(element) {
  container = element;
}

/**
 * Shows `message`. `kind` is info, success, warn or error; `timeout` in ms (0 keeps it until
 * closed); `action` ({label, run}) adds a button that runs `run` and closes the toast.
 * Returns a handle whose `close()` removes the toast (a no-op once it is gone).
 */
export function notify(message, { kind = "info", timeout, action } = {}) {
  const handle = { close() {} };
  if (!container) return handle;
  const now = Date.now();
  const key = `${kind}:${message}`;
  // A toast with an action is never swallowed: each one stands for its own undoable change.
  if (!action && now - (recent.get(key) ?? 0) < DEDUPE_MS) return handle;
  recent.set(key, now);
  for (const [k, t] of recent) if (now - t > DEDUPE_MS) recent.delete(k);

  const toast = document.createElement("div");
  toast.className = "toast";
  toast.dataset.kind = kind;
  toast.dataset.testid = "toast";
  // Errors interrupt screen readers; the rest wait their turn in the polite region.
  if (kind === "error") toast.setAttribute("role", "alert");
  const text = document.createElement("p");
  text.textContent = message;
  toast.append(text);
  handle.close = () => toast.remove();
  if (action) {
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "toast-action";
    btn.dataset.testid = "undo";
    btn.textContent = action.label;
    btn.addEventListener("click", () => {
      toast.remove();
      try {
        action.run();
      } catch (e) {
        notify(`Dashboard error: ${e.message}`, { kind: "error" });
      }
    });
    toast.append(btn);
  }
  const close = document.createElement("button");
  close.type = "button";
  close.textContent = "×";
  close.setAttribute("aria-label", "Dismiss notification");
  close.addEventListener("click", () => toast.remove());
  toast.append(close);
  container.append(toast);
  while (container.children.length > MAX_VISIBLE) container.firstElementChild.remove();

  const ms = timeout ?? DEFAULT_TIMEOUT[kind] ?? 5000;
  if (ms > 0) setTimeout(() => toast.remove(), ms);
  return handle;
}
