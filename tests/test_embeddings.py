"""Word embeddings: word2vec batches, the two nets, training on planted structure, the benchmark
evaluators on answers known by construction, the dlforge.embeddings tool, export -> GloVe loader."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import math
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

from dlforge import CONF_DIR, embeddings
from dlforge.data.glove import embedding_matrix, load_glove
from dlforge.data.word2vec_corpus import TextCorpusDataModule, Windows, keep_probabilities
from dlforge.data.word_benchmarks import read_analogies, read_pairs
from dlforge.embeddings import hydra_arguments
from dlforge.errors import DlforgeError
from dlforge.models.word2vec import Word2Vec
from dlforge.nets.word2vec import CBOW, SkipGram
from dlforge.training import build_run, train
from dlforge.word_vectors import WordVectors, load_vectors, parse_expression

ANIMALS = ["cat", "dog", "cow", "horse", "sheep", "goat"]
COLOURS = ["red", "blue", "green", "yellow", "white", "black"]
INITIAL_LOSS = 6 * math.log(2)  # zero output vectors: every one of 1 + 5 logits is 0


# --- tiny files in the real formats ----------------------------------------------------------------
def write_planted_corpus(path: Path, lines: int = 500, seed: int = 0) -> Path:
    """Two groups of words that share their contexts: animals eat and sleep, colours are painted."""
    rng = random.Random(seed)
    text = []
    for i in range(lines):
        if i % 2:
            a, b = rng.sample(ANIMALS, 2)
            text.append(f"the {a} eats grass and the {b} sleeps in the barn")
        else:
            a, b = rng.sample(COLOURS, 2)
            text.append(f"she paints the wall {a} and the door {b} with a brush")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


def write_benchmarks(folder: Path) -> Path:
    """questions-words.txt, wordsim353.tsv and simlex999.txt in their distributed formats."""
    folder.mkdir(parents=True, exist_ok=True)
    questions = [
        ": family",
        "man woman king queen",
        "king queen king queen",
        ": unknown",
        "man woman zebra okapi",
    ]
    (folder / "questions-words.txt").write_text("\n".join(questions) + "\n", encoding="utf-8")
    header = "# a comment\n# Word 1\tWord 2\tHuman (mean)\n"
    (folder / "wordsim353.tsv").write_text(
        header + "king\tqueen\t9.0\nman\twoman\t8.0\nking\twoman\t3.0\nman\tzebra\t1.0\n", encoding="utf-8"
    )
    (folder / "simlex999.txt").write_text(
        header + "cat\tdog\t7\ncat\tred\t1\nred\tblue\t6\n", encoding="utf-8"
    )
    return folder


def royal_vectors() -> WordVectors:
    """Unit vectors where woman - man + king is exactly queen: each word is the sum of two of five
    orthonormal axes (royal, human, male, female, fruit)."""
    axes = torch.eye(6)
    royal, human, male, female, fruit, other = axes
    table = {
        "the": human + other,
        "king": royal + male,
        "queen": royal + female,
        "man": human + male,
        "woman": human + female,
        "apple": fruit + other,
        "Zebra": fruit + female,
    }
    return WordVectors(list(table), torch.stack(list(table.values())) / math.sqrt(2), "royal")


def train_cfg(tmp_path: Path, corpus: Path, benchmarks: Path, model: str = "skipgram", *extra: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            config_name="train", overrides=[*planted_overrides(tmp_path, corpus, benchmarks, model), *extra]
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    return cfg


def planted_overrides(tmp_path: Path, corpus: Path, benchmarks: Path, model: str) -> list[str]:
    """A few seconds of CPU training that learns the planted groups."""
    return [
        f"model={model}", "data=text_corpus", f"data.paths=[{corpus}]",
        f"data.benchmarks.folder={benchmarks}",
        f"paths.cache_dir={tmp_path / 'cache'}", "trainer=cpu", "trainer.max_epochs=3",
        "trainer.enable_model_summary=false", "trainer.log_every_n_steps=5", "data.batch_size=32",
        "data.min_count=1", "data.sample=0", "data.val_size=0.05", "data.test_size=0.05", "model.net.dim=16",
        "model.optimizer.lr=0.05", "threads=1",
    ]  # fmt: skip


def mean_cosines(vectors: WordVectors) -> tuple[float, float]:
    """Mean cosine of words within a group, and across the two groups."""
    within = [vectors.similarity(a, b) for g in (ANIMALS, COLOURS) for a in g for b in g if a < b]
    across = [vectors.similarity(a, b) for a in ANIMALS for b in COLOURS]
    return float(np.mean(within)), float(np.mean(across))


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("planted")
    return write_planted_corpus(root / "corpus.txt"), write_benchmarks(root / "word-benchmarks")


@pytest.fixture(scope="module")
def skipgram_run(planted, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Skip-gram trained on the planted corpus (in process): its run summary."""
    return train(train_cfg(tmp_path_factory.mktemp("skipgram"), *planted))


