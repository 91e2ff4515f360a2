"""Word-to-word translation (English -> pig latin): a character-level encoder-decoder network trained
with teacher forcing, decoded greedily or by beam search, scored on words it never saw."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import MaxMetric, MeanMetric, Metric
from torchmetrics.text import CharErrorRate
from torchmetrics.utilities import dim_zero_cat

from dlforge.data.piglatin import (
    BOS,
    EOS,
    PAD,
    REPEATED,
    SYNTHETIC,
    UNSEEN,
    decode_tokens,
    output_width,
    word_lengths,
)
from dlforge.models.base import DlforgeModule
from dlforge.nets import build_net
from dlforge.nets.seq2seq import Seq2SeqNet, beam_search
from dlforge.registry import register_model

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class SentenceAccuracy(Metric):
    """The share of sentences whose every word is right, from (sentence index, word right) pairs."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("sentence", default=[], dist_reduce_fx="cat")
        self.add_state("wrong", default=[], dist_reduce_fx="cat")

    def update(self, sentence: torch.Tensor, correct: torch.Tensor) -> None:
        self.sentence.append(sentence)
        self.wrong.append((~correct).long())

    def compute(self) -> torch.Tensor:
        sentence, wrong = dim_zero_cat(self.sentence), dim_zero_cat(self.wrong)
        errors = torch.zeros(int(sentence.max()) + 1, dtype=torch.long, device=sentence.device)
        errors.index_add_(0, sentence, wrong)
        return (errors[sentence.unique()] == 0).float().mean()


class LengthAccuracy(Metric):
    """Exact-match accuracy by word length: ``compute()`` gives (max_len + 1,) accuracies (NaN for
    lengths never seen) and ``total`` the words of each length."""

    full_state_update = False

    def __init__(self, max_len: int) -> None:
        super().__init__()
        self.add_state("correct", default=torch.zeros(max_len + 1), dist_reduce_fx="sum")
        self.add_state("total", default=torch.zeros(max_len + 1), dist_reduce_fx="sum")

    def update(self, lengths: torch.Tensor, correct: torch.Tensor) -> None:
        lengths = lengths.clamp(max=len(self.total) - 1)
        self.total.index_add_(0, lengths, torch.ones_like(lengths, dtype=self.total.dtype))
        self.correct.index_add_(0, lengths, correct.to(self.correct.dtype))

    def compute(self) -> torch.Tensor:
        return self.correct / self.total


def capitals(alphabet: str) -> int:
    """How many letters ``alphabet`` has in two cases: its first half small letters, its second half
    the same letters in capitals (``model.net.cased`` needs such an alphabet)."""
    half = len(alphabet) // 2
    if not half or alphabet[half:] != alphabet[:half].upper() or alphabet[:half] == alphabet[half:]:
        raise ValueError("model.net.cased=true needs an alphabet of small letters then their capitals")
    return half


