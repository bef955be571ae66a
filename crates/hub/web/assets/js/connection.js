// The browser's control socket to the hub (`/ws/ui`). Connects, reconnects by itself with
// exponential backoff and jitter, and re-emits every hub message as an event named after its
// `type` ("cameras", "online", "offline", "settings", "ack", "error", "telemetry").
// It never touches the DOM and never interprets camera data.

const MIN_DELAY_MS = 500;
const MAX_DELAY_MS = 10_000;

/** Delay before reconnect attempt `attempt` (0-based): doubling, capped, with jitter so many
 *  tabs do not hammer a restarting hub in lockstep. */
export function backoffDelay(attempt) {
  const base = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** attempt);
  return Math.round(base / 2 + (Math.random() * base) / 2);
}

/** The ws:// or wss:// URL of `path` on the hub that served this page. */
export function wsUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

export class HubConnection extends EventTarget {
  #ws = null;
  #attempt = 0;
  #timer = null;

  constructor(path = "/ws/ui") {
    super();
    this.path = path;
    /** connecting | connected | disconnected */
    this.state = "connecting";
    // A laptop waking up or a phone regaining signal: try now instead of waiting the backoff.
    window.addEventListener("online", () => this.reconnectNow());
  }

  start() {
    this.#open();
  }

  /** Skips the remaining backoff delay, if any. */
  reconnectNow() {
    if (this.#ws || this.#timer === null) return;
    clearTimeout(this.#timer);
    this.#timer = null;
    this.#open();
  }

  /** Sends a JSON message; false when the socket is not open. */
  send(message) {
    if (!this.#ws || this.#ws.readyState !== WebSocket.OPEN) return false;
    this.#ws.send(JSON.stringify(message));
    return true;
  }

  #setState(state, detail = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, attempt: this.#attempt, ...detail } }));
  }

  #open() {
    this.#setState("connecting");
    const ws = new WebSocket(wsUrl(this.path));
    this.#ws = ws;
    ws.addEventListener("open", () => {
      const wasRetry = this.#attempt > 0;
      this.#attempt = 0;
      this.#setState("connected", { reconnected: wasRetry });
    });
    ws.addEventListener("message", (ev) => {
      if (typeof ev.data !== "string") return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return; // A hub bug must not break the page; ignore what we cannot read.
      }
      if (msg && typeof msg.type === "string") {
        this.dispatchEvent(new CustomEvent(msg.type, { detail: msg }));
      }
    });
    ws.addEventListener("close", () => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      const delay = backoffDelay(this.#attempt);
      this.#attempt += 1;
      this.#setState("disconnected", { retryInMs: delay });
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#open();
      }, delay);
    });
  }
}