# --- batches ---------------------------------------------------------------------------------------
def test_subsampling_keeps_rare_words_and_thins_frequent_ones() -> None:
    counts = torch.tensor([100_000, 1_000, 10])
    keep = keep_probabilities(counts, sample=1e-3)
    f = counts / counts.sum()
    expected = ((f / 1e-3).sqrt() + 1) * 1e-3 / f  # word2vec's formula
    assert torch.allclose(keep, expected.clamp(max=1).float())
    assert keep[0] < 0.15 and keep[2] == 1.0
    assert torch.equal(keep_probabilities(counts, sample=0), torch.ones(3))


def test_batches_follow_windows_lines_and_the_noise_distribution() -> None:
    lines = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    ids = torch.arange(100) % 7
    counts = torch.tensor([1000, 500, 200, 100, 50, 20, 10])
    windows = Windows(ids, lines, torch.ones(7), counts.double() ** 0.75, window=3, negatives=4)
    generator = torch.Generator().manual_seed(0)
    centres = torch.arange(100)
    centre_ids, contexts, mask, negatives = windows.batch(ids, lines, centres, generator)
    assert torch.equal(centre_ids, ids) and contexts.shape == mask.shape == (100, 6)
    offsets = torch.tensor([-3, -2, -1, 1, 2, 3])
    positions = centres[:, None] + offsets
    assert (
        lines[positions[mask]] == lines[centres[:, None].expand_as(mask)[mask]]
    ).all()  # never across lines
    assert torch.equal(contexts[mask], ids[positions[mask]])
    assert not mask[49, 3] and not mask[50, 2]  # the last word of line 0, the first of line 1
    assert mask[:, 2:4].float().mean() > 0.9 and mask[40:45, [0, 5]].float().mean() < 0.6  # dynamic reach
    assert negatives.shape == (100, 4)
    picks = torch.randint(len(windows.noise), (1_000_000,), generator=generator)
    draws = windows.noise.index_select(0, picks).long()
    share = torch.bincount(draws, minlength=7).double() / len(draws)
    expected = counts.double() ** 0.75 / (counts.double() ** 0.75).sum()
    assert torch.allclose(share, expected, rtol=0.05)


def test_epochs_draw_fresh_batches_of_a_fixed_count(planted, tmp_path: Path, monkeypatch) -> None:
    datamodule = TextCorpusDataModule(
        paths=[str(planted[0])], cache_dir=str(tmp_path), min_count=1, batch_size=64
    )
    datamodule.setup("fit")
    epochs = datamodule.train_epochs()
    first, second = list(epochs), list(epochs)
    assert len(first) == len(second) == len(epochs)
    assert not torch.equal(first[0][3], second[0][3])  # new negatives every epoch
    again = list(datamodule.train_epochs())  # the same seed: the same first epoch
    assert all(torch.equal(a, b) for a, b in zip(first[0], again[0], strict=True))
    import dlforge.data.word2vec_corpus as text_corpus

    def unread(*args: object) -> None:
        raise AssertionError("the text was read again instead of the cache")

    monkeypatch.setattr(text_corpus, "read_corpus", unread)
    cached = TextCorpusDataModule(paths=[str(planted[0])], cache_dir=str(tmp_path), min_count=1)
    corpus = cached.load_corpus()  # read back from the cache: the same encoding, token for token
    assert corpus.words == datamodule.corpus.words and cached.raw_tokens == datamodule.raw_tokens
    for name in ("counts", "ids", "lengths"):
        assert torch.equal(getattr(corpus, name), getattr(datamodule.corpus, name))
    assert len(list((tmp_path / "text_corpus").glob("*/corpus.pt"))) == 1
    other = TextCorpusDataModule(paths=[str(planted[0])], cache_dir=str(tmp_path), min_count=2)
    with pytest.raises(AssertionError, match="read again"):  # other options: another cache entry
        other.load_corpus()


