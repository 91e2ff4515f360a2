"""GloVe word vectors: read the text format (any dimension, also inside ``glove.6B.zip``), download
the upstream archive, and cache the vectors as a memory-mapped ``.npy`` + word list.

The first read of ``glove.6B.300d.txt`` (400,000 x 300) parses 1 GB of text; the cache under
``paths.cache_dir`` (the data dir may be read-only) is keyed by the source's path, size and
modification time, so a changed file is read again and a second load only maps the array.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import shutil
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO

import numpy as np
import torch

from dlforge.data.text_encoder import PAD_ID
from dlforge.errors import DataNotFoundError, DlforgeError, first_line

log = logging.getLogger(__name__)

#: The upstream archive (Pennington et al. 2014): glove.6B.{50,100,200,300}d.txt, 862 MB zipped.
GLOVE_6B_URL = "https://nlp.stanford.edu/data/glove.6B.zip"
GLOVE_6B_MD5 = "056ea991adb4740ac6bf1b6d9b50408b"
_UPSTREAM_NAME = re.compile(r"glove\.6B\.\d+d\.txt")  # 50, 100, 200, 300
_CHUNK_LINES = 20_000


@dataclass
class GloveVectors:
    """Words and their vectors (rows of a possibly memory-mapped float32 array)."""

    words: list[str]
    vectors: np.ndarray
    source: str = ""

    @cached_property
    def index(self) -> dict[str, int]:
        """Row of every word (built on first use: 400,000 entries take a while)."""
        return dict(zip(self.words, range(len(self.words)), strict=True))

    def find(self, words: Iterable[str]) -> dict[str, int]:
        """Rows of those of ``words`` that have a vector (one pass, no full index)."""
        wanted = set(words)
        return {word: row for row, word in enumerate(self.words) if word in wanted}

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.words)


def locate_glove(path: str | Path, dim: int | None = None, download: bool = False) -> tuple[Path, str | None]:
    """Where to read ``path`` from: ``(file, zip member or None)``.

    ``path`` is a GloVe text file or a zip holding one (the member picked by ``dim``). A missing
    ``glove.6B.<dim>d.txt`` is read from a ``glove.6B.zip`` beside it, which is downloaded first
    when ``download`` is true.
    """
    path = Path(path).expanduser()
    if path.suffix == ".zip":
        if not path.is_file():
            _download_or_fail(path, download)
        return path, _zip_member(path, dim)
    if path.is_file():
        return path, None
    upstream = _UPSTREAM_NAME.fullmatch(path.name)
    archive = path.with_name("glove.6B.zip")
    if upstream and not archive.is_file():
        _download_or_fail(archive, download, wanted=path)
    if upstream:
        return archive, path.name
    raise DataNotFoundError(
        f"no GloVe file at {path}; set data.glove.path to a GloVe .txt (or glove.6B.zip), "
        "or point DATA_DIR at a folder holding glove/"
    )


def _zip_member(archive: Path, dim: int | None) -> str:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise DlforgeError(
            f"{archive} is not a readable zip archive ({err}); pass a GloVe .txt or .zip"
        ) from None
    with zf:
        names = [n for n in zf.namelist() if n.endswith(".txt")]
    matches = [n for n in names if dim and n.endswith(f".{dim}d.txt")] or (names if len(names) == 1 else [])
    if len(matches) != 1:
        raise DlforgeError(f"{archive} holds {names}; choose one with data.glove.dim=<50|100|200|300>")
    return matches[0]


def _download_or_fail(archive: Path, download: bool, wanted: Path | None = None) -> None:
    wanted = wanted or archive
    if not download:
        raise DataNotFoundError(
            f"no GloVe file at {wanted} and download is off; put glove.6B.zip or the .txt there, or "
            "set data.glove.path to a GloVe file you have"
        )
    from torchvision.datasets.utils import download_url

    log.info("downloading %s to %s (862 MB)", GLOVE_6B_URL, archive.parent)
    try:
        download_url(GLOVE_6B_URL, str(archive.parent), filename=archive.name, md5=GLOVE_6B_MD5)
    except Exception as err:  # network errors come in many types
        reason = first_line(err)
        raise DataNotFoundError(
            f"no GloVe file at {wanted} and downloading {GLOVE_6B_URL} failed ({reason}); "
            "download it by hand into that folder or set data.glove.path"
        ) from None


def cache_key(source: Path, member: str | None) -> str:
    """Changes whenever the source file does (path, size, modification time) or the member read."""
    stat = source.stat()
    text = f"{source.resolve()}|{member}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def load_glove(
    path: str | Path, cache_dir: str | Path | None = None, dim: int | None = None, download: bool = False
) -> GloveVectors:
    """Read GloVe vectors, through the cache in ``cache_dir`` when one is given."""
    source, member = locate_glove(path, dim, download)
    label = f"{source}:{member}" if member else str(source)
    if cache_dir is None:
        return GloveVectors(*read_glove_text(source, member), label)
    name = Path(member or source.name).stem
    folder = Path(cache_dir).expanduser() / "glove" / f"{name}-{cache_key(source, member)}"
    start = time.perf_counter()
    if not (folder / "words.txt").is_file():
        words, vectors = read_glove_text(source, member)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.save(tmp / "vectors.npy", vectors)
        (tmp / "words.txt").write_text("\n".join(words), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        log.info(
            "GloVe %s: %d x %d read in %.1f s, cached in %s",
            name,
            *vectors.shape,
            time.perf_counter() - start,
            folder,
        )
    vectors = np.load(folder / "vectors.npy", mmap_mode="r")
    words = (folder / "words.txt").read_text(encoding="utf-8").split("\n")
    glove = GloveVectors(words, vectors, label)
    log.info("GloVe %s: %d x %d loaded in %.2f s", name, *vectors.shape, time.perf_counter() - start)
    return glove


def _open_text(source: Path, member: str | None) -> IO[str]:
    if member is None:
        return open(source, encoding="utf-8", errors="replace", newline="\n")
    archive = zipfile.ZipFile(source)
    return io.TextIOWrapper(archive.open(member), encoding="utf-8", errors="replace", newline="\n")


def read_glove_text(source: Path, member: str | None = None) -> tuple[list[str], np.ndarray]:
    """Parse the text format: ``word v1 ... vD`` a line (a word2vec/fastText ``count dim`` header
    is skipped); vectors as float32 (N, D)."""
    words: list[str] = []
    chunks: list[np.ndarray] = []
    with _open_text(source, member) as f:
        lines = _data_lines(f)
        first = next(lines, None)
        if first is None:
            raise DlforgeError(f"{source} holds no vectors")
        dim = len(first.rstrip().split(" ")) - 1
        if dim < 1:
            raise DlforgeError(
                f"{source}: the first line holds no numbers ({first.strip()[:80]!r}); "
                "data.glove.path needs GloVe's text format (word v1 ... vN per line)"
            )
        chunk = [first]
        for line in lines:
            chunk.append(line)
            if len(chunk) == _CHUNK_LINES:
                chunks.append(_parse_chunk(chunk, dim, words, source))
                chunk = []
        if chunk:
            chunks.append(_parse_chunk(chunk, dim, words, source))
    return words, np.concatenate(chunks)


def _data_lines(f: IO[str]) -> Iterator[str]:
    for number, line in enumerate(f):
        if number == 0 and re.fullmatch(r"\d+ \d+\s*", line):
            continue  # word2vec / fastText header "count dim"
        if line.strip():
            yield line


def _parse_chunk(lines: list[str], dim: int, words: list[str], source: Path) -> np.ndarray:
    """Vectors of a chunk of lines (one C-level parse); words may hold spaces (split from the right)."""
    heads, _, tails = zip(*(line.rstrip().partition(" ") for line in lines), strict=True)
    try:
        values = np.loadtxt(tails, dtype=np.float32, delimiter=" ", comments=None, quotechar=None, ndmin=2)
    except ValueError:
        values = np.empty((0, 0), np.float32)
    if values.shape != (len(lines), dim):  # words holding spaces: split each line from the right
        parts = [line.rstrip().rsplit(" ", dim) for line in lines]
        bad = next((line for line, p in zip(lines, parts, strict=True) if len(p) != dim + 1), None)
        if bad is not None:
            raise DlforgeError(
                f"{source}: a line does not hold a word and {dim} numbers: {bad[:80]!r}; "
                "data.glove.path needs GloVe's text format (word v1 ... vN per line)"
            )
        heads = tuple(p[0] for p in parts)
        try:
            values = np.asarray([p[1:] for p in parts], dtype=np.float32)
        except ValueError:  # a value that is not a number: say which line
            bad = next(line for line, p in zip(lines, parts, strict=True) if not _numbers(p[1:]))
            raise DlforgeError(
                f"{source}: a line holds something other than a word and {dim} numbers: "
                f"{bad.strip()[:80]!r}; "
                "data.glove.path needs GloVe's text format (word v1 ... vN per line)"
            ) from None
    if not np.isfinite(values).all():
        bad = lines[int(np.flatnonzero(~np.isfinite(values).all(1))[0])]
        raise DlforgeError(
            f"{source}: a vector holds a value that is not a finite number: {bad.strip()[:80]!r}"
        )
    words.extend(heads)
    return values


def _numbers(texts: list[str]) -> bool:
    try:
        np.asarray(texts, dtype=np.float32)
    except ValueError:
        return False
    return True


def embedding_matrix(
    vocab: list[str],
    glove: GloveVectors | None,
    dim: int = 300,
    missing: str = "random",
    seed: int = 0,
    counts: dict[str, int] | None = None,
) -> torch.Tensor:
    """(len(vocab), D) float32 rows: a word's GloVe vector, or for words GloVe lacks zeros
    (``missing="zero"``) or uniform random values of the GloVe vectors' variance (``"random"``,
    as Kim 2014). Row 0 (PAD) is zero. Without ``glove``, every row but PAD is random (CNN-rand).

    Logs the coverage, by vocabulary words and (with ``counts``) by training tokens.
    """
    if missing not in ("random", "zero"):
        raise DlforgeError(f"data.glove.missing must be random or zero, not {missing!r}")
    found_rows = glove.find([*vocab, *(counts or {})]) if glove is not None else {}
    rows = [found_rows.get(word, -1) for word in vocab]
    rows[PAD_ID] = -1
    found = np.array([r >= 0 for r in rows])
    dim = glove.dim if glove is not None else dim
    weights = np.zeros((len(vocab), dim), np.float32)
    if found.any():
        weights[found] = glove.vectors[np.array(rows)[found]]
    # U(-a, a) has variance a^2 / 3: match the pre-trained vectors (0.25 without any, as Kim's code)
    scale = float(np.sqrt(3.0) * weights[found].std()) if found.sum() > 1 else 0.25
    if missing == "random":
        rng = np.random.default_rng(seed)
        fill = ~found
        fill[PAD_ID] = False
        weights[fill] = rng.uniform(-scale, scale, size=(int(fill.sum()), dim))
    if glove is not None:
        words = len(vocab) - 2
        hit = int(found.sum())
        message = (
            f"GloVe ({glove.source}) covers {hit} of {words} vocabulary words ({hit / max(words, 1):.1%})"
        )
        if counts:
            total = sum(counts.values())
            covered = sum(n for w, n in counts.items() if w in found_rows)
            message += f", {covered / max(total, 1):.1%} of training tokens"
        log.info("%s; the other %d get %s vectors", message, words - hit, missing)
    return torch.from_numpy(weights)
