"""A soak of the web app: mixed valid and malformed requests from concurrent clients against a local server.

    python -m benchmarks.app_soak digit=<mnist ckpt> photo=<fashion ckpt> review=<text ckpt> \\
        generator=<vae ckpt> -n 1000 --clients 8

Starts ``python -m dlforge.app`` with the given panels on 127.0.0.1 (a free port, uploads limited to
1 MB), sends ``--warmup`` requests of every kind from the clients, then ``n`` requests drawn (seeded)
half from valid uploads (a drawing, a photo, a review, a sample) and half from malformed ones (text
as an image, a truncated or empty file, a decompression bomb, an upload over the limit, an empty
text, broken JSON, a missing field, an unknown panel, an out-of-range seed), from ``--clients``
threads with a keep-alive connection each. Records every answer's status and round-trip time, and
the server process's resident memory (``/proc/<pid>/status``, Linux) after the warm-up, every 0.2 s
during the soak and after it. Writes ``benchmarks/results/app_soak.json`` (``--out``) with the
machine and its load average; exits 1 when any answer was a 5xx or missing, or memory grew by
``--max-growth-mb`` or more.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from benchmarks.app_latency import drawing_png, percentile, photo_jpeg
from benchmarks.common import machine

#: What the server is started with: uploads over 1 MB are refused.
UPLOAD_MB = 1
#: A request: (method, path, httpx keyword arguments).
Call = tuple[str, str, dict[str, Any]]


def bomb_png() -> bytes:
    """A small PNG that decodes to 8,000 x 8,000 pixels (a decompression bomb: the app's limit is 40 M)."""
    out = io.BytesIO()
    Image.new("1", (8_000, 8_000)).save(out, format="PNG", optimize=True)
    return out.getvalue()


def request_kinds(panels: set[str]) -> dict[str, tuple[bool, Call]]:
    """Kind -> (valid?, the request), for the panels the server has."""
    drawing, photo = drawing_png(), photo_jpeg()
    image = {"files": {"image": ("drawing.png", drawing, "image/png")}}

    def upload(data: bytes, name: str = "upload.png") -> dict[str, Any]:
        return {"files": {"image": (name, data, "image/png")}}

    half, noise = drawing[: len(drawing) // 2], os.urandom(UPLOAD_MB * 2**20 + 1)
    broken = {"content": b'{"text": "unfinished', "headers": {"content-type": "application/json"}}
    review = "A gorgeous, witty and moving film, with a cast that is clearly having fun."
    kinds: dict[str, tuple[str, bool, Call]] = {
        "digit": ("digit", True, ("POST", "api/classify/digit", image)),
        "photo": ("photo", True, ("POST", "api/classify/photo", upload(photo, "photo.jpg"))),
        "review": ("review", True, ("POST", "api/review", {"json": {"text": review}})),
        "sample": ("generator", True, ("POST", "api/sample", {"json": {"seed": 7, "dim": 0, "value": 1.5}})),
        "text_as_image": ("digit", False, ("POST", "api/classify/digit", upload(b"hello, not a picture\n"))),
        "truncated_png": ("digit", False, ("POST", "api/classify/digit", upload(half))),
        "empty_file": ("digit", False, ("POST", "api/classify/digit", upload(b""))),
        "bomb": ("photo", False, ("POST", "api/classify/photo", upload(bomb_png()))),
        "over_limit": ("photo", False, ("POST", "api/classify/photo", upload(noise))),
        "no_file": ("digit", False, ("POST", "api/classify/digit", {"data": {"x": "1"}})),
        "unknown_panel": ("digit", False, ("POST", "api/classify/nope", image)),
        "empty_text": ("review", False, ("POST", "api/review", {"json": {"text": "   "}})),
        "broken_json": ("review", False, ("POST", "api/review", broken)),
        "wrong_key": ("review", False, ("POST", "api/review", {"json": {"review": review}})),
        "negative_seed": ("generator", False, ("POST", "api/sample", {"json": {"seed": -1}})),
    }  # fmt: skip
    return {kind: (valid, call) for kind, (panel, valid, call) in kinds.items() if panel in panels}


def rss_mb(pid: int) -> float:
    """The resident memory of process ``pid`` in MB (Linux)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def start_server(panels: list[str], workdir: Path) -> tuple[subprocess.Popen, str]:
    """``python -m dlforge.app <panels>`` on 127.0.0.1, any free port; the process and its URL."""
    command = [
        sys.executable,
        "-m",
        "dlforge.app",
        *panels,
        "host=127.0.0.1",
        "port=0",
        f"limits.upload_mb={UPLOAD_MB}",
        f"hydra.run.dir={workdir / 'app'}",
    ]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in server.stdout:  # type: ignore[union-attr]
        lines.append(line)
        found = re.search(r"dlforge app on (http://127\.0\.0\.1:\d+/)", line)
        if found:
            threading.Thread(target=server.stdout.read, daemon=True).start()  # type: ignore[union-attr]
            return server, found.group(1)
    server.wait()
    raise SystemExit(f"the app did not start (exit {server.returncode}):\n{''.join(lines)[-3000:]}")


def send(client: httpx.Client, url: str, call: Call) -> tuple[int, float]:
    """One request: its status (0: no answer) and round-trip milliseconds."""
    method, path, kwargs = call
    start = time.perf_counter()
    try:
        status = client.request(method, url + path, **kwargs).status_code
    except httpx.HTTPError:
        status = 0
    return status, 1000 * (time.perf_counter() - start)


def soak(
    url: str, pid: int, kinds: dict[str, tuple[bool, Call]], n: int, clients: int, warmup: int, seed: int = 0
) -> dict[str, Any]:
    """Warm up (``warmup`` requests of each kind, from the clients), then ``n`` requests from ``clients``
    threads; statuses, latencies and memory."""
    rng = random.Random(seed)
    valid = [kind for kind, (ok, _) in kinds.items() if ok]
    malformed = [kind for kind, (ok, _) in kinds.items() if not ok]
    order = [rng.choice(valid if rng.random() < 0.5 else malformed) for _ in range(n)]
    local = threading.local()
    done = threading.Event()

    def one(kind: str) -> tuple[str, int, float]:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=60)
        return (kind, *send(local.client, url, kinds[kind][1]))

    def watch() -> None:
        while not done.wait(0.2):
            samples.append(rss_mb(pid))

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, [kind for kind in kinds for _ in range(warmup)]))  # the server's threads too
        samples = [rss_mb(pid)]
        before, load_before = samples[0], os.getloadavg()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        start = time.perf_counter()
        results, growth = [], {}
        for part in range(4):  # the memory after each quarter: a leak grows on, warming up levels off
            results += pool.map(one, order[part * n // 4 : (part + 1) * n // 4])
            growth[len(results)] = round(rss_mb(pid) - before, 1)
        wall = time.perf_counter() - start
    done.set()
    watcher.join()
    time.sleep(1.0)
    after = rss_mb(pid)
    return {
        **summary(results, kinds, wall, before, after, max(samples), load_before),
        "growth_mb_by_requests": growth,
    }


def latency(ms: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(ms), 2),
        "p95": round(percentile(ms, 95), 2),
        "p99": round(percentile(ms, 99), 2),
        "max": round(max(ms), 2),
    }


def summary(
    results: list[tuple[str, int, float]],
    kinds: dict[str, tuple[bool, Call]],
    wall: float,
    before: float,
    after: float,
    peak: float,
    load_before: tuple[float, float, float],
) -> dict[str, Any]:
    statuses = Counter(status for _, status, _ in results)
    by_kind = {kind: dict(Counter(str(status) for k, status, _ in results if k == kind)) for kind in kinds}
    return {
        "requests": len(results),
        "wall_s": round(wall, 2),
        "statuses": {str(s): statuses[s] for s in sorted(statuses)},
        "server_errors_5xx": sum(n for s, n in statuses.items() if s >= 500),
        "no_answer": statuses[0],
        "valid_not_200": sum(1 for k, s, _ in results if kinds[k][0] and s != 200),
        "malformed_not_4xx": sum(1 for k, s, _ in results if not kinds[k][0] and not 400 <= s < 500),
        "by_kind": by_kind,
        "latency_ms": latency([ms for _, _, ms in results]),
        "latency_ms_valid": latency([ms for k, _, ms in results if kinds[k][0]]),
        "latency_ms_malformed": latency([ms for k, _, ms in results if not kinds[k][0]]),
        "rss_mb": {"after_warmup": round(before, 1), "peak": round(peak, 1), "after": round(after, 1)},
        "rss_growth_mb": round(after - before, 1),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }


def run(panels: list[str], n: int, clients: int, warmup: int) -> dict[str, Any]:
    """Start the server with ``panels`` (``name=path``), soak it, stop it; the results."""
    with tempfile.TemporaryDirectory() as workdir:
        server, url = start_server(panels, Path(workdir))
        try:
            panels_info = httpx.get(url + "api/panels").json()["panels"]
            served = {
                name: f"{m['kind']} on {m['data']} ({m['backend']})" for name, m in panels_info.items() if m
            }
            kinds = request_kinds(set(served))
            result = soak(url, server.pid, kinds, n, clients, warmup)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {
        "url": url,
        "clients": clients,
        "warmup_per_kind": warmup,
        **result,
        "panels": dict(sorted(served.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("panels", nargs="+", help="the app's models: digit=<ckpt> photo=... review=... ...")
    parser.add_argument("-n", type=int, default=1000, help="requests of the soak")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--warmup", type=int, default=2, help="requests of each kind before the soak")
    parser.add_argument("--max-growth-mb", type=float, default=50.0)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "app_soak.json"
    )
    args = parser.parse_args()
    panels = [f"{name}={Path(path).resolve()}" for name, path in (p.split("=", 1) for p in args.panels)]
    result = run(panels, args.n, args.clients, args.warmup)
    result["models"] = dict(p.split("=", 1) for p in panels)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine(), **result}, indent=2) + "\n")
    lat, rss = result["latency_ms"], result["rss_mb"]
    print(
        f"{result['requests']} requests from {args.clients} clients in {result['wall_s']} s: "
        f"statuses {result['statuses']}; latency p50 {lat['p50']} ms, p99 {lat['p99']} ms; "
        f"server memory {rss['after_warmup']} -> {rss['after']} MB (peak {rss['peak']})"
    )
    print(f"results: {args.out}")
    bad = result["server_errors_5xx"] or result["no_answer"] or result["rss_growth_mb"] >= args.max_growth_mb
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
