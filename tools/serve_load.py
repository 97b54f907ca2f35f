#!/usr/bin/env python3
"""serve_load.py - a short, bounded load run against a local vlmchat --serve.

    tools/serve_load.py URL [--clients 4] [--requests 200] [--image examples/scene1.png] [--stream]

Sends chat completions (one image, one question, greedy) from several client
threads at once and prints requests/s and latency percentiles; 429 answers
(queue full) are counted, not retried. For loopback servers only.
"""
import argparse, base64, json, threading, time, urllib.error, urllib.request

QUESTIONS = ["What color is the shape?", "How many shapes are there?", "What shape is in the picture?"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--image", default="examples/scene1.png")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--key", default="")
    a = ap.parse_args()
    host = a.url.split("//", 1)[-1].split(":")[0]
    if not (host.startswith("127.") or host in ("localhost", "[::1]")):
        raise SystemExit("serve_load.py only targets loopback servers")
    data_url = "data:image/png;base64," + base64.b64encode(open(a.image, "rb").read()).decode()
    latencies, statuses, lock = [], {}, threading.Lock()
    counter = iter(range(a.requests))

    def client():
        for i in counter:
            body = {"temperature": 0, "stream": a.stream, "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": data_url}},
                {"type": "text", "text": QUESTIONS[i % len(QUESTIONS)]}]}]}
            req = urllib.request.Request(a.url.rstrip("/") + "/v1/chat/completions", json.dumps(body).encode(),
                                         {"Content-Type": "application/json",
                                          **({"Authorization": "Bearer " + a.key} if a.key else {})})
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    r.read()
                    status = r.status
            except urllib.error.HTTPError as e:
                status = e.code
            dt = time.perf_counter() - t0
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    latencies.append(dt)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    latencies.sort()
    pct = lambda p: latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1e3 if latencies else 0
    print(json.dumps({"clients": a.clients, "requests": a.requests, "stream": a.stream, "statuses": statuses,
                      "seconds": round(wall, 3), "requests_per_s": round(statuses.get(200, 0) / wall, 1),
                      "latency_ms": {"p50": round(pct(50), 1), "p90": round(pct(90), 1), "p99": round(pct(99), 1),
                                     "max": round(latencies[-1] * 1e3, 1) if latencies else 0}}))


if __name__ == "__main__":
    main()