def test_pair_draws_give_every_pair_its_own_noise_words(planted, tmp_path: Path) -> None:
    """negatives_per=pair: (B, C, K) draws, different for a centre's contexts; centre: (B, K), shared."""
    drawn = {}
    for per in ("pair", "centre"):
        datamodule = TextCorpusDataModule(
            paths=[str(planted[0])], cache_dir=str(tmp_path), min_count=1, batch_size=64, negatives_per=per
        )
        datamodule.setup("fit")
        drawn[per] = next(iter(datamodule.train_epochs()))[3]
    centres = len(drawn["centre"])  # an epoch's tokens split evenly: about 64 a batch
    assert drawn["pair"].shape == (centres, 10, 5) and drawn["centre"].shape == (centres, 5)
    assert (drawn["pair"][:, 0] != drawn["pair"][:, 1]).any(1).float().mean() > 0.9  # not one per centre
    with pytest.raises(DlforgeError, match="negatives_per is pair or centre"):
        TextCorpusDataModule(paths=[str(planted[0])], negatives_per="window")


@pytest.mark.parametrize(
    ("model", "option", "expected"),
    [
        ("skipgram", [], "pair"),
        ("skipgram", ["model.negatives_per=centre"], "centre"),
        ("cbow", [], "centre"),
    ],
)
def test_the_models_option_sets_the_data_modules_draw(model: str, option: list[str], expected: str) -> None:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"model={model}", "data=text_corpus", *option])
    assert cfg.data.negatives_per == expected
    assert cfg.model.get("negatives_per", "centre") == expected
    with pytest.raises(ValueError, match="pair: skip-gram only"):
        Word2Vec({"name": "cbow", "dim": 4}, {"vocab": ["a", "b"]}, negatives_per="pair")


# --- the nets ---------------------------------------------------------------------------------------
def random_batch(vocab: int = 30, size: int = 12, per_pair: bool = False) -> tuple[torch.Tensor, ...]:
    """(centres, contexts (4 slots), mask, negatives (3 per centre, or per pair)) of random words, one
    window left empty; with ``per_pair``, some noise words are the centre itself."""
    batch = (
        torch.randint(vocab, (size,)),
        torch.randint(vocab, (size, 4)),
        torch.rand(size, 4) < 0.7,
        torch.randint(vocab, (size, 4, 3) if per_pair else (size, 3)),
    )
    batch[2][0] = False  # a window without context words
    if per_pair:
        batch[3][1:4, :, 0] = batch[0][1:4, None]  # never a noise word of its own pairs
    return batch


@pytest.mark.parametrize(("net_class", "per_pair"), [(SkipGram, False), (SkipGram, True), (CBOW, False)])
def test_closed_form_gradients_match_autograd(net_class, per_pair: bool) -> None:
    torch.manual_seed(0)
    net = net_class(vocab_size=30, dim=8)
    torch.nn.init.normal_(net.outputs.weight, std=0.3)
    batch = random_batch(per_pair=per_pair)
    loss, count = net(*batch)
    loss.backward()
    expected = [net.inputs.weight.grad.to_dense(), net.outputs.weight.grad.to_dense()]
    closed_loss, closed_count = net.set_gradients(*batch)
    assert torch.allclose(closed_loss, loss) and closed_count == count
    assert torch.allclose(net.inputs.weight.grad.to_dense(), expected[0], atol=1e-6)
    assert torch.allclose(net.outputs.weight.grad.to_dense(), expected[1], atol=1e-6)


