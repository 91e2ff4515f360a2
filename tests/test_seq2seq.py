"""English -> pig latin: the rule, the word-pair data, the seq2seq networks and model, and the tools
(train, predict, export) as typed, on a tiny corpus of made-up words written here."""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from dlforge import CONF_DIR
from dlforge.checkpoint import load_model
from dlforge.data.piglatin import (
    ALPHABET,
    BOS,
    EOS,
    PAD,
    REPEATED,
    SYNTHETIC,
    UNSEEN,
    VOCAB_SIZE,
    PigLatinDataModule,
    cluster_end,
    decode_tokens,
    encode_words,
    pig_latin_word,
    to_pig_latin,
    word_lengths,
    word_pairs,
)
from dlforge.errors import DlforgeError
from dlforge.export import export
from dlforge.export import main as export_main
from dlforge.inference import from_export, load
from dlforge.models import Seq2Seq
from dlforge.nets import build_net
from dlforge.nets import seq2seq as seq2seq_nets
from dlforge.nets.seq2seq import beam_search
from dlforge.predict import main as predict_main
from dlforge.serving.seq2seq import TranslatorModel
from dlforge.training import train
from tests.app_fixtures import export_cfg
from tests.conftest import FAST, once_per_session

RULE_CASES = [
    ("string", "ingstray"),
    ("queen", "eenquay"),
    ("squeal", "ealsquay"),
    ("rhythm", "ythmrhay"),
    ("my", "ymay"),
    ("style", "ylestay"),
    ("yellow", "ellowyay"),
    ("apple", "appleway"),
    ("eat", "eatway"),
    ("a", "away"),
    ("hmm", "hmmay"),
    ("Hello, world!", "Ellohay, orldway!"),
    ("Quiet", "Ietquay"),
    ("I am", "Iway amway"),
    ("NASA and XML", "ASANAY andway XMLAY"),
    ("McDonald", "OnAldmcday"),
    ("don't", "onday'tay"),
    ("well-known", "ellway-ownknay"),
    ("21st century, 42 cats.", "21st enturycay, 42 atscay."),
    ("a café, naïve", "away café, naïve"),
    ("", ""),
    ("  ...  ", "  ...  "),
]

ONSETS = ["", "", "b", "c", "d", "f", "g", "h", "l", "m", "n", "p", "r", "s", "t", "w", "y"]
ONSETS += ["ch", "sh", "th", "st", "pl", "gr", "qu", "str", "squ"]
NUCLEI = ["a", "e", "i", "o", "u", "ea", "oo", "y"]
CODAS = ["", "", "n", "t", "st", "ng", "r", "ck", "m", "sh"]


