"""Seq2seq pictures: attention heat-maps each epoch, and test accuracy by word length."""

from __future__ import annotations

import csv
from typing import Any

import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from pytorch_lightning.callbacks import Callback

from dlforge.data.piglatin import decode_tokens, word_lengths
from dlforge.models.seq2seq import Seq2Seq
from dlforge.registry import register_callbacks
from dlforge.viz import evaluating, log_image, save_figure


def attention_figure(
    src: torch.Tensor, tgt: torch.Tensor, tokens: torch.Tensor, weights: torch.Tensor
) -> Figure:
    """One heat-map per word: output letters (rows) over input letters (columns), titled with the
    word, the model's output, and the target when the output is wrong."""
    words, outputs, targets = decode_tokens(src), decode_tokens(tokens), decode_tokens(tgt)
    columns = min(3, len(words))
    rows = -(-len(words) // columns)
    fig = Figure(figsize=(3.2 * columns, 2.9 * rows))
    for i, (word, output, target) in enumerate(zip(words, outputs, targets, strict=True)):
        ax = fig.add_subplot(rows, columns, i + 1)
        steps = min(len(output) + 1, weights.size(1))  # and EOS, when there was room for it
        ax.imshow(
            weights[i, :steps, : len(word)].cpu().numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto"
        )
        ax.set_xticks(range(len(word)), list(word))
        ax.set_yticks(range(steps), [*output, "</s>"][:steps])
        ax.tick_params(labelsize=7, length=0)
        mark = "" if output == target else f" (want {target})"
        ax.set_title(f"{word} -> {output}{mark}", fontsize=8, color="black" if not mark else "firebrick")
    fig.tight_layout()
    return fig


class AttentionMaps(Callback):
    """``attention/epoch_NNN.png`` each ``every_n_epochs`` and ``attention/test.png``: where the
    decoder looked for each output letter of the first ``n`` validation (test) words; also sent to
    the loggers."""

    def __init__(self, n: int = 6, every_n_epochs: int = 1) -> None:
        self.n = n
        self.every_n_epochs = every_n_epochs
        self.words: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def _keep(self, stage: str, batch: Any, batch_idx: int) -> None:
        if batch_idx == 0 and stage not in self.words:
            self.words[stage] = (batch[0][: self.n].detach(), batch[1][: self.n].detach())

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._keep("val", batch, batch_idx)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._keep("test", batch, batch_idx)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: Seq2Seq) -> None:
        if (
            trainer.sanity_checking
            or "val" not in self.words
            or (trainer.current_epoch + 1) % self.every_n_epochs
        ):
            return
        self._save(trainer, pl_module, "val", f"epoch_{trainer.current_epoch:03d}.png")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: Seq2Seq) -> None:
        if "test" in self.words:
            self._save(trainer, pl_module, "test", "test.png")
            del self.words["test"]

    def _save(self, trainer: pl.Trainer, pl_module: Seq2Seq, stage: str, name: str) -> None:
        src, tgt = self.words[stage]
        src = src[:, : int(word_lengths(src).max())]  # the widest of these words, not of the split
        with evaluating(pl_module):
            tokens, weights = pl_module.decode(src)
        if trainer.is_global_zero:
            image = save_figure(
                attention_figure(src, tgt, tokens, weights), pl_module.run_dir / "attention" / name
            )
            log_image(trainer, f"{stage}/attention", image)


class LengthAccuracyPlot(Callback):
    """At test end, ``accuracy_by_length.csv`` and ``.png``: exact-match accuracy on unseen words by
    their length, with the longest training word marked."""

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: Seq2Seq) -> None:
        accuracy, total = pl_module.test_by_length.compute().cpu(), pl_module.test_by_length.total.cpu()
        if not trainer.is_global_zero or not total.any():
            return
        lengths = torch.nonzero(total).flatten().tolist()
        longest = pl_module.hparams.data["max_train_len"]
        with open(pl_module.run_dir / "accuracy_by_length.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["letters", "words", "accuracy", "longer_than_training"])
            writer.writerows([n, int(total[n]), f"{accuracy[n]:.4f}", n > longest] for n in lengths)
        fig = Figure(figsize=(6, 3.2))
        ax = fig.add_subplot()
        ax.plot(lengths, [accuracy[n] for n in lengths], marker="o")
        ax.axvline(longest + 0.5, color="grey", linestyle="--", label=f"longest training word ({longest})")
        ax.set(xlabel="letters", ylabel="exact-match accuracy", ylim=(0, 1.02), title="unseen test words")
        ax.legend(loc="lower left")
        log_image(
            trainer, "test/accuracy_by_length", save_figure(fig, pl_module.run_dir / "accuracy_by_length.png")
        )


@register_callbacks(Seq2Seq)
def seq2seq_callbacks(hparams: dict[str, Any], options: dict[str, Any]) -> list[Callback]:
    pictures = hparams.get("pictures")
    return [LengthAccuracyPlot(), *([] if pictures is None else [AttentionMaps(**pictures)])]
