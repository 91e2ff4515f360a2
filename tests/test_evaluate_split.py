"""``evaluate`` tests a checkpoint on the split it trained on: the data options come from the checkpoint,
so a run with another seed than evaluate's 42 is evaluated on its own test set, and an override that
would change the split is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlforge.checkpoint import read_checkpoint

#: A tiny RNN on the generated first-token task, whose test sequences are drawn from the seed.
TINY = (
    "data=first_token",
    "model=rnn",
    "data.length=6",
    "data.train_size=64",
    "data.val_size=32",
    "data.test_size=48",
    "data.batch_size=16",
    "data.eval_batch_size=16",
    "trainer=cpu",
    "trainer.max_epochs=1",
    "trainer.enable_model_summary=false",
)


@pytest.fixture
def seed7_run(run_main, tmp_path: Path) -> dict:
    """``python train.py ... seed=7``: its metrics.json record."""
    result = run_main("train.py", *TINY, "seed=7", "hydra.run.dir=outputs/seed7")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((tmp_path / "outputs" / "seed7" / "metrics.json").read_text())


def test_evaluate_reproduces_a_seed_7_runs_test_metrics_exactly(run_main, seed7_run: dict, tmp_path: Path):
    checkpoint = seed7_run["best_checkpoint"]
    stored = read_checkpoint(checkpoint)["dlforge"]["data"]
    assert (stored["seed"], stored["test_size"], stored["length"]) == (7, 48, 6)

    result = run_main("-m", "dlforge.evaluate", f"ckpt_path={checkpoint}", "data=first_token", "trainer=cpu")
    assert result.returncode == 0, result.stderr[-3000:]
    [evaluated] = (tmp_path / "outputs" / "evaluate").glob("*/metrics.json")
    metrics = json.loads(evaluated.read_text())["metrics"]
    tests = {name: value for name, value in seed7_run["metrics"].items() if name.startswith("test/")}
    assert tests and {name: metrics[name] for name in tests} == tests  # the same numbers, exactly
    # evaluate's own seed (42), data.length (100) and sizes were overruled by the checkpoint's, and said so
    said = result.stdout + result.stderr
    assert "data.seed=7 (not 42)" in said and "data.length=6 (not 100)" in said

    # the test set of seed 42 is another one: the figures would differ
    other = run_main(
        "train.py",
        *TINY,
        "data.seed=42",
        "train=false",
        f"ckpt_path={checkpoint}",
        "hydra.run.dir=outputs/42",
    )
    assert other.returncode == 0, other.stderr[-3000:]
    record = json.loads((tmp_path / "outputs" / "42" / "metrics.json").read_text())
    assert record["metrics"]["test/loss"] != tests["test/loss"]


def test_an_override_that_changes_the_split_is_refused(run_main, seed7_run: dict, tmp_path: Path) -> None:
    checkpoint = seed7_run["best_checkpoint"]
    for override, trained in (("data.seed=3", "data.seed=7"), ("data.test_size=10", "data.test_size=48")):
        result = run_main(
            "-m", "dlforge.evaluate", f"ckpt_path={checkpoint}", "data=first_token", "trainer=cpu", override
        )
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            f"error: {override} would test on another split than the checkpoint trained on ({trained}); "
            "leave it out: evaluate takes the data options from the checkpoint"
        ]
    assert not list((tmp_path / "outputs" / "evaluate").glob("*/metrics.json"))
    # where the data lives and how it is batched are the command's
    result = run_main(
        "-m", "dlforge.evaluate", f"ckpt_path={checkpoint}", "data=first_token", "trainer=cpu",
        "data.eval_batch_size=5",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
