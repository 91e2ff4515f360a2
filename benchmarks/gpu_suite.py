"""Prepared GPU runs (issue 22): the seeds' full-length runs and the GPU timings, in one device call.

    python -m benchmarks.gpu_suite pack /work/shared/data .gpu_data --wheels    # here, once
    python -m benchmarks.gpu_suite run --data .gpu_data --out $OUT --budget-s 540   # on the GPU
    python -m benchmarks.gpu_suite run --tiny --data <tiny data root> --out <dir>     # seconds, CPU

Parts, in the order they start (``--parts`` picks some):

- ``overhead``: ``benchmarks.overhead`` (same interleaving of Lightning and plain-loop steps, fp32,
  data in host memory as its H100 table) for LeNet, the text CNN (MR, GloVe 50d) and the DCGAN,
  all at batch 128; 100 steps a window, 8 windows, one round of each Lightning path.
- ``time_to_accuracy``: ``benchmarks.time_to_accuracy``'s LeNet to 99% on MNIST (``trainer=gpu``,
  ``data.on_device=true``) at batches 128, 256 and 512, after one discarded warm-up epoch.
- ``lenet``, ``cifar``, ``dcgan``, ``vae``: ``python train.py experiment=<name>`` with the ``_gpu``
  variants of ``seed002_lenet_mnist`` (20 epochs), ``seed002_cifar_cnn_deep_augment`` (50 epochs,
  JPEG copy), ``dcgan_mnist`` (full width, 25 epochs) and ``seed003_vae_mnist`` (15 epochs). The
  DCGAN's and the VAE's FID/KID use ONE extractor, the last checkpoint of this suite's ``lenet``
  run (penultimate layer, 500 features), named beside each figure.

The two timing parts run alone, one after the other. The training runs then share the GPU, up to
``--jobs`` at a time (the DCGAN and the VAE wait for the LeNet); their wall times are not solo
times, and each result lists the runs that ran beside it.

Time: the whole suite stays inside ``--budget-s``. Each part has a wall-clock limit (``--limit
part=seconds``); a training run also gets ``+trainer.max_time`` so that it stops in time, tests its
best checkpoint and writes its metrics (status ``time_limit``, with the epochs it did); a process
past its limit is killed (``killed``, with what it had written). Parts whose data is missing or for
which too little time is left are ``skipped``, with the reason.

Output: ``<out>/gpu_suite.json`` (one entry per part, rewritten as each part ends, so a timeout still
returns what was done) and ``<out>/gpu_suite_runs.tar.gz`` (each run's folder without checkpoints:
metrics.json, config, metrics.csv, sample grids; and every part's log). Rerun-safe: a part whose
entry in ``<out>/gpu_suite.json`` has status ``ok`` is not run again (except the LeNet, when the
DCGAN or the VAE still needs its checkpoint and it is not on this machine).

Data: ``--data`` is a data root as ``DATA_DIR`` (``MNIST/raw``, ``cifar10-jpeg``, ``rt-polaritydata``,
``glove/glove.6B.50d.top50k.txt``), or a folder made by ``pack``: xz-compressed tars of those four
and, with ``--wheels``, the wheels of hydra-core, omegaconf and antlr4 (the GPU machine's image
lacks them; ``run`` installs them into its work folder when ``hydra`` is missing): 35.2 MiB for the
shared copies (MNIST 9.0, CIFAR-10 JPEGs 18.1, GloVe 7.3, MR 0.4, wheels 0.4). The device tool carries at
most 64 MiB with the working tree, so the packed folder goes into an ignored folder of the repo
(``.gpu_data/``) named in ``carry``; ``run`` unpacks it into ``--work`` (default
``$TMPDIR/gpu_suite``). Fashion-MNIST is not needed and not packed.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
RESULT = "gpu_suite.json"
ARTIFACTS = "gpu_suite_runs.tar.gz"
CARRY_LIMIT = 64 * 2**20  # the device tool's limit on the working tree plus carried paths
GLOVE = "glove/glove.6B.50d.top50k.txt"
#: archive name -> paths under the data root it holds (``pack``)
PACKED = {
    "mnist": ("MNIST/raw",),
    "cifar10-jpeg": ("cifar10-jpeg",),
    "mr": ("rt-polaritydata",),
    "glove-50d": (GLOVE,),
}
WHEELS = ("hydra-core", "omegaconf", "antlr4-python3-runtime")
#: what makes every training run a few CPU steps long (``--tiny``)
TINY_TRAINING = (
    "trainer.accelerator=cpu",
    "trainer.precision=32-true",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.log_every_n_steps=1",
    "trainer.enable_model_summary=false",
    "data.batch_size=16",
    "data.val_size=32",
    "quality_samples=32",
)


@dataclass(frozen=True)
class Part:
    """One measurement (``experiment`` None: a ``measure`` worker) or one training run."""

    name: str
    data: tuple[str, ...]  # paths under the data root it reads
    limit_s: float  # default wall-clock limit of its process
    experiment: str | None = None
    headline: str | None = None  # the metric shown in the table
    extractor: bool = False  # FID/KID with the ``lenet`` part's last checkpoint


PARTS = (
    Part("overhead", ("MNIST/raw", "rt-polaritydata", GLOVE), 150),
    Part("time_to_accuracy", ("MNIST/raw",), 120),
    Part("lenet", ("MNIST/raw",), 180, "seed002_lenet_mnist_gpu", "test/acc"),
    Part(
        "cifar",
        ("cifar10-jpeg/train", "cifar10-jpeg/test"),
        480,
        "seed002_cifar_cnn_deep_augment_gpu",
        "test/acc",
    ),
    Part("dcgan", ("MNIST/raw",), 330, "dcgan_mnist_gpu", "test/fid", extractor=True),
    Part("vae", ("MNIST/raw",), 180, "seed003_vae_mnist_gpu", "test/elbo", extractor=True),
)
EXTRACTOR_PART = "lenet"
TINY_LIMIT_S = 600


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Atomically: readers (and a timeout) never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


# --- pack (here) and stage (there) --------------------------------------------------------------


def _writable(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mode |= 0o700 if info.isdir() else 0o600  # the shared copies are read-only
    return info


def pack(source: Path, dest: Path, wheels: bool) -> None:
    """xz-compressed tars of the data the parts read, and optionally the wheels Hydra needs."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, paths in PACKED.items():
        archive = dest / f"{name}.tar.xz"
        missing = [p for p in paths if not (source / p).exists()]
        if missing:
            print(f"{name}: {', '.join(missing)} not under {source}: not packed (its parts will be skipped)")
        elif archive.exists():
            print(f"{name}: {archive} exists, kept (delete it to pack again)")
        else:
            tmp = archive.with_name(f".{archive.name}.tmp")
            with tarfile.open(tmp, "w:xz", preset=6) as tar:
                for path in paths:
                    tar.add(source / path, arcname=path, filter=_writable)
            os.replace(tmp, archive)
    if wheels:
        pins = [f"{name}=={importlib.metadata.version(name)}" for name in WHEELS]
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest / "wheels"), *pins],
            check=True,
        )
    packed = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    tree = working_tree_bytes()
    for f in sorted(dest.rglob("*")):
        if f.is_file():
            print(f"{f.stat().st_size / 2**20:8.1f} MiB  {f.relative_to(dest)}")
    verdict = "fits" if packed + tree < CARRY_LIMIT else "does NOT fit"
    print(
        f"packed {packed / 2**20:.1f} MiB + working tree {tree / 2**20:.1f} MiB = "
        f"{(packed + tree) / 2**20:.1f} MiB: {verdict} in the device tool's 64 MiB"
    )


