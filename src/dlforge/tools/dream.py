"""Make a trained classifier see a chosen class: ``python -m dlforge.dream ckpt_path=... target=7``.

Seed 000's experiment: start from a random-noise picture, back-propagate the classifier's verdict
to the pixels and update them with Adam until it sees the target digit. A whole batch (every
target class x ``restarts`` starting pictures) is optimized at once. Pixels are ``sigmoid(u)`` of
unconstrained parameters ``u``, so they stay in [0, 1]; the objective is the target class's
log-probability (``objective=log_prob``) or its logit (``objective=logit``). Optional regularizers
make the pictures look like images rather than adversarial noise: an L2 pull towards the training
data's mean pixel, total variation, random jitter (shifts) and a periodic Gaussian blur.

Writes ``grid.png`` (one row per target class, one column per restart), ``progress.png``
(restart 0 of each class at evenly spaced steps, noise start first), ``confidences.csv`` and
``dream.json`` (the classifier's probability of the target class for each picture, and of an
optional separately trained ``judge_ckpt`` classifier) and prints a per-class table.

With ``ckpt_path`` a folder of training runs (a ``train.py -m`` sweep dir), every run's classifier
dreams in turn and ``study.md`` / ``study.csv`` tabulate each one's test accuracy against the
judge's confidence in its pictures (seed 000's neuron- and layer-count study; see docs/dream.md).
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torchmetrics.functional.image import total_variation
from torchvision.transforms.functional import gaussian_blur

from dlforge.checkpoint import check_same_data, class_index, load_model, pick_device
from dlforge.cli import hydra_entry
from dlforge.errors import DlforgeError
from dlforge.models import ImageClassifier
from dlforge.outputs import load_runs, markdown, swept_values, write_json
from dlforge.viz import save_grid

log = logging.getLogger("dlforge")

OBJECTIVES = ("log_prob", "logit")


@dataclass
class DreamSettings:
    """How the pictures are optimized (the ``conf/dream.yaml`` values of the same names)."""

    steps: int = 200
    lr: float = 0.05
    objective: str = "log_prob"
    init_scale: float = 1.0  # std of the starting parameters u: sigmoid(N(0, s^2)) noise around grey
    l2: float = 0.0  # weight of the mean squared distance to the training data's mean pixel
    tv: float = 0.0  # weight of the per-pixel total variation (mean absolute neighbour difference)
    jitter: int = 0  # shift the batch by up to this many pixels each step (torch.roll)
    blur_sigma: float = 0.0  # Gaussian blur of this sigma every ``blur_every`` steps
    blur_every: int = 0
    snapshots: int = 8  # pictures kept along the way for progress.png (0: none)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise DlforgeError(f"objective={self.objective} is not one of {', '.join(OBJECTIVES)}")
        if self.steps < 1 or self.lr <= 0:
            raise DlforgeError(f"need steps >= 1 and lr > 0 (got steps={self.steps}, lr={self.lr})")


@dataclass
class Dream:
    images: torch.Tensor  # (N, C, H, W) in [0, 1]
    snapshots: list[tuple[int, torch.Tensor]]  # (step, images) along the way, step 0 = the noise start


def per_pixel_tv(images: torch.Tensor) -> torch.Tensor:
    """Total variation of each image divided by its pixel count (so weights do not depend on size)."""
    return total_variation(images, reduction="none") / images[0].numel()


def dream(
    classifier: ImageClassifier,
    targets: torch.Tensor,
    settings: DreamSettings,
    generator: torch.Generator | None = None,
) -> Dream:
    """Optimize one picture per entry of ``targets`` (class indices) so ``classifier`` sees that class."""
    classifier.eval().requires_grad_(False)
    device = classifier.mean.device
    spec = classifier.hparams.data
    shape = (len(targets), spec["channels"], spec["height"], spec["width"])
    targets = targets.to(device)
    params = (settings.init_scale * torch.randn(shape, generator=generator)).to(device).requires_grad_()
    optimizer = torch.optim.Adam([params], lr=settings.lr)
    mean_pixel = classifier.mean
    keep = (
        set(torch.linspace(0, settings.steps, settings.snapshots).round().long().tolist())
        if settings.snapshots
        else set()
    )
    snapshots = []
    for step in range(settings.steps + 1):
        images = torch.sigmoid(params)
        if step in keep:
            snapshots.append((step, images.detach().cpu()))
        if step == settings.steps:
            break
        seen = images
        if settings.jitter > 0:
            dy, dx = torch.randint(-settings.jitter, settings.jitter + 1, (2,), generator=generator).tolist()
            seen = torch.roll(images, shifts=(dy, dx), dims=(2, 3))
        logits = classifier(seen)
        scores = logits.log_softmax(dim=1) if settings.objective == "log_prob" else logits
        loss = -scores.gather(1, targets[:, None]).squeeze(1)
        if settings.l2 > 0:
            loss = loss + settings.l2 * (images - mean_pixel).square().flatten(1).mean(dim=1)
        if settings.tv > 0:
            loss = loss + settings.tv * per_pixel_tv(images)
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()  # the sum keeps each picture's gradient independent of the batch
        optimizer.step()
        if settings.blur_sigma > 0 and settings.blur_every > 0 and (step + 1) % settings.blur_every == 0:
            with torch.no_grad():
                kernel = 2 * math.ceil(2 * settings.blur_sigma) + 1
                blurred = gaussian_blur(torch.sigmoid(params), [kernel, kernel], [settings.blur_sigma] * 2)
                params.copy_(torch.logit(blurred, eps=1e-4))
    return Dream(images.detach(), snapshots)


@torch.no_grad()
def target_confidence(
    classifier: ImageClassifier, images: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The classifier's probability of each picture's target class, and its predicted class."""
    probs = classifier(images.to(classifier.mean.device)).softmax(dim=1).cpu()
    return probs.gather(1, targets.cpu()[:, None]).squeeze(1), probs.argmax(dim=1)


