"""Tiny text corpora in their upstream on-disk layouts and tiny GloVe files, written by the tests.

Sentences are learnable: each holds sentiment words of its class (whose GloVe vectors share a
direction) among neutral words and punctuation.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np

POSITIVE = ["good", "great", "witty", "gorgeous", "moving", "brilliant", "fun", "superb"]
NEGATIVE = ["bad", "dull", "boring", "awful", "tedious", "flat", "messy", "weak"]
NEUTRAL = ["the", "film", "movie", "story", "is", "a", "and", "with", "cast", "this", "director"]
PUNCTUATION = [",", ".", "!", "'s", "n't", "do", "it"]
NOT_IN_GLOVE = ["plot", "zorblax"]  # used in sentences, missing from the GloVe files
GLOVE_DIM = 16
MARKER = ".text_corpora_written"


def sentence(rng: np.random.Generator, label: int, n_words: int | None = None) -> str:
    """A short review: two words of the class's sentiment among neutral words and punctuation."""
    words = list(rng.choice(NEUTRAL + NOT_IN_GLOVE, size=n_words or int(rng.integers(3, 9))))
    for word in rng.choice(POSITIVE if label == 1 else NEGATIVE, size=2):
        words.insert(int(rng.integers(0, len(words) + 1)), str(word))
    text = " ".join(words)
    return (
        text + rng.choice([" .", " !", ", it's fun to see .", " , don't miss it ."]) if label else text + " ."
    )


def sentences(label: int, n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [sentence(rng, label) for _ in range(n)]


def glove_vectors(dim: int = GLOVE_DIM, seed: int = 0) -> dict[str, np.ndarray]:
    """Vectors for every test word but ``NOT_IN_GLOVE``; sentiment words lean on dimension 0."""
    rng = np.random.default_rng(seed)
    vectors = {}
    for word in NEUTRAL + PUNCTUATION + POSITIVE + NEGATIVE:
        v = rng.normal(0, 0.3, dim)
        v[0] += 1.0 if word in POSITIVE else -1.0 if word in NEGATIVE else 0.0
        vectors[word] = v
    return vectors


def glove_text(dim: int = GLOVE_DIM, seed: int = 0) -> str:
    return "".join(f"{w} {' '.join(f'{x:.5f}' for x in v)}\n" for w, v in glove_vectors(dim, seed).items())


def write_glove(path: Path, dim: int = GLOVE_DIM, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(glove_text(dim, seed), encoding="utf-8")
    return path


def write_glove_zip(path: Path, dims: tuple[int, ...] = (8, 12)) -> Path:
    """A ``glove.6B.zip`` look-alike holding ``glove.6B.<dim>d.txt`` members."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for dim in dims:
            zf.writestr(f"glove.6B.{dim}d.txt", glove_text(dim))
    return path


def write_lines(path: Path, lines: list[str], encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(line + " \n" for line in lines).encode(encoding))


def write_mr(root: Path, n: int = 60, encoding: str = "latin-1") -> None:
    """``rt-polaritydata/rt-polarity.{pos,neg}`` (the upstream files are Latin-1)."""
    pos = [*sentences(1, n - 1, seed=1), "a café full of naïve charm , good and witty ."]
    write_lines(root / "rt-polaritydata" / "rt-polarity.pos", pos, encoding)
    write_lines(root / "rt-polaritydata" / "rt-polarity.neg", sentences(0, n, seed=2), encoding)


def write_subj(root: Path, n: int = 40) -> None:
    """``rotten_imdb/quote.tok.gt9.5000`` (subjective) and ``plot.tok.gt9.5000`` (objective)."""
    write_lines(root / "rotten_imdb" / "quote.tok.gt9.5000", sentences(1, n, seed=3), "latin-1")
    write_lines(root / "rotten_imdb" / "plot.tok.gt9.5000", sentences(0, n, seed=4), "latin-1")


def write_review_files(folder: Path, label: int, n: int, seed: int, prefix: str = "cv") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        body = (
            "<br /><br />".join(sentence(rng, label) for _ in range(3))
            if prefix == "imdb"
            else ("\n".join(sentence(rng, label) for _ in range(3)))
        )
        name = f"{i}_{7 if label else 2}.txt" if prefix == "imdb" else f"cv{i:03d}_{seed}.txt"
        (folder / name).write_text(body + "\n", encoding="utf-8")


def write_movie_reviews(root: Path, n: int = 20) -> None:
    """``txt_sentoken/{pos,neg}/cvNNN_*.txt``, one review a file."""
    write_review_files(root / "txt_sentoken" / "pos", 1, n, seed=5)
    write_review_files(root / "txt_sentoken" / "neg", 0, n, seed=6)


def write_imdb(root: Path, n: int = 16) -> None:
    """``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt`` with ``<br />`` line breaks."""
    for split, seed in (("train", 7), ("test", 8)):
        write_review_files(root / "aclImdb" / split / "pos", 1, n, seed, prefix="imdb")
        write_review_files(root / "aclImdb" / split / "neg", 0, n, seed + 10, prefix="imdb")
    (root / "aclImdb" / "train" / "unsup").mkdir(exist_ok=True)


def write_csv(path: Path, n: int = 30, delimiter: str = ",") -> Path:
    """A header row, then ``review`` and ``sentiment`` (pos / neg) columns, plus an extra column."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [(text, "pos") for text in sentences(1, n, seed=9)] + [
        (t, "neg") for t in sentences(0, n, seed=10)
    ]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(["id", "review", "sentiment"])
        writer.writerows((i, text, label) for i, (text, label) in enumerate(rows))
    return path


def write_text_data(root: Path) -> Path:
    """Every corpus and a 16-d GloVe file (``glove/tiny.16d.txt``) under ``root``, once."""
    if not (root / MARKER).exists():
        write_mr(root)
        write_subj(root)
        write_movie_reviews(root)
        write_imdb(root)
        write_csv(root / "reviews.csv")
        write_glove(root / "glove" / "tiny.16d.txt")
        (root / MARKER).touch()
    return root


def text_overrides(root: Path, data: str = "mr") -> tuple[str, ...]:
    """Config overrides for a few-step CPU run on the tiny corpora."""
    return (
        f"data={data}",
        f"data.glove.path={root / 'glove' / 'tiny.16d.txt'}",
        "data.max_len=16",
        "data.batch_size=16",
        "data.val_size=0.2",
        "data.test_size=0.2",
        "trainer=cpu",
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=4",
        "trainer.log_every_n_steps=1",
        "trainer.enable_model_summary=false",
    )