def made_up_words(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct words of one or two syllables (onset, vowel, coda), a fifth of them capitalized."""
    rng = np.random.default_rng(seed)
    words: dict[str, None] = {}
    while len(words) < n:
        syllables = rng.integers(1, 3)
        word = "".join(rng.choice(ONSETS) + rng.choice(NUCLEI) + rng.choice(CODAS) for _ in range(syllables))
        words[word.capitalize() if rng.random() < 0.2 else word] = None
    return list(words)


def write_corpus(path: Path, n: int = 1200) -> Path:
    """Sentences of made-up words (and "Hello, world!"), four words a line."""
    words = made_up_words(n)
    lines = ["Hello, world! The world says hello."]
    lines += [" ".join(words[i : i + 4]) + "." for i in range(0, len(words), 4)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


FAST_RUN = [o for o in FAST if not o.startswith("data.")]  # a few CPU steps (the data's options below)

#: the tiny data: 1200 made-up words; 40 validation and 80 test types, 12 test sentences; words of
#: 9+ letters test-only; 8 longer words of each length 9-40 and 40 with a run of a letter made up
TINY_DATA = (
    "data=piglatin",
    "data.max_train_len=8",
    "data.val_words=40",
    "data.test_words=80",
    "data.test_sentences=12",
    "data.sentence_words=[3,12]",
    "data.batch_size=64",
    "data.eval_batch_size=256",
    "data.text_share=0",
    "data.synthetic_per_length=8",
    "data.repeated_words=40",
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("piglatin") / "words.txt")


def compose_train(corpus: Path, out: Path, *overrides: str) -> Any:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[f"data.paths=[{corpus}]", f"paths.cache_dir={out / 'cache'}", *TINY_DATA, *overrides],
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(out / "run")
    return cfg


TINY_TRANSLATOR = (
    "model=seq2seq",
    "model.net.attention=luong",  # the earlier translator: 2x faster to train than the default
    "model.net.cased=false",
    "model.net.hidden=64",
    "model.net.embed_dim=32",
    "model.pictures.every_n_epochs=10",
    "optimizer.lr=0.005",
    "scheduler=cosine",
    "trainer=cpu",
    "trainer.max_epochs=36",
    "trainer.enable_model_summary=false",
    "callbacks.progress_bar=null",
    "threads=1",  # a small network: a second thread costs more than it gains (shared machine: far more)
    "seed=1",
)


def tiny_translator(factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small GRU seq2seq with Luong attention trained on made-up words: 400 steps of 64 words (8 s
    of one CPU core), once per test session (the app tests serve it too). Its corpus, run dir, best
    checkpoint and test metrics, and ``cfg``, the config it was trained with."""

    def build(folder: Path) -> dict[str, Any]:
        corpus = write_corpus(folder / "corpus" / "words.txt")
        threads = torch.get_num_threads()
        try:
            summary = train(compose_train(corpus, folder, *TINY_TRANSLATOR))
        finally:
            torch.set_num_threads(threads)
        return {
            "corpus": str(corpus),
            "out": str(folder),
            **{k: summary[k] for k in ("best_checkpoint", "metrics")},
        }

    built = once_per_session(factory, "tiny_translator", build)
    return {**built, "cfg": compose_train(Path(built["corpus"]), Path(built["out"]), *TINY_TRANSLATOR)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return tiny_translator(tmp_path_factory)


# --- the rule and the encoding -----------------------------------------------------------------
@pytest.mark.parametrize(("english", "pig_latin"), RULE_CASES)
def test_the_rule_on_hand_written_cases(english: str, pig_latin: str) -> None:
    assert to_pig_latin(english) == pig_latin


def test_words_encode_to_ids_and_back() -> None:
    words = ["Hello", "a", "rhythm", "Zz"]
    ids = encode_words(words, width=7, eos=True)
    assert ids.shape == (4, 7) and ids.dtype == torch.long
    assert ids[1].tolist() == [3, 2, 0, 0, 0, 0, 0]  # "a", EOS, PAD...
    assert decode_tokens(ids) == words
    assert decode_tokens(torch.tensor([[BOS, 3, 2, 4]])) == ["a"]  # BOS dropped, nothing after EOS
    with pytest.raises(ValueError, match="'café' is not a word"):
        encode_words(["ok", "café"])
    _, targets = word_pairs(["queen"], 6)
    assert decode_tokens(targets) == ["eenquay"] and targets.shape == (1, 10)


# --- the data ----------------------------------------------------------------------------------
def test_splits_keep_test_words_out_of_training(corpus: Path, tmp_path: Path) -> None:
    options = dict(paths=[str(corpus)], max_train_len=8, val_words=40, test_words=80, test_sentences=12)
    options |= dict(synthetic_per_length=3, repeated_words=30)
    data = PigLatinDataModule(cache_dir=str(tmp_path), sentence_words=[3, 12], **options)
    data.setup()
    types = {
        name: {w.lower() for w in decode_tokens(split.tensors[0])} for name, split in data.splits.items()
    }
    src, tgt, sentence = data.splits["test"].tensors
    unseen = {w.lower() for w in decode_tokens(src[sentence < 0])}
    assert not unseen & types["train"] and not types["val"] & types["train"]
    assert max(map(len, types["train"])) <= 8 < max(map(len, unseen))  # longer words: test only
    assert data.counts["test_sentences"] == 12 and data.counts["test_longer"] > 0
    for i in range(12):  # every test sentence holds an unseen word; its other words are training words
        words = {w.lower() for w in decode_tokens(src[sentence == i])}
        assert words & unseen and words <= types["train"] | unseen
    english = decode_tokens(src)
    assert decode_tokens(tgt) == [pig_latin_word(w) for w in english]
    assert {len(w) for w in decode_tokens(tgt)} <= {len(w) + k for w in english for k in (2, 3)}

    cached = PigLatinDataModule(cache_dir=str(tmp_path), sentence_words=[3, 12], **options)
    cached.setup()  # from the cache: the same tensors
    assert all(
        torch.equal(a, b)
        for name in data.splits
        for a, b in zip(data.splits[name].tensors, cached.splits[name].tensors, strict=True)
    )
    assert len(list((tmp_path / "piglatin").glob("*.pt"))) == 1

    # made-up test words: 3 of each length 9-40, and words with a run of 3+ of one letter, none of
    # them a training or validation word; made again from the text (no cache): the same words
    synthetic, repeated = decode_tokens(src[sentence == SYNTHETIC]), decode_tokens(src[sentence == REPEATED])
    assert sorted(map(len, synthetic)) == [n for n in range(9, 41) for _ in range(3)]
    assert len(repeated) == data.counts["test_repeated"] >= 25
    assert all(re.search(r"([a-z])\1\1", w.lower()) for w in repeated)
    assert not {w.lower() for w in synthetic + repeated} & (types["train"] | types["val"])
    assert any(w.isupper() for w in synthetic) and any(w.istitle() for w in synthetic)
    again = PigLatinDataModule(sentence_words=[3, 12], **options)
    again.setup()
    assert torch.equal(again.splits["test"].tensors[0], src)


def test_frequent_words_get_more_training_rows(tmp_path: Path) -> None:
    text = tmp_path / "text.txt"
    text.write_text(" ".join(made_up_words(200, seed=3)) + " and" * 100 + ".\n", encoding="utf-8")
    data = PigLatinDataModule(
        paths=[str(text)], val_words=10, test_words=10, test_sentences=0, text_share=0.5
    )
    data.setup()
    rows = decode_tokens(data.splits["train"].tensors[0])
    forms = data.counts["train"]
    assert rows.count("and") == 1 + int(0.5 * forms * 100 / (forms - 1 + 100))  # its share of the text
    assert len(rows) == len(set(rows)) + rows.count("and") - 1  # the made-up words occur once: one row each


def test_missing_text_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DlforgeError, match=r"no text file at .*nope\.txt; fix data\.paths"):
        PigLatinDataModule(paths=[str(tmp_path / "nope.txt")]).setup()
    with pytest.raises(DlforgeError, match="no English text under"):
        PigLatinDataModule(data_dir=str(tmp_path), download=False).setup()


# --- the networks ------------------------------------------------------------------------------
NETS = [
    {"name": "gru_seq2seq", "attention": "luong", "hidden": 16, "embed_dim": 8},
    {"name": "gru_seq2seq", "attention": "bahdanau", "hidden": 16, "embed_dim": 8},
    {"name": "gru_seq2seq", "attention": "location", "hidden": 16, "embed_dim": 8, "capitals": 26},
    {"name": "gru_seq2seq", "attention": "monotonic", "hidden": 16, "embed_dim": 8, "capitals": 26},
    {"name": "transformer_seq2seq", "dim": 16, "heads": 2, "ff": 32},
]


@pytest.mark.parametrize("options", NETS, ids=lambda o: o.get("attention", o["name"]))
def test_teacher_forcing_matches_step_by_step_decoding(options: dict[str, Any]) -> None:
    torch.manual_seed(0)
    net = build_net(vocab_size=VOCAB_SIZE, **options).eval()
    src, tgt = word_pairs(["string", "Queen", "a", "rhythms"], 7)
    tgt_in = torch.cat([torch.full_like(tgt[:, :1], BOS), tgt[:, :-1]], dim=1)
    with torch.no_grad():
        logits, weights = net(src, tgt_in)
        values, keys, mask, state = net.encode(src)
        for t in range(tgt_in.size(1)):
            step_logits, state, step_weights = net.step(tgt_in[:, t], state, values, keys, mask)
            torch.testing.assert_close(step_logits, logits[:, t], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(step_weights, weights[:, t], atol=1e-6, rtol=1e-5)
    assert torch.allclose(weights.sum(-1), torch.ones(())) and not (weights * (src == PAD)[:, None]).any()


@pytest.mark.parametrize("options", NETS, ids=lambda o: o.get("attention", o["name"]))
def test_beam_search_of_width_one_is_greedy_and_a_full_beam_finds_the_best_output(
    options: dict[str, Any],
) -> None:
    torch.manual_seed(0)
    net = build_net(vocab_size=VOCAB_SIZE, **options).eval()
    src = encode_words(["string", "Queen", "a"])
    greedy = net.greedy(src, 11)
    tokens, weights = beam_search(net, src, 1, 11)
    assert torch.equal(tokens, greedy[0]) and torch.allclose(weights, greedy[1])

    # two steps with a beam as wide as the vocabulary keep every prefix: the best of all two-token
    # outputs (or EOS alone), found by scoring each one, must come out
    outputs = torch.tensor(
        [[a, b] for a in range(EOS, VOCAB_SIZE) for b in ([PAD] if a == EOS else range(EOS, VOCAB_SIZE))]
    )
    with torch.no_grad():
        rows = src.repeat_interleave(len(outputs), dim=0)
        out = outputs.repeat(len(src), 1)
        logits, _ = net(rows, torch.cat([torch.full_like(out[:, :1], BOS), out[:, :1]], dim=1))
    logits[..., :EOS] = float("-inf")  # PAD and BOS are never an output
    picked = logits.log_softmax(-1).gather(2, out[..., None])[..., 0].masked_fill(out == PAD, 0).sum(1)
    best = outputs[picked.view(len(src), -1).argmax(dim=1)]
    assert torch.equal(beam_search(net, src, VOCAB_SIZE - 2, 2)[0], best)


def test_monotonic_attention_moves_one_letter_a_step_in_a_word_of_any_length() -> None:
    """Length-independent by construction: the *move on* step takes attention from each letter to the
    next (the last to the first) in words of 1 to 60 letters alike; a monotonic decoder told always to
    move on reads letter t of a 60-letter word at step t, as it does in a word of 5."""
    lengths = torch.tensor([1, 2, 5, 14, 23, 60])
    mask = torch.arange(60)[None] < lengths[:, None]
    for at in range(60):
        weights = torch.zeros(len(lengths), 1, 60)
        weights[torch.arange(len(lengths)), 0, at % lengths] = 1.0
        moved = seq2seq_nets.cyclic_shift(weights, mask)[:, 0]
        assert torch.equal(moved.argmax(dim=1), (at % lengths + 1) % lengths)
        assert torch.equal(moved.sum(dim=1), torch.ones(len(lengths))) and not (moved * ~mask).any()

    torch.manual_seed(0)
    net = build_net(vocab_size=VOCAB_SIZE, name="gru_seq2seq", attention="monotonic", hidden=8, embed_dim=4)
    with torch.no_grad():  # jump, stay, move on: always move on
        net.decoder.moves.weight.zero_()
        net.decoder.moves.bias.copy_(torch.tensor([-50.0, -50.0, 50.0]).repeat(2))
    words = ["abcde", "".join(chr(97 + i % 26) for i in range(60))]
    with torch.no_grad():
        values, keys, mask, state = net.eval().encode(encode_words(words))
        token, peaks = torch.full((2,), BOS), []
        for _ in range(64):
            _, state, weights = net.step(token, state, values, keys, mask)
            peaks.append(weights.argmax(dim=1))
            token = torch.full((2,), 3)  # any letter
    steps = torch.arange(1, 65)
    assert torch.equal(torch.stack(peaks, dim=1), steps % torch.tensor([[5], [60]]))


def test_the_default_translator_scripts_as_exported_and_decodes_a_40_letter_word_alike(
    tmp_path: Path,
) -> None:
    """model=seq2seq is the monotonic, cased GRU; its decoding loop, scripted as ``export`` scripts it,
    gives the tokens and attention of the checkpoint's on words of 1 to 40 letters."""
    from dlforge.serving.seq2seq import TranslatorGraph

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["model=seq2seq", "data=piglatin"])
    assert cfg.model.net.attention == "monotonic" and cfg.model.net.cased
    torch.manual_seed(0)
    net = {**OmegaConf.to_container(cfg.model.net), "hidden": 16, "embed_dim": 8}
    model = Seq2Seq(net=net, data={"alphabet": ALPHABET, "max_train_len": 14, "max_word_len": 40}).eval()
    graph = TranslatorGraph(model).eval()
    scripted = torch.jit.script(graph)
    words = encode_words(["a", "Strength", "antidisestablishmentarianismusXYZabcdefg"[:40]])
    with torch.no_grad():
        for a, b in zip(scripted(words), graph(words), strict=True):
            assert torch.equal(a, b)


# --- a tiny model learns the rule ---------------------------------------------------------------
def tiny_data(trained: dict[str, Any]) -> PigLatinDataModule:
    """The trained model's data (from the cache its run wrote)."""
    data = instantiate(trained["cfg"].data)
    data.setup()
    return data


def unseen_words(trained: dict[str, Any]) -> list[str]:
    """The test words of the trained model's data no longer than its training words."""
    data = tiny_data(trained)
    src, _, sentence = data.splits["test"].tensors
    return [w for w in decode_tokens(src[sentence == UNSEEN]) if len(w) <= data.max_train_len]


def attention_alignment(model: Seq2Seq, words: list[str]) -> float:
    """How often the attention peak of an output letter is the input letter it copies (the letters of
    "ay"/"way" copy none), over the words the model gets right: high only when attention works."""
    with torch.no_grad():
        tokens, weights = model.decode(encode_words(words))
    hits = total = 0
    for word, output, attention in zip(words, decode_tokens(tokens), weights, strict=True):
        if output != pig_latin_word(word):
            continue
        cut = cluster_end(word.lower())
        for j in range(len(word)):
            hits += int(attention[j].argmax()) == (j + cut) % len(word)
            total += 1
    return hits / max(total, 1)


def same_picture(a: Path, b: Path) -> bool:
    """Two PNG files show the same picture: the same size, and at most 0.5% of the pixels a little
    different (the run drew its attention in another process, whose float sums may differ in the last
    bits and move a cell's shade by a level; another batch or model changes far more)."""
    from PIL import Image

    x, y = (np.asarray(Image.open(p).convert("RGB")).astype(int) for p in (a, b))
    if x.shape != y.shape:
        return False
    differ = np.abs(x - y).max(axis=-1)
    return bool((differ > 0).mean() <= 0.005 and differ.max() <= 16)


def redraw_attention(
    model: Seq2Seq, src: torch.Tensor, tgt: torch.Tensor, path: Path, threads: int | None
) -> None:
    """The attention maps of the first ``pictures.n`` of these words, drawn afresh into ``path`` as
    :class:`~dlforge.callbacks.seq2seq.AttentionMaps` draws them during a run, on the run's ``threads``
    (its config's; None: torch's default): a barely trained model's near-ties would break otherwise."""
    from dlforge.callbacks.seq2seq import AttentionMaps, attention_figure
    from dlforge.viz import save_figure

    n = AttentionMaps(**model.hparams.pictures).n
    src, tgt = src[:n], tgt[:n]
    src = src[:, : int(word_lengths(src).max())]
    default = torch.get_num_threads()
    torch.set_num_threads(threads or default)
    try:
        with torch.no_grad():
            tokens, weights = model.eval().decode(src)
    finally:
        torch.set_num_threads(default)
    save_figure(attention_figure(src, tgt, tokens, weights), path)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions of single characters."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


def test_a_tiny_seq2seq_learns_the_rule_on_unseen_words(trained: dict[str, Any], tmp_path: Path) -> None:
    metrics = trained["metrics"]
    assert metrics["test/word_acc"] >= 0.85, metrics
    assert metrics["test/cer"] <= 0.05 and metrics["test/sentence_acc"] >= 0.5, metrics
    assert "test/word_acc_longer" in metrics and "test/word_acc_len_09" in metrics
    model = load_model(trained["best_checkpoint"], want=Seq2Seq)
    assert attention_alignment(model, unseen_words(trained)) >= 0.8
    run = Path(trained["cfg"].paths.output_dir)
    assert (run / "attention" / "epoch_009.png").is_file()  # every 10th epoch's: epochs 9, 19, 29
    src, tgt, _ = tiny_data(trained).splits["test"].tensors  # the test loader's first batch begins so
    redraw_attention(model, src, tgt, tmp_path / "test.png", trained["cfg"].threads)  # the best model's
    assert same_picture(run / "attention" / "test.png", tmp_path / "test.png")
    rows = (run / "accuracy_by_length.csv").read_text().splitlines()
    assert rows[0] == "letters,words,accuracy,longer_than_training" and rows[-1].endswith(",True")


def test_a_broken_attention_misaligns(trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The alignment check above is a real check: attention spread evenly fails it."""
    model = load_model(trained["best_checkpoint"], want=Seq2Seq)
    words = unseen_words(trained)
    monkeypatch.setattr(
        seq2seq_nets, "masked_softmax", lambda scores, mask: mask.expand_as(scores) / mask.sum(-1, True)
    )
    assert attention_alignment(model, words) < 0.5


# --- the tools, as typed -----------------------------------------------------------------------
def run_entry(main: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> None:
    """A ``python -m dlforge.<tool>`` entry point as typed, in this process (start-up costs ~10 s)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["tool", *args])
    main()


def test_predict_cli_translates_text(
    trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ckpt = trained["best_checkpoint"]
    run_entry(predict_main, monkeypatch, tmp_path, f"ckpt_path={ckpt}", "text=Hello, world!")
    assert capsys.readouterr().out.strip().splitlines()[-1] == "Ellohay, orldway!"
    run_entry(predict_main, monkeypatch, tmp_path, f"ckpt_path={ckpt}", "text=Hello, café!")
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines()[-1] == "Ellohay, café!"
    assert "note: kept as written (letters outside a-z): café" in captured.err
    texts = tmp_path / "texts.txt"
    texts.write_text("Hello, world!\n\nthe world\n", encoding="utf-8")
    run_entry(predict_main, monkeypatch, tmp_path, f"ckpt_path={ckpt}", f"input={texts}", "output=out.csv")
    assert (tmp_path / "out.csv").read_text().splitlines() == [
        "text,translation",
        '"Hello, world!","Ellohay, orldway!"',
        "the world,ethay orldway",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("   ", 'error: nothing to translate: pass some English, e.g. text="Hello, world!"'),
        (
            "a" + "b" * 44,
            "error: the word abbbbbbbbbbbbbbbbbbb... has 45 letters; this model translates words",
        ),
    ],
)
def test_predict_cli_refuses_empty_and_overlong_input_in_one_line(
    trained: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    text: str,
    message: str,
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_entry(
            predict_main, monkeypatch, tmp_path, f"ckpt_path={trained['best_checkpoint']}", f"text={text}"
        )
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and err[0].startswith(message)


def test_export_keeps_the_decoding_loop_and_matches_pytorch_on_the_test_set(
    trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ckpt, corpus = trained["best_checkpoint"], trained["cfg"].data.paths[0]
    output = tmp_path / "piglatin.pt"
    data_options = [f"data.paths=[{corpus}]", *TINY_DATA, "seed=1"]  # the training run's split
    run_entry(
        export_main, monkeypatch, tmp_path, f"ckpt_path={ckpt}", "format=torchscript", f"output={output}",
        *data_options, "check.samples=100000", "check.require_data=true",
    )  # fmt: skip
    out = capsys.readouterr().out
    test_rows = len(tiny_data(trained).splits["test"])
    assert f"exported seq2seq to {output}" in out
    assert f"check passed on {test_rows} piglatin test inputs: max |difference| tokens 0" in out
    card = json.loads(output.with_suffix(".json").read_text())
    assert card["task"] == "translation" and card["format"] == "torchscript" and card["decoding"] == "greedy"
    exported, original = from_export(output), load(ckpt)
    assert isinstance(exported, TranslatorModel) and exported.backend == "torchscript"
    texts = ["Hello, world!", "The quick brown fox jumps over the lazy dog.", "Strength and rhythm"]
    assert exported.translate(texts) == original.translate(texts)
    translation, weights = exported.attention("world")
    assert translation == original.translate(["world"])[0] and weights.shape == (len(translation) + 1, 5)
    with pytest.raises(
        DlforgeError, match="decodes in a loop that only TorchScript keeps; use format=torchscript"
    ):
        export(export_cfg(Path(corpus).parent, ckpt, tmp_path / "x.onnx", "format=onnx"))


def test_train_cli_as_typed_with_the_transformer(corpus: Path, run_main, tmp_path: Path) -> None:
    result = run_main(
        "train.py", "model=seq2seq_transformer", f"data.paths=[{corpus}]", *TINY_DATA, *FAST_RUN,
        "model.net.dim=16", "model.net.ff=32", "optimizer.lr=0.003", "hydra.run.dir=outputs/run",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "outputs" / "run"
    record = json.loads((run / "metrics.json").read_text())
    metrics = record["metrics"]
    with open(run / "metrics.csv") as f:
        losses = [float(row["train/loss_epoch"]) for row in csv.DictReader(f) if row["train/loss_epoch"]]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert {"test/cer", "test/sentence_acc", "val/word_acc", "val/cer"} <= set(metrics)
    model = load_model(run / "checkpoints" / "last.ckpt")
    assert model.hparams.net["name"] == "transformer_seq2seq" and model.hparams.data["max_train_len"] == 8
    # the test figures, recomputed from the tested (best) model's words on the test batches it saw
    # (trainer.limit_test_batches=2 of FAST), each cut to its longest word as the model cuts them
    best = load_model(record["best_checkpoint"], want=Seq2Seq).eval()
    data = instantiate(OmegaConf.load(run / "config.yaml").data)
    data.setup()
    outputs, targets, correct, lengths, sentence = [], [], [], [], []
    for _, (src, tgt, tags) in zip(range(2), data.test_dataloader(), strict=False):
        src, tgt = best.trimmed(src, tgt)
        with torch.no_grad():
            tokens, _ = best.decode(src, best.hparams.beam)
        outputs += decode_tokens(tokens)
        targets += decode_tokens(tgt)
        correct.append((tokens == tgt).all(dim=1))
        lengths.append(word_lengths(src))
        sentence.append(tags)
    correct, lengths, sentence = torch.cat(correct), torch.cat(lengths), torch.cat(sentence)
    unseen = (sentence == UNSEEN) | (sentence == SYNTHETIC)  # real and made-up: the by-length curve
    within = (sentence == UNSEEN) & (lengths <= 8)
    assert metrics["test/word_acc"] == pytest.approx(float(correct[within].float().mean()))
    picked = within.nonzero().flatten().tolist()
    outputs, targets = [outputs[i] for i in picked], [targets[i] for i in picked]
    edits = sum(edit_distance(o, t) for o, t in zip(outputs, targets, strict=True))
    assert metrics["test/cer"] == pytest.approx(edits / sum(map(len, targets)), abs=1e-6)
    # accuracy by length, as written and as drawn: the same from those words' results
    from types import SimpleNamespace

    from dlforge.callbacks.seq2seq import LengthAccuracyPlot

    best.test_by_length.update(lengths[unseen], correct[unseen])
    redrawn = tmp_path / "redrawn"
    redrawn.mkdir()
    LengthAccuracyPlot().on_test_epoch_end(
        SimpleNamespace(is_global_zero=True, loggers=[]),
        SimpleNamespace(test_by_length=best.test_by_length, hparams=best.hparams, run_dir=redrawn),
    )
    csv_name = "accuracy_by_length.csv"
    assert (run / csv_name).read_text() == (redrawn / csv_name).read_text()
    assert same_picture(run / "accuracy_by_length.png", redrawn / "accuracy_by_length.png")
    # the attention maps of the best epoch: its checkpoint's weights on the first validation words
    epoch = torch.load(record["best_checkpoint"], weights_only=True)["epoch"]
    name = f"epoch_{epoch:03d}.png"
    src, tgt, _ = data.splits["val"].tensors
    redraw_attention(best, src, tgt, redrawn / name, OmegaConf.load(run / "config.yaml").threads)
    assert same_picture(run / "attention" / name, redrawn / name)
    pictures = sorted(p.name for p in (run / "attention").glob("epoch_*.png"))
    assert pictures == ["epoch_000.png", "epoch_001.png"]  # one every epoch