def parse_targets(target: Any, names: list[str]) -> list[int]:
    """``null`` (every class), a class index or name, or a list of them -> class indices."""
    if target is None:
        return list(range(len(names)))
    items = list(target) if isinstance(target, (list, tuple)) or OmegaConf.is_list(target) else [target]
    return [class_index(item, names, "target") for item in items]


def load_classifier(path: str | Path, device: torch.device) -> ImageClassifier:
    return load_model(path, ImageClassifier, device, what="an image classifier")


def dream_classifier(
    classifier: ImageClassifier,
    class_indices: list[int],
    cfg: DictConfig,
    out: Path,
    judge: ImageClassifier | None = None,
) -> dict[str, Any]:
    """Dream ``cfg.restarts`` pictures of each class; write the grids and the confidences into ``out``."""
    settings = DreamSettings(**{k: cfg[k] for k in DreamSettings.__dataclass_fields__})
    names = classifier.hparams.data["class_names"]
    targets = torch.tensor(class_indices).repeat_interleave(cfg.restarts)
    result = dream(classifier, targets, settings, torch.Generator().manual_seed(cfg.seed))
    confidence, predicted = target_confidence(classifier, result.images, targets)
    out.mkdir(parents=True, exist_ok=True)
    save_grid(result.images, out / "grid.png", nrow=cfg.restarts)
    if result.snapshots:
        first = torch.arange(0, len(targets), cfg.restarts)  # restart 0 of each class
        frames = torch.stack([images[first] for _, images in result.snapshots], dim=1)
        save_grid(frames.flatten(0, 1), out / "progress.png", nrow=len(result.snapshots))
    rows = [
        {
            "target": int(t),
            "target_name": names[t],
            "restart": i % cfg.restarts,
            "confidence": round(float(c), 5),
            "predicted": names[p],
        }
        for i, (t, c, p) in enumerate(zip(targets.tolist(), confidence, predicted.tolist(), strict=True))
    ]
    if judge is not None:
        judged, judge_predicted = target_confidence(judge, result.images, targets)
        for row, c, p in zip(rows, judged, judge_predicted.tolist(), strict=True):
            row.update(judge_confidence=round(float(c), 5), judge_predicted=names[p])
    with open(out / "confidences.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    per_class = {}
    for index in class_indices:
        mine = [r for r in rows if r["target"] == index]
        per_class[names[index]] = {
            "confidence": mean(r["confidence"] for r in mine),
            "hits": mean(r["predicted"] == names[index] for r in mine),
            **(
                {
                    "judge_confidence": mean(r["judge_confidence"] for r in mine),
                    "judge_hits": mean(r["judge_predicted"] == names[index] for r in mine),
                }
                if judge is not None
                else {}
            ),
        }
    summary = {
        "confidence": mean(r["confidence"] for r in rows),
        "hits": mean(r["predicted"] == r["target_name"] for r in rows),
        **(
            {
                "judge_confidence": mean(r["judge_confidence"] for r in rows),
                "judge_hits": mean(r["judge_predicted"] == r["target_name"] for r in rows),
            }
            if judge is not None
            else {}
        ),
        "per_class": per_class,
        "grid": str((out / "grid.png").resolve()),
        "mean_tv": round(float(per_pixel_tv(result.images).mean()), 5),
    }
    write_json(
        out / "dream.json",
        {**summary, "settings": settings.__dict__, "restarts": cfg.restarts, "seed": cfg.seed},
    )
    return {**summary, "images": result.images.cpu()}


def mean(values: Any) -> float:
    values = [float(v) for v in values]
    return round(sum(values) / len(values), 5)


def class_table(summary: dict[str, Any]) -> str:
    judged = "judge_confidence" in summary
    header = ["class", "confidence", "hits", *(["judge confidence", "judge hits"] if judged else [])]
    rows = [[name, *(f"{v[k]:.4f}" for k in header_keys(judged))] for name, v in summary["per_class"].items()]
    rows.append(["all", *(f"{summary[k]:.4f}" for k in header_keys(judged))])
    return markdown(header, rows)


def header_keys(judged: bool) -> list[str]:
    return ["confidence", "hits", *(["judge_confidence", "judge_hits"] if judged else [])]


def study(
    cfg: DictConfig, sweep: Path, out: Path, judge: ImageClassifier | None, device: torch.device
) -> str:
    """Dream with every run's classifier below ``sweep``; tabulate accuracy against confidences."""
    runs = load_runs(sweep)
    swept, values = swept_values(runs)
    header = [
        *swept,
        "test/acc",
        "parameters",
        "confidence",
        *(["judge confidence", "judge hits"] if judge else []),
        "grid",
    ]
    rows, firsts = [], []
    for run, value in zip(runs, values, strict=True):
        cells = [value[k] for k in swept]
        if run.get("status") == "failed":
            rows.append([*cells, "failed", "", "", *([""] * 2 if judge else []), run.get("error", "")])
            continue
        run_dir = sweep / run["dir"]
        ckpt = run.get("best_checkpoint") or run.get("last_checkpoint")
        ckpt = ckpt if ckpt and Path(ckpt).is_file() else run_dir / "checkpoints" / "last.ckpt"
        classifier = load_classifier(ckpt, device)
        if judge is not None:
            check_same_data(classifier, judge.hparams.data, f"judge_ckpt={cfg.judge_ckpt}")
        classes = parse_targets(cfg.target, classifier.hparams.data["class_names"])
        target_dir = out / run["dir"]
        summary = dream_classifier(classifier, classes, cfg, target_dir, judge)
        acc = run.get("metrics", {}).get("test/acc")
        rows.append(
            [
                *cells,
                f"{acc:.4f}" if acc is not None else "",
                str(sum(p.numel() for p in classifier.parameters())),
                f"{summary['confidence']:.4f}",
                *([f"{summary['judge_confidence']:.4f}", f"{summary['judge_hits']:.4f}"] if judge else []),
                str(target_dir.relative_to(out) / "grid.png"),
            ]
        )
        firsts.append(summary.pop("images")[:: cfg.restarts])  # restart 0 of each class
        log.info("%s: confidence %.4f", run["dir"], summary["confidence"])
    table = markdown(header, rows)
    (out / "study.md").write_text(table)
    with open(out / "study.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    if firsts:
        save_grid(torch.cat(firsts), out / "study_grid.png", nrow=len(firsts[0]))
    return table


def run(cfg: DictConfig) -> dict[str, Any] | str:
    """Dream with ``cfg.ckpt_path`` (a checkpoint: its summary; a sweep dir: the study table)."""
    device = pick_device(cfg.device)
    out = Path(cfg.paths.output_dir)
    judge = load_classifier(cfg.judge_ckpt, device) if cfg.judge_ckpt else None
    source = Path(cfg.ckpt_path).expanduser()
    if source.is_dir():
        table = study(cfg, source, out, judge, device)
        print(table, end="")
        log.info("study table: %s", out / "study.md")
        return table
    classifier = load_classifier(source, device)
    if judge is not None:
        check_same_data(classifier, judge.hparams.data, f"judge_ckpt={cfg.judge_ckpt}")
    classes = parse_targets(cfg.target, classifier.hparams.data["class_names"])
    summary = dream_classifier(classifier, classes, cfg, out, judge)
    print(class_table(summary), end="")
    log.info("grid: %s; confidences: %s", summary["grid"], out / "confidences.csv")
    return summary


@hydra_entry("dream")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
