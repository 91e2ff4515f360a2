"""Dreaming with a classifier: optimizing its input from noise until it sees a chosen class."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from dlforge.checkpoint import load_model
from dlforge.dream import DreamSettings, dream, parse_targets, per_pixel_tv, run, target_confidence
from dlforge.errors import DlforgeError
from dlforge.models import ImageClassifier
from tests.conftest import FAST
from tests.test_quality import classifier_run  # noqa: F401  (module fixture: a LeNet checkpoint)

TARGETS = torch.arange(10).repeat_interleave(2)


@pytest.fixture(scope="module")
def classifier(classifier_run):  # noqa: F811
    return load_model(classifier_run[0], ImageClassifier)


def dreamed(classifier, **settings) -> torch.Tensor:
    settings = {"steps": 25, "lr": 0.1, "snapshots": 0, **settings}
    return dream(classifier, TARGETS, DreamSettings(**settings), torch.Generator().manual_seed(0)).images


@pytest.mark.parametrize("objective", ["log_prob", "logit"])
def test_dream_raises_the_target_probability_from_the_noise_start(classifier, objective) -> None:
    result = dream(
        classifier,
        TARGETS,
        DreamSettings(steps=25, lr=0.1, objective=objective, snapshots=2),
        torch.Generator().manual_seed(0),
    )
    (first, start), (last, end) = result.snapshots
    assert (first, last) == (0, 25) and torch.equal(end, result.images)
    before, _ = target_confidence(classifier, start, TARGETS)
    after, predicted = target_confidence(classifier, end, TARGETS)
    assert after.mean() > before.mean() + 0.3
    assert (predicted == TARGETS).float().mean() >= 0.75
    assert end.min() >= 0 and end.max() <= 1 and end.shape == (20, 1, 28, 28)


def test_total_variation_weight_smooths_the_pictures(classifier) -> None:
    assert per_pixel_tv(dreamed(classifier, tv=5.0)).mean() < 0.5 * per_pixel_tv(dreamed(classifier)).mean()


def test_l2_weight_pulls_pixels_to_the_data_mean(classifier) -> None:
    def distance(images: torch.Tensor) -> torch.Tensor:
        return (images - classifier.mean).square().mean()

    assert distance(dreamed(classifier, l2=20.0)) < 0.5 * distance(dreamed(classifier))


def test_blur_and_jitter_change_the_result(classifier) -> None:
    plain = dreamed(classifier)
    blurred = dreamed(classifier, blur_sigma=1.0, blur_every=5)
    assert per_pixel_tv(blurred).mean() < per_pixel_tv(plain).mean()
    jittered = dreamed(classifier, jitter=2)
    assert not torch.allclose(jittered, plain, atol=1e-3)
    assert torch.equal(jittered, dreamed(classifier, jitter=2))  # seeded: the same shifts again


def test_targets_by_index_name_or_all() -> None:
    names = ["cat", "dog", "frog"]
    assert parse_targets(None, names) == [0, 1, 2]
    assert parse_targets("dog", names) == [1]
    assert parse_targets([2, "cat"], names) == [2, 0]
    with pytest.raises(DlforgeError, match=r"use an index 0-2"):
        parse_targets(7, names)


def test_settings_are_checked() -> None:
    with pytest.raises(DlforgeError, match="objective=prob"):
        DreamSettings(objective="prob")


def test_dream_cli_writes_grid_and_confidences(run_cli, classifier_run, tmp_path: Path) -> None:  # noqa: F811
    ckpt = classifier_run[0]
    result = run_cli(
        "-m",
        "dlforge.dream",
        f"ckpt_path={ckpt}",
        "target=[3,7]",
        "restarts=3",
        "steps=20",
        f"judge_ckpt={ckpt}",
        "hydra.run.dir=outputs/dream",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "outputs" / "dream"
    assert Image.open(out / "grid.png").size == (
        3 * 30 + 2,
        2 * 30 + 2,
    )  # a row per class, a column per restart
    assert Image.open(out / "progress.png").size == (8 * 30 + 2, 2 * 30 + 2)  # 8 snapshots of restart 0
    with open(out / "confidences.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["target_name"], r["restart"]) for r in rows] == [(t, str(i)) for t in "37" for i in range(3)]
    summary = json.loads((out / "dream.json").read_text())
    assert set(summary["per_class"]) == {"3", "7"}
    assert summary["judge_confidence"] == summary["confidence"]  # the same checkpoint judged itself
    assert abs(summary["confidence"] - sum(float(r["confidence"]) for r in rows) / 6) < 1e-4
    assert "| 7 |" in result.stdout and "judge confidence" in result.stdout


def test_study_over_a_sweep_of_classifier_variants(run_main, make_cfg, tmp_path: Path) -> None:
    sweep = run_main(
        "train.py",
        "-m",
        "experiment=seed000_dream_classifiers",
        *FAST,
        "trainer.max_epochs=1",
        "data.train_subset=null",
        "model.net.blocks=[[4]],[[4],[4,4]]",
        "model.net.hidden=[16]",
        "hydra.sweep.dir=outputs/sweep",
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    judge = tmp_path / "outputs" / "sweep" / "0" / "checkpoints" / "last.ckpt"
    cfg = make_cfg(
        f"ckpt_path={tmp_path / 'outputs' / 'sweep'}",
        f"judge_ckpt={judge}",
        "restarts=1",
        "steps=5",
        config_name="dream",
    )
    run(cfg)  # in-process: what the Hydra entry point runs
    study = Path(cfg.paths.output_dir)
    table = (study / "study.md").read_text().splitlines()
    assert table[0].startswith("| model.net.blocks | test/acc | parameters | confidence | judge confidence")
    assert [row.split(" | ")[0] for row in table[2:]] == ["| [[4]]", "| [[4],[4,4]]"]
    assert (study / "1" / "grid.png").exists() and (study / "1" / "confidences.csv").exists()
    assert Image.open(study / "study_grid.png").size == (10 * 30 + 2, 2 * 30 + 2)  # a row per variant