@pytest.mark.parametrize("optimizer", [torch.optim.SGD, torch.optim.SparseAdam, torch.optim.Adagrad])
def test_sparse_gradients_move_only_the_batchs_rows(optimizer) -> None:
    net = SkipGram(vocab_size=40, dim=4)
    torch.nn.init.normal_(net.outputs.weight)
    before = net.inputs.weight.detach().clone(), net.outputs.weight.detach().clone()
    centres, contexts, negatives = (
        torch.arange(5),
        torch.arange(10, 20).view(5, 2),
        torch.arange(20, 30).view(5, 2),
    )
    net.set_gradients(centres, contexts, torch.ones(5, 2, dtype=torch.bool), negatives)
    optimizer(list(net.parameters()), lr=0.1).step()
    moved_inputs = (net.inputs.weight != before[0]).any(1).nonzero()[:, 0]
    moved_outputs = (net.outputs.weight != before[1]).any(1).nonzero()[:, 0]
    assert moved_inputs.tolist() == list(range(10, 20))
    assert moved_outputs.tolist() == [*range(5), *range(20, 30)]


def test_a_pairs_noise_word_equal_to_its_centre_is_skipped() -> None:
    """Per pair, as word2vec.c and gensim: the loss and gradients are those of the other noise words."""
    torch.manual_seed(0)
    net = SkipGram(vocab_size=10, dim=4)
    torch.nn.init.normal_(net.outputs.weight, std=0.5)
    centres, contexts, mask = (
        torch.tensor([3, 5]),
        torch.tensor([[1, 2], [4, 6]]),
        torch.ones(2, 2, dtype=torch.bool),
    )
    noise = torch.tensor([[[3, 7], [8, 3]], [[9, 5], [5, 5]]])  # pairs' own draws, the centre among them
    loss, count = net(centres, contexts, mask, noise)
    x, v = net.inputs.weight.detach(), net.outputs.weight.detach()
    expected = 0.0
    for b, c in ((0, 0), (0, 1), (1, 0), (1, 1)):
        context, centre = contexts[b, c], centres[b]
        expected -= torch.nn.functional.logsigmoid(x[context] @ v[centre])
        for word in noise[b, c]:
            if word != centre:
                expected -= torch.nn.functional.logsigmoid(-x[context] @ v[word])
    assert count == 4 and torch.allclose(loss, expected)
    net.set_gradients(centres, contexts, mask, noise)
    # centre 5 is the target of its two pairs and never their noise word: its output row's gradient
    # is the two true-word terms alone
    expected_grad = sum((torch.sigmoid(x[c] @ v[5]) - 1) * x[c] for c in (4, 6))
    assert torch.allclose(net.outputs.weight.grad.to_dense()[5], expected_grad, atol=1e-6)


@pytest.mark.parametrize(("net_class", "per_pair"), [(SkipGram, False), (SkipGram, True), (CBOW, False)])
def test_the_in_place_sgd_step_is_sgds_update(net_class, per_pair: bool) -> None:
    torch.manual_seed(0)
    net = net_class(vocab_size=30, dim=8)
    torch.nn.init.normal_(net.outputs.weight, std=0.3)
    reference = copy.deepcopy(net)
    batch = random_batch(per_pair=per_pair)
    loss, count = net.sgd_step(*batch, lr=0.5)
    expected_loss, expected_count = reference.set_gradients(*batch)
    torch.optim.SGD(reference.parameters(), lr=0.5).step()
    assert torch.allclose(loss, expected_loss) and count == expected_count
    for ours, expected in zip(net.parameters(), reference.parameters(), strict=True):
        assert torch.allclose(ours, expected, atol=1e-6)
    assert net.inputs.weight.grad is None  # no gradient tensors were made


@pytest.mark.parametrize("optimizer", ["SGD", "Adagrad"])  # in place / as sparse gradients
def test_a_batch_is_applied_in_update_size_chunks_one_after_the_other(tmp_path: Path, optimizer) -> None:
    """One training step of 12 centre words with update_size=4 is three updates in a row."""
    torch.manual_seed(0)
    vocab = {"name": "text_corpus", "vocab": [f"w{i}" for i in range(30)]}
    config = {"_target_": f"torch.optim.{optimizer}", "lr": 0.5}
    model = Word2Vec({"name": "cbow", "dim": 8}, vocab, config, scheduler=None, update_size=4)
    torch.nn.init.normal_(model.net.outputs.weight, std=0.3)
    reference = copy.deepcopy(model.net)
    before = model.net.inputs.weight.detach().clone()
    batch = random_batch()
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path, accelerator="cpu",
    )  # fmt: skip
    in_place, sgd_step = [], model.net.sgd_step
    model.net.sgd_step = lambda *chunk, lr: in_place.append(lr) or sgd_step(*chunk, lr=lr)
    trainer.fit(model, torch.utils.data.DataLoader([batch], batch_size=None))
    assert len(in_place) == (3 if optimizer == "SGD" else 0)  # plain SGD: in place; Adagrad: sparse
    assert trainer.global_step == 1  # one step a batch
    updates = getattr(torch.optim, optimizer)(reference.parameters(), lr=0.5)
    for chunk in zip(*(t.split(4) for t in batch), strict=True):
        reference.set_gradients(*chunk)
        updates.step()
    for ours, expected in zip(model.net.parameters(), reference.parameters(), strict=True):
        assert torch.allclose(ours, expected, atol=1e-6)
    assert not torch.allclose(model.net.inputs.weight, before)  # it trained