def working_tree_bytes() -> int:
    """Bytes of what the device tool sends of this checkout: tracked and untracked, not ignored, files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    files = (REPO / name for name in listed.decode().split("\0") if name)
    return sum(f.stat().st_size for f in files if f.is_file() and not f.is_symlink())


def stage(data: Path, work: Path) -> Path:
    """The data root: ``data`` itself, or a folder where the tars ``pack`` made are unpacked (once)."""
    archives = sorted(data.glob("*.tar.xz"))
    if not archives:
        return data
    root = work / "data"
    root.mkdir(parents=True, exist_ok=True)
    for archive in archives:
        marker = root / f".{archive.name}.unpacked"
        if not marker.exists():
            with tarfile.open(archive) as tar:
                tar.extractall(root, filter="data")
            marker.touch()
    return root


def hydra_site(data: Path, work: Path) -> str | None:
    """Where the carried wheels of Hydra were installed, when this Python lacks Hydra (the GPU image)."""
    if all(importlib.util.find_spec(name) for name in ("hydra", "omegaconf", "antlr4")):
        return None
    wheels = sorted((data / "wheels").glob("*.whl"))
    if not wheels:
        raise SystemExit(f"hydra-core is not installed and {data}/wheels holds no wheels: pack with --wheels")
    site = work / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(site)]
    subprocess.run([*pip, *map(str, wheels)], check=True)
    return str(site)


# --- the measurement workers (``measure <part>``, run as child processes) ------------------------


def measure_overhead(result: Path, tiny: bool) -> None:
    import torch

    from benchmarks import overhead
    from benchmarks.common import machine, table
    from dlforge.speed import keep_freed_memory

    steps, windows, rounds = (2, 1, 1) if tiny else (100, 8, 1)
    overrides = [f"data.batch_size={16 if tiny else 128}"]
    payload: dict[str, Any] = {
        "device": machine()["gpu"] or "cpu",
        "steps_per_window": steps,
        "windows": windows,
        "rounds": rounds,
        "threads": torch.get_num_threads(),
        "keep_freed_memory": keep_freed_memory(),  # as train.py does by default
        "results": [],
    }
    rows = []
    for case in overhead.CASES:
        for measured in overhead.measure(case, overrides, steps, windows, rounds):
            payload["results"].append(measured)
            rows.append(overhead.row(measured))
            write_json(result, {**payload, "table": table(overhead.HEADER, rows), "complete": False})
    write_json(result, {**payload, "table": table(overhead.HEADER, rows), "complete": True})


def measure_time_to_accuracy(result: Path, tiny: bool) -> None:
    import torch

    from benchmarks import time_to_accuracy as tta
    from benchmarks.common import machine, table

    batch_sizes, max_epochs = ([16], 1) if tiny else ([128, 256, 512], 10)
    extra = ["data.on_device=true"]
    threads = torch.get_num_threads()
    payload: dict[str, Any] = {
        "device": machine()["gpu"] or "cpu",
        "case": "lenet",
        "overrides": extra,
        "max_epochs": max_epochs,
        # first use of cuDNN, cuBLAS and the allocator: one epoch, discarded
        "warmup": tta.run("lenet", batch_sizes[0], threads, 1, extra),
        "results": [],
    }
    header = ["target", "batch", "time to target (training)", "epochs", "test acc"]
    rows = []
    for batch_size in batch_sizes:
        r = tta.run("lenet", batch_size, threads, max_epochs, extra)
        payload["results"].append(r)
        reached = f"{r['train_seconds']:.2f} s" if r["reached"] else f"not in {r['train_seconds']:.1f} s"
        rows.append([f"{r['target']:.1%}", batch_size, reached, r["epochs"], f"{r['test_acc']:.2%}"])
        write_json(result, {**payload, "table": table(header, rows), "complete": False})
    write_json(result, {**payload, "table": table(header, rows), "complete": True})


MEASURES = {"overhead": measure_overhead, "time_to_accuracy": measure_time_to_accuracy}


# --- the suite ----------------------------------------------------------------------------------


@dataclass
class Running:
    part: Part
    process: subprocess.Popen
    log: IO[bytes]
    started: float
    kill_at: float
    command: list[str]
    beside: set[str] = field(default_factory=set)


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        self.args = args
        self.start = time.monotonic()
        self.deadline = self.start + args.budget_s
        self.out, self.work = Path(args.out), Path(args.work)
        self.out.mkdir(parents=True, exist_ok=True)
        for folder in ("runs", "logs", "measure"):
            (self.work / folder).mkdir(parents=True, exist_ok=True)
        previous = self.out / RESULT
        self.state: dict[str, Any] = json.loads(previous.read_text()) if previous.exists() else {}
        self.state.setdefault("parts", {})
        self.jobs = args.jobs or (3 if torch.cuda.is_available() else 2)
        # tiny parts take seconds, but a loaded CPU can stretch them many times
        self.limits = {p.name: TINY_LIMIT_S if args.tiny else p.limit_s for p in PARTS} | dict(args.limit)
        self.margin_s = args.margin_s

    # -- bookkeeping
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def say(self, message: str) -> None:
        print(f"[{self.elapsed():6.1f} s] {message}", flush=True)

    def save(self, name: str, record: dict[str, Any]) -> None:
        parts = self.state["parts"] | {name: record}
        self.state["parts"] = {p.name: parts[p.name] for p in PARTS if p.name in parts}  # in running order
        write_json(self.out / RESULT, self.state)
        self.pack_artifacts()
        self.say(f"{name}: {record['status']}  {summary(name, record)}")

    def pack_artifacts(self) -> None:
        """The run folders (no checkpoints, nothing over 4 MB) and the logs, as one file."""
        tmp = self.out / f".{ARTIFACTS}.tmp"
        with tarfile.open(tmp, "w:gz") as tar:
            for folder in ("runs", "logs"):
                for f in sorted((self.work / folder).rglob("*")):
                    if f.is_file() and f.suffix != ".ckpt" and f.stat().st_size < 4 * 2**20:
                        tar.add(f, arcname=str(f.relative_to(self.work)))
        os.replace(tmp, self.out / ARTIFACTS)

    def done(self, name: str) -> bool:
        return self.state["parts"].get(name, {}).get("status") == "ok"

    # -- the run
    def run(self) -> None:
        data = Path(self.args.data)
        site = hydra_site(data, self.work)
        self.data_root = stage(data, self.work)
        self.say(f"data root {self.data_root} (from {data})")
        paths = [str(REPO / "src"), str(REPO), *([site] if site else []), os.environ.get("PYTHONPATH", "")]
        self.env = {
            **os.environ,
            "DATA_DIR": str(self.data_root),
            "DLFORGE_CACHE": str(self.work / "cache"),
            "PYTHONPATH": os.pathsep.join(p for p in paths if p),
            "PYTHONUNBUFFERED": "1",
            "HYDRA_FULL_ERROR": "1",  # tracebacks in the logs
        }
        self.state.update(
            suite="benchmarks/gpu_suite.py",
            tiny=self.args.tiny,
            budget_s=self.args.budget_s,
            jobs=self.jobs,
            machine=machine(),
            data=str(data),
        )
        chosen = [p for p in PARTS if p.name in self.args.parts]
        todo = [p for p in chosen if not self.done(p.name)]
        if any(p.extractor for p in todo) and self.extractor_checkpoint() is None:
            # an earlier call's LeNet is done, but its checkpoint stayed on that machine
            todo = [p for p in chosen if p in todo or p.name == EXTRACTOR_PART]
        for p in chosen:
            if p not in todo:
                self.say(f"{p.name}: ok in {self.out / RESULT}, not run again")
        timings = [p for p in todo if p.experiment is None]
        if self.args.tiny:  # nothing is timed for real: everything at once
            self.schedule(todo, jobs=self.jobs)
        else:  # the timings alone, one at a time; then the training runs side by side
            self.schedule(timings, jobs=1)
            self.schedule([p for p in todo if p not in timings], jobs=self.jobs)
        write_json(self.out / RESULT, self.state)
        self.pack_artifacts()
        self.print_tables()

    def schedule(self, parts: list[Part], jobs: int) -> None:
        pending, running = list(parts), {}
        while pending or running:
            for part in list(pending):
                if len(running) >= jobs:
                    break
                if part.extractor and any(
                    p.name == EXTRACTOR_PART for p in [*pending, *running_parts(running)]
                ):
                    continue  # needs the LeNet's checkpoint
                pending.remove(part)
                launched = self.launch(part)
                if launched is not None:
                    for other in running.values():
                        other.beside.add(part.name)
                        launched.beside.add(other.part.name)
                    running[part.name] = launched
            for name, job in list(running.items()):
                now = time.monotonic()
                if job.process.poll() is None and now < job.kill_at:
                    continue
                killed = job.process.poll() is None
                if killed:
                    self.say(f"{name}: past its limit, killed")
                    stop(job.process)
                job.log.close()
                del running[name]
                self.save(name, self.finish(job, killed))
            time.sleep(0.2)

    def launch(self, part: Part) -> Running | None:
        missing = [p for p in part.data if not (self.data_root / p).exists()]
        if missing:
            self.save(part.name, {"status": "skipped", "reason": f"no {', '.join(missing)} in the data"})
            return None
        now = time.monotonic()
        kill_at = min(now + self.limits[part.name], self.deadline)
        train_s = int(kill_at - now - self.margin_s)
        if (part.experiment is None and kill_at - now < 20) or (part.experiment and train_s < 10):
            reason = f"{kill_at - now:.0f} s left of the budget"
            self.save(part.name, {"status": "skipped", "reason": reason})
            return None
        if part.experiment is None:
            result = self.work / "measure" / f"{part.name}.json"
            result.unlink(missing_ok=True)
            command = [
                sys.executable,
                "-m",
                "benchmarks.gpu_suite",
                "measure",
                part.name,
                "--result",
                str(result),
            ]
            command += ["--tiny"] if self.args.tiny else []
        else:
            run_dir = self.work / "runs" / part.name
            shutil.rmtree(run_dir, ignore_errors=True)  # a run left by an earlier, unfinished invocation
            max_time = f"00:{train_s // 3600:02d}:{train_s % 3600 // 60:02d}:{train_s % 60:02d}"
            command = [
                sys.executable,
                str(REPO / "train.py"),
                f"experiment={part.experiment}",
                f"hydra.run.dir={run_dir}",
                f"+trainer.max_time={max_time}",
                *self.extractor_overrides(part),
                *(TINY_TRAINING if self.args.tiny else ()),
            ]
        log = open(self.work / "logs" / f"{part.name}.log", "wb")  # noqa: SIM115 (closed when it ends)
        process = subprocess.Popen(command, cwd=self.work, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.say(f"{part.name}: started, limit {kill_at - now:.0f} s: {' '.join(command[1:])}")
        return Running(part, process, log, now, kill_at, command)

    def extractor_checkpoint(self) -> str | None:
        """The ``lenet`` part's last checkpoint (the docs' one FID recipe: seed 002's LeNet after its
        20 epochs), if it is on this machine."""
        lenet = self.state["parts"].get(EXTRACTOR_PART, {})
        ckpt = (lenet.get("record") or {}).get("last_checkpoint")
        return ckpt if ckpt and Path(ckpt).exists() else None

    def extractor_overrides(self, part: Part) -> list[str]:
        ckpt = self.extractor_checkpoint() if part.extractor else None
        return [f"quality_classifier={ckpt}"] if ckpt else []

    # -- results
    def finish(self, job: Running, killed: bool) -> dict[str, Any]:
        part, code = job.part, job.process.returncode
        log_path = self.work / "logs" / f"{part.name}.log"
        common = {
            "command": " ".join(
                ["python", *(Path(a).name if a == str(REPO / "train.py") else a for a in job.command[1:])]
            ),
            "wall_s": round(time.monotonic() - job.started, 1),
            "limit_s": round(job.kill_at - job.started, 1),
            "ran_beside": sorted(job.beside),
        }
        if part.experiment is None:
            result = self.work / "measure" / f"{part.name}.json"
            measured = json.loads(result.read_text()) if result.exists() else {}
            complete = measured.pop("complete", False)
            status = "killed" if killed else "ok" if code == 0 and complete else "failed"
            record = {"status": status, **common, **measured}
        else:
            record = {"status": "", "experiment": part.experiment, **common, **self.training(part, job)}
            record["status"] = (
                "killed" if killed else "failed" if code != 0 or "record" not in record else record["status"]
            )
        if record["status"] in ("failed", "killed"):
            tail = log_path.read_text(errors="replace").splitlines()[-15:]
            record["log_tail"] = tail
            print("\n".join(f"    {line}" for line in tail))
        return record

    def training(self, part: Part, job: Running) -> dict[str, Any]:
        run_dir = self.work / "runs" / part.name
        out: dict[str, Any] = {"run_dir": str(run_dir)}
        if part.extractor:
            out["fid_extractor"] = self.extractor(job.command)
        metrics_file = run_dir / "metrics.json"
        if not metrics_file.exists():
            out["last_logged"] = last_logged(run_dir / "metrics.csv")
            return out
        record = json.loads(metrics_file.read_text())
        gpu = self.state["machine"]["gpu"]
        max_epochs = configured_max_epochs(run_dir / "config.yaml")
        log = (self.work / "logs" / f"{part.name}.log").read_text(errors="replace")
        cut = "Time limit reached" in log or (max_epochs is not None and record.get("epochs", 0) < max_epochs)
        out.update(
            status="time_limit" if cut else "ok",
            device=f"{record.get('device')} ({gpu})" if gpu else record.get("device"),
            precision=record.get("precision"),
            epochs=record.get("epochs"),
            max_epochs=max_epochs,
            headline={
                "metric": part.headline,
                "value": record.get("metrics", {}).get(part.headline),
                "reference": record.get("reference"),
            },
            record=record,
        )
        quality = run_dir / "sample_quality.json"
        if quality.exists() and "test" in (measured := json.loads(quality.read_text())):
            out["sample_quality"] = measured["test"]
        return out

    def extractor(self, command: list[str]) -> dict[str, Any] | None:
        """The one FID/KID extractor: which run made it, how good it is, which checkpoint."""
        ckpt = next((a.split("=", 1)[1] for a in command if a.startswith("quality_classifier=")), None)
        if ckpt is None:
            return None
        lenet = self.state["parts"][EXTRACTOR_PART]
        return {
            "recipe": f"python train.py experiment={lenet['experiment']} (the {EXTRACTOR_PART} part)",
            "layer": "penultimate (500 features of LeNet's dense layer)",
            "checkpoint": Path(ckpt).name,
            "classifier_test_acc": lenet["headline"]["value"],
            "classifier_epochs": lenet.get("epochs"),
        }

    def print_tables(self) -> None:
        parts = self.state["parts"]
        for name in MEASURES:
            if parts.get(name, {}).get("table"):
                r = parts[name]
                print(f"\n{name} ({r['status']}, {r.get('device')}):\n{r['table']}")
        header = ["part", "status", "device", "result", "epochs", "wall s", "ran beside"]
        rows = [
            [
                name,
                r["status"],
                r.get("device", "-"),
                summary(name, r),
                f"{r['epochs']} of {r['max_epochs']}" if r.get("experiment") and r.get("epochs") else "-",
                r.get("wall_s", "-"),
                ", ".join(r.get("ran_beside", [])) or "-",
            ]
            for name, r in parts.items()
        ]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        print("\n" + "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows]))
        print(f"\nwrote {self.out / RESULT} and {self.out / ARTIFACTS} in {self.elapsed():.0f} s")


def machine() -> dict[str, Any]:
    """What the parts ran on (imported here: ``pack`` runs without torch's import cost)."""
    from benchmarks.common import machine as described

    return described()


def running_parts(running: dict[str, Running]) -> list[Part]:
    return [job.part for job in running.values()]


def stop(process: subprocess.Popen) -> None:
    """End one part's process (it starts none of its own: in-memory data, no loader workers)."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def configured_max_epochs(config: Path) -> int | None:
    if not config.exists():
        return None
    import yaml

    return (yaml.safe_load(config.read_text()).get("trainer") or {}).get("max_epochs")


def last_logged(metrics_csv: Path) -> dict[str, str]:
    """The last value of every column of a run's metrics.csv (a run killed before its metrics.json)."""
    if not metrics_csv.exists():
        return {}
    last: dict[str, str] = {}
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            last.update({key: value for key, value in row.items() if value})
    return last


def summary(name: str, r: dict[str, Any]) -> str:
    """One cell: the part's figure (and, for FIDs, its extractor)."""
    if r["status"] == "skipped":
        return r["reason"]
    headline = r.get("headline") or {}
    if not r.get("results") and headline.get("value") is None:
        if r["status"] in ("failed", "killed"):
            return "no figure (log_tail in the JSON)"
        if "fid_extractor" in r and r["fid_extractor"] is None:
            return f"no {headline.get('metric')}: no lenet checkpoint to extract features"
        return f"no {headline.get('metric')}"
    if name == "overhead":
        lean = [m for m in r.get("results", []) if m["path"] == "lean"]
        return (
            ", ".join(f"{m['case']} {100 * m['overhead']:+.1f}%" for m in lean) + " (lean path vs plain loop)"
        )
    if name == "time_to_accuracy":
        cells = [
            f"batch {m['batch_size']}: " + (f"{m['train_seconds']:.2f} s" if m["reached"] else "not reached")
            for m in r.get("results", [])
        ]
        return "99% on MNIST: " + ", ".join(cells)
    text = f"{headline['metric']} {headline['value']:.4g}"
    reference = (headline.get("reference") or {}).get("value")
    text += f" (seed: {reference})" if reference is not None else ""
    extractor = r.get("fid_extractor")
    if extractor:
        accuracy = extractor["classifier_test_acc"]
        text += f"; extractor: {extractor['checkpoint']} of the lenet part (test/acc {accuracy:.4g})"
    return text


def parse_limit(text: str) -> tuple[str, float]:
    name, _, seconds = text.partition("=")
    if name not in {p.name for p in PARTS} or not seconds:
        raise argparse.ArgumentTypeError(f"{text}: use part=seconds with a part of {[p.name for p in PARTS]}")
    return name, float(seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    packing = commands.add_parser("pack", help="compress the data the parts read into a folder to carry")
    packing.add_argument("source", type=Path, help="a data root, e.g. /work/shared/data")
    packing.add_argument("dest", type=Path, help="e.g. .gpu_data (ignored by git)")
    packing.add_argument("--wheels", action="store_true", help="add wheels of hydra-core, omegaconf, antlr4")
    run = commands.add_parser("run", help="run the parts")
    run.add_argument("--data", required=True, help="a data root, or a folder made by pack")
    run.add_argument("--out", required=True, help="folder for gpu_suite.json and the runs' archive")
    run.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "gpu_suite"), help="scratch folder")
    run.add_argument("--budget-s", type=float, default=540, help="wall-clock budget of the whole suite")
    run.add_argument("--parts", nargs="+", default=[p.name for p in PARTS], choices=[p.name for p in PARTS])
    run.add_argument("--limit", nargs="+", type=parse_limit, default=[], help="part=seconds (process limit)")
    run.add_argument("--jobs", type=int, default=None, help="training runs at a time (default: 3 on a GPU)")
    run.add_argument(
        "--margin-s", type=float, default=60, help="a training run's start-up and test time, outside max_time"
    )
    run.add_argument("--tiny", action="store_true", help="a few CPU steps per part (tests)")
    worker = commands.add_parser("measure", help="(internal) one timing part, in a child process")
    worker.add_argument("part", choices=list(MEASURES))
    worker.add_argument("--result", type=Path, required=True)
    worker.add_argument("--tiny", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "pack":
        pack(args.source, args.dest, args.wheels)
    elif args.command == "measure":
        MEASURES[args.part](args.result, args.tiny)
    else:
        Suite(args).run()


if __name__ == "__main__":
    main()
