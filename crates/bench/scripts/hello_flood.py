#!/usr/bin/env python3
"""Issue 15 attack "200 hellos of 4 MiB before any token check", against a running hub.

Opens N WebSocket connections to /ws/stream on 127.0.0.1, each sending a text frame whose
header announces 4 MiB - 1 bytes (within the old 2 x max_frame_bytes cap) and then as much of
the payload as the socket takes within the time given; reports the hub's resident memory
(VmRSS of --pid) before, at its peak while the connections are open, and after they close,
and how many connections got a close frame with code 1009.

    python3 crates/bench/scripts/hello_flood.py --pid PID --port 6972 --count 200

Bounded: N <= 1000 connections, at most --seconds of sending, loopback only.
"""
import argparse, os, select, socket, struct, time

def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--port", type=int, default=6972)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10)
    a = ap.parse_args()
    count = min(a.count, 1000)
    size = 4 * 1024 * 1024 - 1
    mask = b"\x37\xfa\x21\x3d"
    header = bytes([0x81, 0x80 | 127]) + struct.pack(">Q", size) + mask
    chunk = bytes(64 * 1024)  # masked zero bytes are the mask itself: any payload will do
    req = (f"GET /ws/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode()
    before = rss_mb(a.pid)
    socks, sent, got = [], {}, {}
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", a.port))
        s.sendall(req)
        s.setblocking(False)
        socks.append(s)
        sent[s] = -len(header)
        got[s] = b""
    for s in socks:
        s.send(header)  # 14 bytes always fit
        sent[s] = 0
    peak = before
    deadline = time.time() + a.seconds
    open_socks = set(socks)
    while open_socks and time.time() < deadline:
        _, w, _ = select.select([], list(open_socks), [], 0.1)
        for s in w:
            try:
                n = s.send(chunk[: max(0, min(len(chunk), size - sent[s]))] or b"")
                sent[s] += n
                if sent[s] >= size:
                    open_socks.discard(s)
            except OSError:
                open_socks.discard(s)
        r, _, _ = select.select(socks, [], [], 0)
        for s in r:
            try:
                got[s] += s.recv(65536)
            except OSError:
                pass
        peak = max(peak, rss_mb(a.pid))
    time.sleep(0.5)
    for s in socks:
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got[s] += d
        except OSError:
            pass
    peak = max(peak, rss_mb(a.pid))
    closed_1009 = sum(1 for s in socks if b"\x88" in got[s] and b"\x03\xf1" in got[s])
    total_sent = sum(max(0, v) for v in sent.values())
    for s in socks:
        s.close()
    time.sleep(1)
    print(f"connections {count}, payload bytes the clients got into the kernel {total_sent / 1e6:.1f} MB")
    print(f"hub RSS before {before:.1f} MB, peak {peak:.1f} MB, after {rss_mb(a.pid):.1f} MB")
    print(f"closed with 1009: {closed_1009}/{count}")

if __name__ == "__main__":
    main()
