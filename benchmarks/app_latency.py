"""Per-prediction latency through the running web app's HTTP API (p50 / p95), one request at a time.

    python -m dlforge.app digit=<mnist ckpt> photo=<fashion ckpt> review=<text ckpt> generator=<vae ckpt> &
    python -m benchmarks.app_latency --url http://127.0.0.1:7860/ -n 200 --label checkpoints

For every configured panel it sends what the page sends - a 280x280 PNG drawing, a 600x400 JPEG
photo, a review, a sample request with a moved latent slider, a WAV clip (8 kHz mono as the data's,
and 44.1 kHz stereo as a phone's), a request to say a digit - ``n`` times after ``--warmup``
requests (``--speak-n`` after one for the WaveNet, whose clips take seconds), over one keep-alive
connection, and records the round-trip time seen by the client and the server's own time (the
``ms`` field: decoding, preprocessing, the model; for the WaveNet also ``generation_ms``). Results
are printed as a table and appended to ``benchmarks/results/app_latency.json`` under ``--label``,
with the machine and its load average in ``machines``.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import statistics
import time
import wave
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw

from benchmarks.common import machine, table


def drawing_png() -> bytes:
    """A '7' drawn black on a white 280x280 canvas, as the page's canvas sends it."""
    image = Image.new("RGB", (280, 280), "white")
    ImageDraw.Draw(image).line([(70, 60), (210, 60), (120, 230)], fill="black", width=20, joint="curve")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def photo_jpeg() -> bytes:
    """A 600x400 product-style photo: a dark shirt shape on a white background."""
    image = Image.new("RGB", (600, 400), (250, 250, 250))
    ImageDraw.Draw(image).polygon(
        [(100, 60), (180, 40), (260, 60), (320, 120), (280, 150), (260, 130), (260, 330), (100, 330),
         (100, 130), (80, 150), (40, 120)],
        fill=(40, 50, 90),
    )  # fmt: skip
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def spoken_clip(rate: int, channels: int, seconds: float = 0.6) -> bytes:
    """A 16-bit PCM WAV of a voiced sound (a 140 Hz buzz with two formant-like tones), ``seconds`` long."""
    n = round(seconds * rate)
    samples = [
        0.5 * math.sin(math.pi * t / n) * sum(math.sin(2 * math.pi * f * t / rate) / k for k, f in
                                               enumerate((140, 700, 1200), start=1))
        for t in range(n)
    ]  # fmt: skip
    frames = b"".join(round(8000 * v).to_bytes(2, "little", signed=True) * channels for v in samples)
    out = io.BytesIO()
    with wave.open(out, "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(frames)
    return out.getvalue()


def requests_for(panels: dict[str, Any]) -> dict[str, Any]:
    """Panel -> a function (request number) -> (method path, httpx keyword arguments)."""
    drawing, photo = drawing_png(), photo_jpeg()
    review = "A gorgeous, witty and moving film, with a cast that is clearly having fun."
    calls = {
        "digit": lambda i: (
            "api/classify/digit",
            {"files": {"image": ("drawing.png", drawing, "image/png")}},
        ),
        "photo": lambda i: ("api/classify/photo", {"files": {"image": ("photo.jpg", photo, "image/jpeg")}}),
        "review": lambda i: ("api/review", {"json": {"text": review}}),
        "generator": lambda i: ("api/sample", {"json": {"seed": i, "dim": 0, "value": (i % 13 - 6) / 2}}),
    }
    # spoken digits: a clip as the data's and as a phone's; a WaveNet saying 0.6 s of each digit in turn
    clip, phone = spoken_clip(8000, 1), spoken_clip(44100, 2)
    calls |= {
        "speech": lambda i: ("api/hear", {"files": {"audio": ("clip.wav", clip, "audio/wav")}}),
        "speech_phone": lambda i: ("api/hear", {"files": {"audio": ("phone.wav", phone, "audio/wav")}}),
        "wavenet": lambda i: (
            "api/speak",
            {"json": {"label": i % 10, "seed": i, "temperature": 0.9, "seconds": 0.6}},
        ),
    }
    return {panel: call for panel, call in calls.items() if panels.get(panel.split("_")[0])}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def measure(client: httpx.Client, url: str, call: Any, n: int, warmup: int) -> dict[str, Any]:
    client_ms, server_ms, generation_ms = [], [], []
    for i in range(warmup + n):
        path, kwargs = call(i)
        start = time.perf_counter()
        response = client.post(url + path, **kwargs)
        elapsed = 1000 * (time.perf_counter() - start)
        response.raise_for_status()
        if i >= warmup:
            client_ms.append(elapsed)
            server_ms.append(response.json()["ms"])
            if "generation_ms" in response.json():
                generation_ms.append(response.json()["generation_ms"])
    generation = {"generation_ms": {"p50": statistics.median(generation_ms)}} if generation_ms else {}
    return {
        "requests": n,
        "client_ms": {
            "p50": statistics.median(client_ms),
            "p95": percentile(client_ms, 95),
            "mean": statistics.fmean(client_ms),
        },
        "server_ms": {"p50": statistics.median(server_ms), "p95": percentile(server_ms, 95)},
        **generation,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860/")
    parser.add_argument("-n", type=int, default=200, help="timed requests per panel")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--speak-n", type=int, default=10, help="timed requests to say a digit (WaveNet)")
    parser.add_argument("--label", default="app", help="the name of this configuration in the results")
    args = parser.parse_args()
    url = args.url if args.url.endswith("/") else args.url + "/"
    with httpx.Client(timeout=60) as client:
        panels = client.get(url + "api/panels").json()["panels"]
        results = {}
        for name, call in requests_for(panels).items():
            panel = name.split("_")[0]
            slow = panel == "wavenet"
            results[name] = {
                "model": f"{panels[panel]['kind']} on {panels[panel]['data']} ({panels[panel]['backend']})",
                **measure(client, url, call, args.speak_n if slow else args.n, 1 if slow else args.warmup),
                "loadavg": os.getloadavg(),
            }
    rows = [
        [
            panel,
            r["model"],
            r["client_ms"]["p50"],
            r["client_ms"]["p95"],
            r["server_ms"]["p50"],
            r["server_ms"]["p95"],
        ]
        for panel, r in results.items()
    ]
    print(table(["panel", "model", "p50 ms", "p95 ms", "server p50 ms", "server p95 ms"], rows))
    path = Path(__file__).resolve().parent / "results" / "app_latency.json"
    path.parent.mkdir(exist_ok=True)
    previous = json.loads(path.read_text()) if path.is_file() else {}
    previous.setdefault("runs", {})[args.label] = results
    previous.setdefault("machines", {})[args.label] = machine()
    path.write_text(json.dumps({"machine": machine(), **previous}, indent=2) + "\n")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