# --- training -----------------------------------------------------------------------------------------
def test_skipgram_learns_the_planted_groups_and_its_loss_falls(skipgram_run) -> None:
    metrics = skipgram_run["metrics"]
    assert metrics["test/loss"] < 0.8 * INITIAL_LOSS
    assert metrics["train/loss_epoch"] < 0.8 * INITIAL_LOSS
    # the benchmark scores, at every validation (the last: the last weights) and at test (the best's):
    # no analogy has its four words in this text, so none is answered; SimLex's three pairs, recomputed
    # here as Spearman's correlation of the cosines' ranks with the human scores' (cat-dog 7, red-blue 6,
    # cat-red 1): cat-red is the least similar pair once the groups are learned
    pairs, human_ranks = [("cat", "dog"), ("red", "blue"), ("cat", "red")], np.array([3.0, 2.0, 1.0])
    for stage, checkpoint in (("val", "last_checkpoint"), ("test", "best_checkpoint")):
        assert metrics[f"{stage}/analogy_acc"] == 0.0 and metrics[f"{stage}/analogy_coverage"] == 0.0
        cosines = [load_vectors(skipgram_run[checkpoint]).similarity(a, b) for a, b in pairs]
        ranks = np.argsort(np.argsort(cosines)) + 1.0  # three distinct cosines: no ties
        spearman = 1 - 6 * float(((ranks - human_ranks) ** 2).sum()) / (3 * (3**2 - 1))
        assert metrics[f"{stage}/simlex999_coverage"] == 1.0 and ranks[2] == 1
        assert metrics[f"{stage}/simlex999"] == pytest.approx(spearman, abs=1e-5)  # torchmetrics: float32
    vectors = load_vectors(skipgram_run["last_checkpoint"])
    within, across = mean_cosines(vectors)
    assert within > across + 0.3, (within, across)
    for animal in ANIMALS:
        assert vectors.neighbours(animal, k=3)[0][0] in ANIMALS
    assert (Path(skipgram_run["last_checkpoint"]).parents[1] / "word_map.png").stat().st_size > 10_000


def test_untrained_vectors_do_not_show_the_groups(planted, tmp_path: Path) -> None:
    """The planted-structure check fails when training is broken (here: no training steps)."""
    cfg = train_cfg(tmp_path, *planted, "skipgram", "train=false", "trainer.limit_test_batches=1")
    _, model, _ = build_run(cfg)
    within, across = mean_cosines(WordVectors(model.words, model.vectors()))
    assert within < across + 0.3


