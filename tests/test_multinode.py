"""Training on more than one machine, for real: two local "nodes" (two processes on 127.0.0.1 that meet at
``MASTER_ADDR:MASTER_PORT``, gloo) train as one, as the README's commands start them; and under torchrun.

The processes run in sessions of their own and are killed at teardown, whatever happened, with time limits
on every wait (``wait_all``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import REPO, once_per_session

#: the issue's own words for two nodes of one CPU process each
NODES = (
    "trainer=ddp_multinode",
    "trainer.num_nodes=2",
    "trainer.devices=1",
    "trainer.accelerator=cpu",
    "trainer.strategy=ddp",
)
#: a few steps (LeNet: 3 epochs of 4 steps, 12 optimizer steps)
SHORT = (
    "trainer.limit_val_batches=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_model_summary=false",
    "data.val_size=32",
    "callbacks.progress_bar=null",
    "test=false",
)
#: MNIST noting each node's downloads and set-ups, and each rank's final weights
JOURNALED = ("data._target_=tests.multinode_probe.JournaledMNIST",)
LENET = ("model=lenet", *JOURNALED, *SHORT, "trainer.max_epochs=3", "trainer.limit_train_batches=4")
WAIT_S = 240


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_env(data_dir: Path, cache: Path, **extra: str) -> dict[str, str]:
    """The environment of a node's process: ours, without any launcher's or cluster's variables."""
    launcher = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "GROUP_RANK")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in launcher and not k.startswith(("SLURM_", "TORCHELASTIC_", "PL_"))
    }
    return {
        **env,
        "DATA_DIR": str(data_dir),
        "DLFORGE_CACHE": str(cache),
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


class Processes:
    """Processes started in sessions of their own (a torchrun agent with its workers is one session),
    output to a log file each; :meth:`kill_all` ends every session still running."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def start(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
        cwd.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as out:
            proc = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started.append(proc)
        return proc

    def wait_all(self, timeout: float = WAIT_S) -> list[int]:
        try:
            return [proc.wait(timeout=timeout) for proc in self.started]
        except subprocess.TimeoutExpired:
            self.kill_all()
            pytest.fail(f"processes still running after {timeout} s")

    def kill_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def processes() -> Iterator[Processes]:
    running = Processes()
    try:
        yield running
    finally:
        running.kill_all()


def two_nodes(processes: Processes, folder: Path, data_dir: Path, *args: str) -> Path:
    """Start node 0 and node 1 of one run, as the README's two commands do; its run dir."""
    run, port = folder / "run", free_port()
    for rank in (0, 1):
        env = node_env(
            data_dir, folder / "cache", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2",
            NODE_RANK=str(rank),
        )  # fmt: skip
        argv = [sys.executable, str(REPO / "train.py"), *args, f"hydra.run.dir={run}"]
        processes.start(argv, env, folder / "cwd", folder / f"node{rank}.log")
    return run


def rank_weights(folder: Path) -> tuple[str, str]:
    """The probe callback that saves each rank's final weights in ``folder``."""
    return (
        "+callbacks.rank_weights._target_=tests.multinode_probe.RankWeights",
        f"+callbacks.rank_weights.folder={folder}",
    )


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state"]


def journal(path: Path) -> list[tuple[int, str, float]]:
    rows = [line.split() for line in path.read_text().splitlines()]
    return [(int(node), what, float(when)) for node, what, when in rows]


@pytest.fixture(scope="session")
def lenet_runs(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Any]:
    """LeNet on two nodes (16 images a node a step: a global batch of 32, one download for both nodes)
    and, at the same time, on one process with batches of 32 (Lightning's DDP of one process, so that it
    draws its batches as the two nodes do: one seeded permutation, 32 images a step)."""

    def build(folder: Path) -> dict[str, Any]:
        running = Processes()
        try:
            run = two_nodes(
                running, folder, data_dir, *NODES, *LENET, "data.batch_size=16", "logger=many",
                "prepare_data_per_node=false", f"+data.journal={folder / 'journal.txt'}",
                *rank_weights(folder / "weights"),
            )  # fmt: skip
            single = folder / "single"
            running.start(
                [
                    sys.executable, str(REPO / "train.py"), "trainer=ddp", "trainer.devices=1",
                    "trainer.accelerator=cpu", *LENET, "data.batch_size=32",
                    f"+data.journal={single / 'j.txt'}", *rank_weights(single / "weights"),
                    f"hydra.run.dir={single / 'run'}",
                ],
                node_env(data_dir, folder / "cache_single", MASTER_PORT=str(free_port())),
                single,
                single / "single.log",
            )  # fmt: skip
            codes = running.wait_all()
        finally:
            running.kill_all()
        logs = {p.stem: p.read_text()[-3000:] for p in [*folder.glob("node*.log"), single / "single.log"]}
        return {"codes": codes, "run": str(run), "folder": str(folder), "logs": logs}

    return once_per_session(tmp_path_factory, "multinode_lenet", build)


def test_two_nodes_train_lenet_as_one_process_on_the_global_batch(lenet_runs: dict[str, Any]) -> None:
    assert lenet_runs["codes"] == [0, 0, 0], lenet_runs["logs"]
    folder, run = Path(lenet_runs["folder"]), Path(lenet_runs["run"])
    rank0, rank1 = weights(folder / "weights" / "rank0.pt"), weights(folder / "weights" / "rank1.pt")
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # DDP kept the two nodes' copies equal
    single = weights(folder / "single" / "weights" / "rank0.pt")
    # two nodes x 16 images = one process x 32 images, up to the order of float sums (Adam's normalized
    # steps of 1e-3 magnify it in a few weights to ~5e-6; batches of 16 alone would be ~1e-3 away)
    for key, value in rank0.items():
        assert torch.allclose(value, single[key], rtol=0, atol=1e-5), key

    summary = json.loads((run / "metrics.json").read_text())
    reference = json.loads((folder / "single" / "run" / "metrics.json").read_text())
    assert summary["status"] == "ok" and summary["device"] == "cpu x2"
    assert summary["global_step"] == reference["global_step"] == 12 and summary["epochs"] == 3
    assert summary["metrics"]["val/loss"] == pytest.approx(reference["metrics"]["val/loss"], rel=1e-4)
    # only global rank 0 wrote: one metrics.json, one TensorBoard event file, nothing outside the run dir
    assert [p.relative_to(folder) for p in folder.rglob("metrics.json") if "single" not in p.parts] == [
        run.relative_to(folder) / "metrics.json"
    ]
    assert len(list((run / "tensorboard").rglob("events.out.tfevents.*"))) == 1
    assert (run / ".hydra" / "overrides.yaml").is_file()  # Hydra's records: written by node 0 alone
    assert not list((folder / "cwd").iterdir())
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 12
    assert all(torch.equal(last["state_dict"][k], v) for k, v in rank0.items())

    # prepare_data_per_node=false: one download for the job, by global rank 0, set up before node 1 starts
    notes = journal(folder / "journal.txt")
    assert {node for node, what, _ in notes if what == "prepare"} == {0}
    first_end = min(t for node, what, t in notes if node == 0 and what == "setup_end")
    assert first_end <= min(t for node, what, t in notes if node == 1 and what == "setup_start")


def test_two_nodes_train_the_dcgan_with_manual_optimization(
    processes: Processes, tmp_path: Path, data_dir: Path
) -> None:
    """The GAN steps its two optimizers itself (manual optimization): the nodes' gradients must still be
    averaged. (Not compared with one process: each node's batch-norm statistics are over its own 16
    images, so two nodes of 16 are not one process of 32, by design of DDP.) Each rank draws its own noise."""
    run = two_nodes(
        processes, tmp_path, data_dir, *NODES, "model=dcgan", "model.net.features=16", *JOURNALED, *SHORT,
        "trainer.max_epochs=1", "trainer.limit_train_batches=3", "data.batch_size=16",
        f"+data.journal={tmp_path / 'journal.txt'}", *rank_weights(tmp_path / "weights"), "logger=wandb",
        "logger.wandb.mode=offline",
    )  # fmt: skip
    codes = processes.wait_all()
    assert codes == [0, 0], (tmp_path / "node0.log").read_text()[-3000:]
    # one W&B run for the job, by global rank 0, with the metrics
    records = list(run.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(records) == 1 and not list(tmp_path.glob("cwd/**/*.wandb"))
    assert b"train/g_loss" in records[0].read_bytes()
    rank0, rank1 = weights(tmp_path / "weights" / "rank0.pt"), weights(tmp_path / "weights" / "rank1.pt")
    parameters = torch.load(tmp_path / "weights" / "rank0.pt", weights_only=True)["parameters"]
    assert any(k.startswith("generator.") for k in parameters)
    assert any(k.startswith("discriminator.") for k in parameters)
    assert all(torch.equal(rank0[k], rank1[k]) for k in parameters)  # every weight, both networks
    noises = [torch.load(tmp_path / "weights" / f"rank{r}.pt", weights_only=True)["noise"] for r in (0, 1)]
    assert not torch.equal(*noises)  # the ranks' fakes differ: not the same 16 images twice
    # batch-norm running statistics follow each node's own batches (D: its real images; G: its own
    # noise); the networks run outside DDP's forward, which would copy rank 0's buffers; the
    # checkpoint has rank 0's
    differ = {k for k in rank0 if not torch.equal(rank0[k], rank1[k])}
    assert differ and differ <= {k for k in rank0 if ".running_" in k}
    assert {"clusters.centres", "clusters.counts"} <= set(rank0) - differ  # one k-means for both nodes
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["device"] == "cpu x2" and summary["kind"] == "gan"
    assert summary["global_step"] == torch.load(tmp_path / "weights" / "rank0.pt")["step"] > 0
    # prepare_data_per_node=true (the default): each node downloads for itself
    assert {node for node, what, _ in journal(tmp_path / "journal.txt") if what == "prepare"} == {0, 1}


def lose_node(step: int) -> tuple[str, str]:
    """The probe callback that SIGKILLs global rank 1 at ``step`` (its first attempt only)."""
    return "+callbacks.lose._target_=tests.multinode_probe.LoseNode", f"+callbacks.lose.step={step}"


def test_a_lost_node_without_an_elastic_launcher_ends_in_one_line(
    processes: Processes, tmp_path: Path, data_dir: Path
) -> None:
    run = two_nodes(processes, tmp_path, data_dir, *NODES, *LENET, "data.batch_size=16", *lose_node(6))
    codes = processes.wait_all()
    assert codes == [2, -signal.SIGKILL]
    last = run / "checkpoints" / "last.ckpt"
    lines = (tmp_path / "node0.log").read_text().strip().splitlines()
    assert lines[-1].startswith("error: rank 1 of 2 stopped answering at step 6 (epoch 1; "), lines[-5:]
    assert f"resume with the same command on every node and ckpt_path={last}" in lines[-1]
    assert "Traceback" not in "\n".join(lines)
    # nothing looks finished: no metrics.json, and last.ckpt is whole: the end of the first epoch
    assert not (run / "metrics.json").exists()
    assert torch.load(last, weights_only=True)["global_step"] == 4
    assert not list(run.rglob("*.tmp*"))


def test_torchrun_restarts_after_a_lost_node_from_last_ckpt(
    processes: Processes, tmp_path: Path, data_dir: Path, lenet_runs: dict[str, Any]
) -> None:
    """Two torchrun agents (one a node), one restart allowed; node 1's process is killed mid-epoch 2. Both
    nodes start again from ``last.ckpt`` (``ckpt_path=last``) and end where an uninterrupted run ends."""
    torchrun = Path(sys.executable).with_name("torchrun")
    port, run = free_port(), tmp_path / "run"
    for rank in (0, 1):
        argv = [
            str(torchrun), "--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{port}", f"--rdzv-id=test{port}", "--local-addr=127.0.0.1",
            "--max-restarts=1", str(REPO / "train.py"), *NODES, *LENET, "data.batch_size=16",
            f"+data.journal={tmp_path / 'journal.txt'}", *rank_weights(tmp_path / "weights"), *lose_node(6),
            "ckpt_path=last", f"hydra.run.dir={run}",
        ]  # fmt: skip
        env = node_env(data_dir, tmp_path / "cache", TORCH_DISABLE_SHARE_RDZV_TCP_STORE="1")
        processes.start(argv, env, tmp_path / "cwd", tmp_path / f"node{rank}.log")
    codes = processes.wait_all()
    logs = [(tmp_path / f"node{rank}.log").read_text() for rank in (0, 1)]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert sum("exitcode: -9" in log for log in logs) == 1  # the lost node's process
    restored = f"Restoring states from the checkpoint path at {run / 'checkpoints' / 'last.ckpt'}"
    assert restored in "".join(logs)
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["global_step"] == 12 and summary["epochs"] == 3 and summary["device"] == "cpu x2"
    uninterrupted = weights(Path(lenet_runs["folder"]) / "weights" / "rank0.pt")
    for rank in (0, 1):
        restarted = weights(tmp_path / "weights" / f"rank{rank}.pt")
        assert all(torch.allclose(restarted[k], v, rtol=0, atol=1e-6) for k, v in uninterrupted.items())


def test_nodes_without_one_run_dir_are_refused(run_main: Callable[..., Any], tmp_path: Path) -> None:
    result = run_main("train.py", *NODES, "model=lenet")
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: trainer.num_nodes=2: each process would name the run dir by its own clock")
    assert "hydra.run.dir=outputs/train/<name>" in line
    assert not [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    ("env", "writes"),
    [
        ({}, True),
        ({"NODE_RANK": "0", "RANK": "0"}, True),
        ({"NODE_RANK": "1"}, False),  # the README's second node
        ({"RANK": "3", "LOCAL_RANK": "1"}, False),  # torchrun
        ({"SLURM_PROCID": "1"}, False),  # srun's second task
    ],
)
def test_only_the_jobs_rank_zero_writes_hydras_records(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], writes: bool
) -> None:
    """Every node runs Hydra on one shared run dir; its ``.hydra/`` records come from global rank 0."""
    from hydra import compose, initialize_config_dir

    from dlforge import CONF_DIR

    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", return_hydra_config=True)
    assert cfg.hydra.output_subdir == (".hydra" if writes else None)
