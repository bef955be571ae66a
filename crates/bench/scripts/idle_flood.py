#!/usr/bin/env python3
"""Issue 15 attacks "1,000 idle connections" and "500 slow-header connections", against a
running hub on 127.0.0.1, while one healthy viewer reads snapshots.

Opens --idle TCP connections that send nothing and --slow connections that send an
unfinished request head (a few KB of headers, one more line every second), keeps them open
for --seconds, and meanwhile fetches /api/cameras/CAMERA/snapshot.jpg in a loop on its own
connection; reports the hub's VmRSS (before, peak, after), how many of the attack
connections the hub had closed by the end, and the viewer's snapshots per second.

    python3 crates/bench/scripts/idle_flood.py --pid PID --port 6971 --camera demo-1

Bounded: at most 1,000 + 500 connections, --seconds (default 15), loopback only.
"""
import argparse, socket, time, threading

def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0

def viewer(port, camera, stop, counts):
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(f"GET /api/cameras/{camera}/snapshot.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
            s.close()
            if data.startswith(b"HTTP/1.1 200"):
                counts["ok"] += 1
            else:
                counts["bad"] += 1
        except OSError:
            counts["bad"] += 1

def closed(s):
    try:
        s.setblocking(False)
        d = s.recv(1)
        return d == b""
    except BlockingIOError:
        return False
    except OSError:
        return True

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--port", type=int, default=6971)
    ap.add_argument("--camera", default="demo-1")
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--slow", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=15)
    a = ap.parse_args()
    idle_n, slow_n = min(a.idle, 1000), min(a.slow, 500)
    stop = threading.Event()
    base = {"ok": 0, "bad": 0}
    t = threading.Thread(target=viewer, args=(a.port, a.camera, stop, base))
    t.start(); time.sleep(3); stop.set(); t.join()
    before = rss_mb(a.pid)
    idle, slow = [], []
    for _ in range(idle_n):
        try:
            idle.append(socket.create_connection(("127.0.0.1", a.port)))
        except OSError:
            break
    head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 700) for i in range(8))
    for _ in range(slow_n):
        try:
            s = socket.create_connection(("127.0.0.1", a.port))
            s.sendall(head)
            slow.append(s)
        except OSError:
            break
    counts = {"ok": 0, "bad": 0}
    stop = threading.Event()
    t = threading.Thread(target=viewer, args=(a.port, a.camera, stop, counts))
    t.start()
    peak = before
    end = time.time() + a.seconds
    while time.time() < end:
        for s in slow:
            try:
                s.send(b"X-More: b\r\n")
            except OSError:
                pass
        peak = max(peak, rss_mb(a.pid))
        time.sleep(1)
    stop.set(); t.join()
    closed_idle = sum(closed(s) for s in idle)
    closed_slow = sum(closed(s) for s in slow)
    for s in idle + slow:
        s.close()
    time.sleep(1)
    print(f"viewer alone: {base['ok'] / 3:.0f} snapshots/s")
    print(f"opened {len(idle)} idle and {len(slow)} slow-header connections for {a.seconds:.0f} s")
    print(f"hub RSS before {before:.1f} MB, peak {peak:.1f} MB, after {rss_mb(a.pid):.1f} MB")
    print(f"closed by the hub by the end: idle {closed_idle}/{len(idle)}, slow {closed_slow}/{len(slow)}")
    print(f"viewer meanwhile: {counts['ok'] / a.seconds:.0f} snapshots/s ({counts['bad']} failed)")

if __name__ == "__main__":
    main()