def test_cbow_trains_from_the_command_line(planted, run_main, tmp_path: Path) -> None:
    result = run_main(
        "train.py", *planted_overrides(tmp_path, *planted, "cbow"), f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["kind"] == "word2vec" and summary["metrics"]["test/loss"] < 0.8 * INITIAL_LOSS
    within, across = mean_cosines(load_vectors(summary["last_checkpoint"]))
    assert within > across + 0.3, (within, across)


# --- evaluators on answers known by construction ------------------------------------------------------
def test_analogies_use_3cosadd_exclude_the_question_words_and_restrict_the_vocabulary(tmp_path: Path) -> None:
    vectors = royal_vectors()
    questions, sections = read_analogies(write_benchmarks(tmp_path) / "questions-words.txt")
    assert vectors.analogy(["king", "woman"], ["man"], k=1)[0][0] == "queen"
    result = vectors.analogy_accuracy(questions, sections, restrict=6)
    # man:woman::king:queen is right; king:queen::king:? cannot answer queen (a question word);
    # the question with zebra (row 6, beyond the 6 most frequent) and okapi (unknown) is skipped
    assert (result["questions"], result["total"], result["correct"]) == (2, 3, 1)
    assert result["accuracy"] == 0.5 and result["coverage"] == pytest.approx(2 / 3)
    assert result["sections"] == {"family": 0.5}
    assert vectors.analogy_accuracy(questions, restrict=2)["questions"] == 0


def test_similarity_is_spearman_over_covered_pairs_case_insensitive(tmp_path: Path) -> None:
    vectors = royal_vectors()
    pairs = read_pairs(write_benchmarks(tmp_path) / "wordsim353.tsv")
    # cosines: king-queen 0.5, man-woman 0.5 (a tie), king-woman 0; man-zebra is 0 and covered (Zebra)
    result = vectors.similarity_correlation(pairs)
    assert (result["pairs"], result["total"]) == (4, 4)
    # human ranks 4, 3, 2, 1; cosine ranks 3.5, 3.5, 1.5, 1.5 -> Spearman = Pearson of the ranks
    human, cosine = np.array([4, 3, 2, 1.0]), np.array([3.5, 3.5, 1.5, 1.5])
    assert result["spearman"] == pytest.approx(np.corrcoef(human, cosine)[0, 1], abs=1e-6)
    partial = vectors.similarity_correlation([*pairs, ("king", "okapi", 5.0)])
    assert partial["coverage"] == pytest.approx(4 / 5) and partial["spearman"] == result["spearman"]


def test_expressions_and_neighbours() -> None:
    assert parse_expression("king - man + woman") == (["king", "woman"], ["man"])
    assert parse_expression("king -man +woman well-known") == (["king", "woman", "well-known"], ["man"])
    with pytest.raises(DlforgeError, match="joined by"):
        parse_expression("- man")
    vectors = royal_vectors()
    assert {w for w, _ in vectors.neighbours("KING", k=2)} == {"queen", "man"}  # each shares an axis
    assert vectors.explore("woman - man + king", k=1)["results"] == [{"word": "queen", "cosine": 1.0}]
    with pytest.raises(DlforgeError, match="'unicorn' is not among the 7 words"):
        vectors.neighbours("unicorn")
    assert vectors.project(["king", "queen", "man", "woman"], "pca").shape == (4, 2)


def test_tool_arguments_become_hydra_overrides() -> None:
    assert hydra_arguments(["analogy", "king", "-", "man", "+", "woman", "k=3"]) == [
        "command=analogy",
        "k=3",
        "query='king - man + woman'",
    ]
    assert hydra_arguments(["similarity", "king", "queen's", "--cfg", "job"]) == [
        "command=similarity",
        "--cfg",
        "job",
        "words=['king','queen\\'s']",
    ]
    assert hydra_arguments(["analogy", "query=a, b - c"]) == ["command=analogy", "query='a, b - c'"]


# --- the tool, export, the GloVe loader -------------------------------------------------------------
def embeddings_tool(*args: str) -> tuple[int, str]:
    """``python -m dlforge.embeddings *args`` in this process (its ``main()``, argv as typed, run dirs
    under the current folder): the exit status and what it printed (the real process: see below)."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    sys.argv, code = ["dlforge.embeddings", *args], 0
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout):
            embeddings.main()
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    finally:  # what a real process drops when it exits: Hydra's state and its log handlers
        GlobalHydra.instance().clear()
        for handler in set(root.handlers) - set(handlers):
            root.removeHandler(handler)
    return code, stdout.getvalue()


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    return tmp_path


def test_tool_explores_a_checkpoint_and_exports_glove_text(skipgram_run, in_tmp: Path) -> None:
    ckpt = skipgram_run["last_checkpoint"]
    code, printed = embeddings_tool("neighbours", "cat", "red", f"vectors={ckpt}", "k=3")
    assert code == 0
    lines = printed.strip().splitlines()[-2:]
    assert lines[0].startswith("cat: ") and lines[0].split()[1] in ANIMALS
    assert lines[1].startswith("red: ") and lines[1].split()[1] in COLOURS

    output = in_tmp / "vectors.txt"
    code, printed = embeddings_tool("export", f"ckpt_path={ckpt}", f"output={output}")
    trained = load_vectors(ckpt)
    assert code == 0 and printed.strip().splitlines()[-1] == f"{len(trained)} x 16 vectors in {output}"
    glove = load_glove(output, cache_dir=in_tmp / "cache")  # the text classifiers' loader
    assert glove.words == trained.words and glove.dim == 16
    assert np.allclose(glove.vectors, trained.vectors.numpy(), atol=1e-6)
    matrix = embedding_matrix(["<pad>", "<unk>", "cow", "zorblax"], glove, missing="zero")
    assert torch.allclose(matrix[2], trained.vectors[trained.row("cow")], atol=1e-6)
    assert not matrix[3].any()  # a word the vectors lack


def test_tool_evaluates_analogy_and_similarity_on_a_glove_file(run_cli, in_tmp: Path) -> None:
    vectors = royal_vectors()
    tmp_path = in_tmp
    glove = tmp_path / "royal.txt"
    glove.write_text(
        "".join(
            f"{w} {' '.join(f'{x:.6f}' for x in v)}\n"
            for w, v in zip(vectors.words, vectors.vectors.tolist(), strict=True)
        ),
        encoding="utf-8",
    )
    folder = write_benchmarks(tmp_path / "benchmarks")
    args = [
        f"vectors={glove}",
        f"benchmarks.folder={folder}",
        "analogy_vocab=6",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    assert embeddings_tool("evaluate", *args)[0] == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]
    assert metrics["analogy_acc"] == 0.5 and metrics["wordsim353_coverage"] == 1.0
    assert metrics["simlex999_coverage"] == 0.0
    code, printed = embeddings_tool("similarity", "king", "queen", f"vectors={glove}")
    assert code == 0 and printed.strip().splitlines()[-1] == "king\tqueen\t0.5000"
    code, printed = embeddings_tool("map", "king", "queen", "man", "woman", f"vectors={glove}",
                                    f"output={tmp_path / 'map.png'}", "method=tsne")  # fmt: skip
    assert code == 0 and (tmp_path / "map.png").stat().st_size > 5_000
    # a real process, through the dlforge command, with the analogy as one quoted argument
    result = run_cli(
        "-m", "dlforge", "embeddings", "analogy", "woman - man + king", f"vectors={glove}", "k=1"
    )
    assert result.returncode == 0 and result.stdout.splitlines()[-1] == "queen\t1.0000", result.stderr[-2000:]


# --- one clear error ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "min_count", "message"),
    [
        (b"", 1, "0 words, 0 of them seen 1 times or more"),
        (b"caf\xe9 au lait\n", 1, "is not UTF-8 text"),
        (b"one two three four\n", 2, "word2vec needs text with repeated words"),
    ],
)
def test_bad_corpora_are_one_clear_error(
    content: bytes, min_count: int, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DlforgeError, match=message):
        TextCorpusDataModule(paths=[str(path)], min_count=min_count).setup("fit")
    with pytest.raises(DlforgeError, match="no text file"):
        TextCorpusDataModule(paths=[str(tmp_path / "missing.txt")]).setup("fit")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "questions-words.txt",
            ": s\nman woman king\n",
            r"questions-words.txt:2: an analogy question is four words",
        ),
        ("questions-words.txt", ": only sections\n", "holds no analogy questions"),
        ("wordsim353.tsv", "king\tqueen\tvery\n", r"wordsim353.tsv:1: a similarity line is"),
        ("simlex999.txt", "# nothing\n", "holds 0 scored word pairs"),
    ],
)
def test_bad_benchmark_files_are_one_clear_error(
    name: str, content: str, message: str, tmp_path: Path
) -> None:
    folder = write_benchmarks(tmp_path / "benchmarks")
    (folder / name).write_text(content, encoding="utf-8")
    datamodule = TextCorpusDataModule(
        paths=[str(write_planted_corpus(tmp_path / "c.txt"))],
        benchmarks={"folder": str(folder), "analogies": "questions-words.txt", "similarity": [
            "wordsim353.tsv", "simlex999.txt"]},
    )  # fmt: skip
    with pytest.raises(DlforgeError, match=message):
        datamodule.setup("fit")
