"""Text classification corpora as LightningDataModules, each in its upstream on-disk layout:
MR, Subj, Cornell movie reviews, IMDB, and your own CSV/TSV (see :mod:`dlforge.data.text_datamodule`
for what every text data module does)."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any, ClassVar

from dlforge.data.files import label_order, read_lines, read_text
from dlforge.data.text_datamodule import TextDataModule, Texts
from dlforge.errors import DataNotFoundError, DlforgeError

log = logging.getLogger(__name__)

CORNELL = "https://www.cs.cornell.edu/people/pabo/movie-review-data"


class _LineFilesDataModule(TextDataModule):
    """One text per line, one file per class."""

    files: ClassVar[dict[str, str]]  # class name -> file under the corpus folder

    def is_present(self) -> bool:
        return all((self.data_dir / self.folder / f).is_file() for f in self.files.values())

    def missing(self) -> str:
        absent = [f for f in self.files.values() if not (self.data_dir / self.folder / f).is_file()]
        return f" (no {', '.join(absent)})" if absent else ""

    def load_corpus(self) -> dict[str, Texts]:
        self.class_names = list(self.files)
        texts: list[str] = []
        labels: list[int] = []
        for label, filename in enumerate(self.files.values()):
            lines = read_lines(self.data_dir / self.folder / filename, self.encoding)
            texts += lines
            labels += [label] * len(lines)
        return {"train": (texts, labels)}


class MRDataModule(_LineFilesDataModule):
    """Sentence polarity v1.0 (Pang & Lee 2005, "MR"): 5331 + 5331 snippets, no test split
    (``rt-polaritydata/rt-polarity.{neg,pos}``)."""

    name = "mr"
    url = f"{CORNELL}/rt-polaritydata.tar.gz"
    folder = "rt-polaritydata"
    files: ClassVar[dict[str, str]] = {"negative": "rt-polarity.neg", "positive": "rt-polarity.pos"}


class SubjDataModule(_LineFilesDataModule):
    """Subjectivity v1.0 (Pang & Lee 2004): 5000 subjective + 5000 objective sentences
    (``rotten_imdb/quote.tok.gt9.5000``, ``plot.tok.gt9.5000``)."""

    name = "subj"
    url = f"{CORNELL}/rotten_imdb.tar.gz"
    folder = "rotten_imdb"
    files: ClassVar[dict[str, str]] = {"objective": "plot.tok.gt9.5000", "subjective": "quote.tok.gt9.5000"}

    def extract_root(self) -> Path:
        return self.data_dir / self.folder  # the archive holds bare files


class _FolderDataModule(TextDataModule):
    """One text per file, one folder per class (``<folder>/<split>/<class>/*.txt``)."""

    classes: ClassVar[dict[str, str]] = {"negative": "neg", "positive": "pos"}  # class -> folder
    split_folders: ClassVar[dict[str, str]] = {}  # split -> folder under the corpus folder

    def is_present(self) -> bool:
        root = self.data_dir / self.folder
        return all(
            (root / s / c).is_dir() for s in self.split_folders.values() for c in self.classes.values()
        )

    def load_corpus(self) -> dict[str, Texts]:
        self.class_names = list(self.classes)
        corpus = {}
        for split, sub in self.split_folders.items():
            texts: list[str] = []
            labels: list[int] = []
            for label, folder in enumerate(self.classes.values()):
                files = sorted((self.data_dir / self.folder / sub / folder).glob("*.txt"))
                texts += [self.clean(read_text(f, self.encoding)) for f in files]
                labels += [label] * len(files)
            if not texts:
                raise DlforgeError(f"no .txt files under {self.data_dir / self.folder / sub}/<class>/")
            corpus[split] = (texts, labels)
        return corpus

    def clean(self, text: str) -> str:
        return text


class MovieReviewsDataModule(_FolderDataModule):
    """Cornell polarity v2.0 (Pang & Lee 2004): 1000 + 1000 full reviews, no test split
    (``txt_sentoken/{neg,pos}/*.txt``)."""

    name = "movie_reviews"
    url = f"{CORNELL}/review_polarity.tar.gz"
    folder = "txt_sentoken"
    split_folders: ClassVar[dict[str, str]] = {"train": ""}


class IMDBDataModule(_FolderDataModule):
    """Large Movie Review Dataset (Maas et al. 2011): 25,000 train + 25,000 test reviews
    (``aclImdb/{train,test}/{neg,pos}/*.txt``; ``unsup/`` is not used)."""

    name = "imdb"
    url = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
    md5 = "7c2ac02c03563afcf9b574c7e56c153a"
    folder = "aclImdb"
    split_folders: ClassVar[dict[str, str]] = {"train": "train", "test": "test"}

    def clean(self, text: str) -> str:
        return text.replace("<br />", " ")


class CSVTextDataModule(TextDataModule):
    """Your own texts: a CSV/TSV file with a header, a text column and a label column.

    Args:
        path: the file (``.tsv``/``.tab`` are tab-separated unless ``delimiter`` says otherwise).
        test_path: an optional test file in the same format (else ``test_size`` is held out).
        text_column, label_column: column names.
        class_names: the labels in class order (default: the labels found, sorted; numbers by value).
        name: the data set's name in logs and checkpoints.
    """

    def __init__(
        self,
        path: str,
        test_path: str | None = None,
        text_column: str = "text",
        label_column: str = "label",
        delimiter: str | None = None,
        class_names: list[str] | None = None,
        name: str = "csv_text",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = Path(path).expanduser()
        self.test_path = Path(test_path).expanduser() if test_path else None
        self.text_column, self.label_column = text_column, label_column
        self.delimiter = delimiter
        self.given_class_names = [str(c) for c in class_names] if class_names else None
        self.name = name

    def is_present(self) -> bool:
        return self.path.is_file() and (self.test_path is None or self.test_path.is_file())

    def prepare_data(self) -> None:
        for path in (self.path, self.test_path):
            if path is not None and not path.is_file():
                raise DataNotFoundError(
                    f"no CSV file at {path}; set data.path (and data.test_path) to your file"
                )

    def load_corpus(self) -> dict[str, Texts]:
        rows = {"train": self._rows(self.path)}
        if self.test_path is not None:
            rows["test"] = self._rows(self.test_path)
        self.class_names = self.given_class_names or label_order({label for _, label in rows["train"]})
        index = {name: i for i, name in enumerate(self.class_names)}
        corpus = {}
        for split, pairs in rows.items():
            unknown = sorted({label for _, label in pairs} - set(index))
            if unknown:
                raise DlforgeError(
                    f"labels {unknown[:5]} in {split} are not among the classes {self.class_names}"
                )
            corpus[split] = ([t for t, _ in pairs], [index[label] for _, label in pairs])
        return corpus

    def _rows(self, path: Path) -> list[tuple[str, str]]:
        delimiter = self.delimiter or ("\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
        reader = csv.DictReader(io.StringIO(read_text(path, self.encoding), newline=""), delimiter=delimiter)
        columns = reader.fieldnames or []
        for column in (self.text_column, self.label_column):
            if column not in columns:
                raise DlforgeError(
                    f"{path} has no column {column!r} (columns: {columns}); "
                    "set data.text_column / data.label_column"
                )
        rows, blank = [], []
        for line, row in enumerate(reader, start=2):
            text, label = (row[self.text_column] or "").strip(), (row[self.label_column] or "").strip()
            if not label:
                raise DlforgeError(f"{path}, line {line}: no {self.label_column!r}; give every row a label")
            if not text:
                blank.append(line)
                continue
            rows.append((text, label))
        if blank:
            log.warning("%s: skipped %d rows with an empty text (lines %s)", path, len(blank), blank[:5])
        if not rows:
            raise DlforgeError(f"{path} holds no rows with a text")
        return rows