@register_model("seq2seq")
class Seq2Seq(DlforgeModule):
    """A character-level encoder-decoder over word pairs ``(letters, target ending in EOS, sentence)``.

    Training minimizes the cross-entropy of each target token given the input word and the target
    so far (teacher forcing; ``teacher_forcing`` < 1 feeds the model's own guesses at that rate).
    Validation and test decode greedily (or by beam search of width ``beam`` at test) and score
    exact words: ``val/word_acc``, ``val/cer``; ``test/word_acc`` and ``test/cer`` on unseen words no
    longer than the longest training word, ``test/word_acc_longer`` on longer ones,
    ``test/word_acc_synthetic`` on made-up long words, ``test/word_acc_repeated`` on words with a run
    of one letter, ``test/word_acc_len_NN`` by length (unseen words, real and made-up),
    ``test/sentence_acc`` on sentences (right when every word is).

    Args:
        net: ``{"name": gru_seq2seq | transformer_seq2seq, **its options}``; ``cased: true``: a
            capital's embedding and logit are its small letter's plus the capital case's
            (:class:`~dlforge.nets.seq2seq.CasedEmbedding`).
        data: the data's ``spec`` (alphabet, ``max_train_len``, ``max_word_len``).
        teacher_forcing: probability of feeding the true previous token while training (GRU only).
        label_smoothing: cross-entropy label smoothing.
        beam: beam width of test decoding (1: greedy).
        pictures: ``{n, every_n_epochs}`` of the attention heat-maps (null: none).
        training: ``optimizer``, ``scheduler``, ``monitor``, ``monitor_mode``
            (:class:`~dlforge.models.base.DlforgeModule`).
    """

    default_monitor = "val/word_acc"
    default_monitor_mode = "max"

    def __init__(
        self,
        net: dict[str, Any],
        data: dict[str, Any],
        teacher_forcing: float = 1.0,
        label_smoothing: float = 0.0,
        beam: int = 1,
        pictures: dict[str, Any] | None = None,
        **training: Any,
    ) -> None:
        super().__init__(**training)
        if "alphabet" not in data:
            raise ValueError(f"a seq2seq model needs word pairs (data=piglatin), not {data.get('name')}")
        if not 0 <= teacher_forcing <= 1 or beam < 1:
            raise ValueError(f"need 0 <= teacher_forcing <= 1 and beam >= 1, got {teacher_forcing}, {beam}")
        self.save_hyperparameters()
        # the tokenizer's special ids, handed to the network (nets import nothing from the data)
        ids = {"pad": PAD, "bos": BOS, "eos": EOS}
        net = dict(net)
        if net.pop("cased", False):  # letters and their capitals share what is learned of them
            ids["capitals"] = capitals(data["alphabet"])
        self.net: Seq2SeqNet = build_net(vocab_size=3 + len(data["alphabet"]), **ids, **net)
        self.val_loss, self.val_word_acc, self.val_cer = MeanMetric(), MeanMetric(), CharErrorRate()
        self.val_word_acc_best = MaxMetric()
        self.test_word_acc, self.test_word_acc_longer, self.test_cer = (
            MeanMetric(),
            MeanMetric(),
            CharErrorRate(),
        )
        self.test_word_acc_synthetic, self.test_word_acc_repeated = MeanMetric(), MeanMetric()
        self.test_sentence_acc = SentenceAccuracy()
        self.test_by_length = LengthAccuracy(data["max_word_len"])

    def decode(self, src: torch.Tensor, beam: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Output ids (N, S + 4), PAD after EOS, and attention (N, S + 4, S) for letter ids (N, S)."""
        max_len = output_width(src.size(1))
        if beam == 1:
            return self.net.greedy(src, max_len)
        return beam_search(self.net, src, beam, max_len)

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        """Greedy output ids for letter ids."""
        return self.decode(src)[0]

    def loss(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        tgt_in = torch.cat([torch.full_like(tgt[:, :1], BOS), tgt[:, :-1]], dim=1)
        teacher_forcing = self.hparams.teacher_forcing if self.training else 1.0
        logits, _ = self.net(src, tgt_in, teacher_forcing)
        return F.cross_entropy(
            logits.flatten(0, 1),
            tgt.flatten(),
            ignore_index=PAD,
            label_smoothing=self.hparams.label_smoothing,
        )

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        src, tgt, _ = batch
        loss = self.loss(src, tgt)
        self.log_train_step({"loss": loss}, batch_size=len(src), prog_bar=("loss",))
        return loss

    def on_train_start(self) -> None:
        self.val_word_acc_best.reset()  # forget the sanity-check validation

    @staticmethod
    def trimmed(src: torch.Tensor, tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch's words and targets cut to its longest word (a split is as wide as its longest
        word: decoding short words that wide would take as many steps)."""
        width = max(int(word_lengths(src).max()), 1)
        return src[:, :width], tgt[:, : output_width(width)]

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        src, tgt = self.trimmed(*batch[:2])
        self.val_loss(self.loss(src, tgt), weight=len(src))
        tokens, _ = self.decode(src)
        self.val_word_acc((tokens == tgt).all(dim=1).float())
        self.val_cer(decode_tokens(tokens), decode_tokens(tgt))
        self.log("val/loss", self.val_loss, on_epoch=True, prog_bar=True)
        self.log("val/word_acc", self.val_word_acc, on_epoch=True, prog_bar=True)
        self.log("val/cer", self.val_cer, on_epoch=True)

    def on_validation_epoch_end(self) -> None:
        self.val_word_acc_best(self.val_word_acc.compute())
        self.log("val/word_acc_best", self.val_word_acc_best.compute(), sync_dist=True)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        (src, tgt), sentence = self.trimmed(*batch[:2]), batch[2]
        tokens, _ = self.decode(src, self.hparams.beam)
        correct = (tokens == tgt).all(dim=1)
        lengths = word_lengths(src)
        real, synthetic, repeated = sentence == UNSEEN, sentence == SYNTHETIC, sentence == REPEATED
        unseen = real | synthetic
        self.test_by_length.update(lengths[unseen], correct[unseen])
        within = real & (lengths <= self.hparams.data["max_train_len"])
        longer = real & ~within
        if within.any():
            self.test_word_acc(correct[within].float())
            self.test_cer(decode_tokens(tokens[within]), decode_tokens(tgt[within]))
            self.log("test/word_acc", self.test_word_acc, on_epoch=True)
            self.log("test/cer", self.test_cer, on_epoch=True)
        if longer.any():
            self.test_word_acc_longer(correct[longer].float())
            self.log("test/word_acc_longer", self.test_word_acc_longer, on_epoch=True)
        for rows, metric, name in (
            (synthetic, self.test_word_acc_synthetic, "synthetic"),
            (repeated, self.test_word_acc_repeated, "repeated"),
        ):
            if rows.any():
                metric(correct[rows].float())
                self.log(f"test/word_acc_{name}", metric, on_epoch=True)
        in_sentences = sentence >= 0
        if in_sentences.any():
            self.test_sentence_acc(sentence[in_sentences], correct[in_sentences])
            self.log("test/sentence_acc", self.test_sentence_acc, on_epoch=True)

    def on_test_epoch_end(self) -> None:
        accuracy = self.test_by_length.compute()
        for length in torch.nonzero(self.test_by_length.total).flatten().tolist():
            self.log(f"test/word_acc_len_{length:02d}", accuracy[length], sync_dist=True)
        self.test_by_length.reset()  # read by the callbacks' on_test_epoch_end, which runs first
