#!/usr/bin/env python3
"""The seed-002 Python client, without numpy or OpenCV.

Connects to a standalone espcam camera (a real ESP32 or `espcam sim --mode ap`) at
ws://HOST/ws and, like the seed's example, treats every binary message as one JPEG image.
Instead of cv2.imdecode it checks each image in pure Python: start marker FF D8, end marker
FF D9, and the width and height from the frame header (SOF) segment. Text messages are the
camera's JSON (welcome, heartbeat, stats, ack) or "pong".

Needs only the standard library and `pip install websocket-client`.

    python3 ap_client.py ws://127.0.0.1:8080/ws --frames 60
    python3 ap_client.py ws://127.0.0.1:8080/ws --frames 60 --command '{"cmd":"quality","value":30}'

Prints one line per second, then a JSON summary on the last line. Exit status 0 when the
requested number of frames arrived and every one was a valid JPEG; 1 otherwise.
"""

import argparse
import json
import sys
import threading
import time

import websocket

# SOF markers that carry the image size (baseline, progressive, lossless, arithmetic).
SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data):
    """(width, height) of a complete JPEG, or raise ValueError saying what is wrong."""
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise ValueError("not a JPEG: no start marker FF D8")
    if data[-2] != 0xFF or data[-1] != 0xD9:
        raise ValueError("JPEG truncated: no end marker FF D9")
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError("JPEG corrupt: expected a marker at offset %d" % i)
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = (data[i + 2] << 8) | data[i + 3]
        if marker in SOF_MARKERS:
            if i + 9 > len(data):
                break
            height = (data[i + 5] << 8) | data[i + 6]
            width = (data[i + 7] << 8) | data[i + 8]
            if width == 0 or height == 0:
                raise ValueError("JPEG has a zero size")
            return width, height
        if marker == 0xDA:
            break
        i += 2 + length
    raise ValueError("JPEG has no frame header (SOF)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", nargs="?", default="ws://192.168.4.1/ws")
    ap.add_argument("--frames", type=int, default=100, help="stop after this many frames")
    ap.add_argument("--timeout", type=float, default=30.0, help="give up after this many seconds")
    ap.add_argument("--command", help="JSON command to send after 10 frames")
    args = ap.parse_args()

    summary = {"frames": 0, "invalid": [], "sizes": {}, "texts": {}, "acks": [], "pong": False}
    done = threading.Event()
    started = time.time()
    state = {"last_report": started, "command_sent": False}

    def on_open(ws):
        ws.send("ping")
        ws.send("get_stats")

    def on_message(ws, message):
        if isinstance(message, bytes):
            try:
                w, h = jpeg_size(message)
                key = "%dx%d" % (w, h)
                summary["sizes"][key] = summary["sizes"].get(key, 0) + 1
            except ValueError as e:
                summary["invalid"].append(str(e))
            summary["frames"] += 1
            if args.command and summary["frames"] >= 10 and not state["command_sent"]:
                state["command_sent"] = True
                ws.send(args.command)
            now = time.time()
            if now - state["last_report"] >= 1.0:
                state["last_report"] = now
                print("frames=%d sizes=%s" % (summary["frames"], summary["sizes"]), flush=True)
            if summary["frames"] >= args.frames:
                done.set()
                ws.close()
            return
        if message == "pong":
            summary["pong"] = True
            return
        try:
            msg = json.loads(message)
        except ValueError:
            summary["invalid"].append("text is not JSON: %r" % message[:80])
            return
        kind = msg.get("type", "?")
        summary["texts"][kind] = summary["texts"].get(kind, 0) + 1
        if kind == "ack":
            summary["acks"].append(msg)

    def on_error(ws, error):
        summary.setdefault("errors", []).append(str(error))

    ws = websocket.WebSocketApp(args.url, on_open=on_open, on_message=on_message, on_error=on_error)
    runner = threading.Thread(target=ws.run_forever, daemon=True)
    runner.start()
    done.wait(args.timeout)
    ws.close()
    runner.join(5)
    print(json.dumps(summary), flush=True)
    ok = summary["frames"] >= args.frames and not summary["invalid"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
