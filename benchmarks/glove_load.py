"""GloVe load: first read (parse + write the cache) against a cached load, for real and generated files.

    DATA_DIR=../shared/data python -m benchmarks.glove_load [--generate 400000x300] [--repeats 5]

Reads ``$DATA_DIR/glove/glove.6B.50d.top50k.txt`` and a generated file of the given size in GloVe's
text format (the size of ``glove.6B.300d.txt``: 400,000 x 300, 1 GB), each with an empty cache
first, then ``--repeats`` times through the cache (memory-mapped vectors + word list), looking up
20,000 words each time as a text data module does. Wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import table, write
from dlforge.data.glove import load_glove


def generate(path: Path, rows: int, dim: int, seed: int = 0) -> Path:
    """A GloVe-format text file of ``rows`` random words and vectors (5 decimals, like GloVe's)."""
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, rows, 10_000):
            block = rng.normal(0, 0.4, size=(min(10_000, rows - start), dim)).round(5)
            lines = (" ".join([f"w{start + i}", *map(str, v)]) + "\n" for i, v in enumerate(block.tolist()))
            f.writelines(lines)
    return path


def timed_load(path: Path, cache: Path, lookups: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    glove = load_glove(path, cache_dir=cache)
    words = glove.words[:: max(1, len(glove.words) // lookups)][:lookups]
    matrix = np.stack([glove.vectors[glove.index[w]] for w in words])
    assert matrix.shape == (len(words), glove.dim)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--generate", default="400000x300", help="ROWSxDIM of a generated file ('' for none)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lookups", type=int, default=20_000)
    args = parser.parse_args()
    files = []
    real = Path(os.environ.get("DATA_DIR", "data")) / "glove" / "glove.6B.50d.top50k.txt"
    if real.is_file():
        files.append(real)
    rows, results = [], []
    with tempfile.TemporaryDirectory(prefix="glove_bench_") as tmp:
        if args.generate:
            n, dim = map(int, args.generate.lower().split("x"))
            start = time.perf_counter()
            files.append(generate(Path(tmp) / f"generated.{n}x{dim}.txt", n, dim))
            print(f"generated {files[-1].name} in {time.perf_counter() - start:.0f} s", flush=True)
        for path in files:
            cache = Path(tmp) / f"cache-{path.stem}"
            first = timed_load(path, cache, args.lookups)
            cached = [timed_load(path, cache, args.lookups) for _ in range(args.repeats)]
            wall = statistics.median(c[0] for c in cached)
            cpu = statistics.median(c[1] for c in cached)
            size_mb = path.stat().st_size / 2**20
            seconds = [f"{t:.2f}" for t in (*first, wall, cpu)]
            rows.append([path.name, f"{size_mb:.0f} MB", *seconds])
            results.append(
                {"file": path.name, "mb": size_mb, "first_wall_s": first[0], "first_cpu_s": first[1]}
                | {"cached_wall_s": [c[0] for c in cached], "cached_cpu_s": [c[1] for c in cached]}
            )
            print(rows[-1], flush=True)
    header = ["file", "size", "first wall s", "first CPU s", "cached wall s", "cached CPU s"]
    print(table(header, rows))
    print("wrote", write("glove_load", {"results": results, "lookups": args.lookups}))


if __name__ == "__main__":
    main()
