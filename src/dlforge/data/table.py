"""Tabular data: a CSV of numeric and categorical columns and a label column, as standardized tensors.

Numeric columns are standardized with the training split's mean and std, categorical columns
one-hot encoded with the training split's categories (a category first seen later encodes as all
zeros); both encodings and the class weights (for imbalanced labels, e.g. fraud at 0.2% positive)
are plain data in the spec, so a checkpoint alone encodes new rows (:func:`encode_rows`).
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any, ClassVar

import torch

from dlforge.data.files import label_order, read_text
from dlforge.data.tensors import TensorBatches, TensorDataModule
from dlforge.data.text_datamodule import stratified_holdout
from dlforge.errors import DataNotFoundError, DlforgeError

log = logging.getLogger(__name__)

Rows = list[dict[str, str]]
CLASS_WEIGHTS = ("balanced", "none")


def read_rows(path: Path, delimiter: str | None = None, encoding: str = "auto") -> tuple[list[str], Rows]:
    """The header and the rows of a CSV (``.tsv``/``.tab``: tab-separated unless ``delimiter`` says)."""
    delimiter = delimiter or ("\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
    reader = csv.DictReader(io.StringIO(read_text(path, encoding), newline=""), delimiter=delimiter)
    rows = [row for row in reader if any((value or "").strip() for value in row.values())]
    if not reader.fieldnames or not rows:
        raise DlforgeError(f"{path} holds no rows under a header; a table needs a header line and rows")
    return [name.strip() for name in reader.fieldnames], rows


def column_plan(
    header: list[str], label: str, categorical: list[str], drop: list[str], path: Path
) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature columns in file order: every column but the label, the dropped
    and the categorical ones is numeric."""
    if label not in header:
        raise DlforgeError(f"{path} has no column {label!r} (columns: {header}); set data.label_column")
    unknown = [c for c in [*categorical, *drop] if c not in header]
    if unknown:
        raise DlforgeError(
            f"{path} has no column {unknown[0]!r} (columns: {header}); "
            "fix data.categorical_columns / data.drop_columns"
        )
    features = [c for c in header if c != label and c not in drop]
    if not features:
        raise DlforgeError(f"{path} has no feature columns besides {label!r}")
    return [c for c in features if c not in categorical], [c for c in features if c in categorical]


def numeric_values(rows: Rows, column: str, path: Path, first_line: int = 2) -> torch.Tensor:
    """A numeric column as float64, with a clear error at the first value that is not a number."""
    values = []
    for line, row in enumerate(rows, start=first_line):
        text = (row.get(column) or "").strip()
        try:
            values.append(float(text))
        except ValueError:
            what = "no value" if not text else f"{text!r}, not a number"
            raise DlforgeError(
                f"{path}, line {line}: column {column!r} holds {what}; fix the value, or list the "
                f"column in data.categorical_columns if it is a category"
            ) from None
    return torch.tensor(values, dtype=torch.float64)


def encode_rows(rows: Rows, spec: dict[str, Any], source: Path | str = "input") -> torch.Tensor:
    """Feature vectors (N, num_features) for CSV rows, encoded as the spec's training split was."""
    source = Path(source)
    parts = []
    for column in spec["columns"]:
        if column in spec["numeric"]:
            mean, std = spec["numeric"][column]
            parts.append(((numeric_values(rows, column, source) - mean) / std).unsqueeze(1))
        else:
            categories = spec["categorical"][column]
            index = {c: i for i, c in enumerate(categories)}
            onehot = torch.zeros(len(rows), len(categories), dtype=torch.float64)
            for i, row in enumerate(rows):
                j = index.get((row.get(column) or "").strip())
                if j is not None:
                    onehot[i, j] = 1.0
            parts.append(onehot)
    return torch.cat(parts, dim=1).float()


class CSVTableDataModule(TensorDataModule):
    """A labelled table from a CSV file (``data.path``; ``data.test_path`` or a held-out part for testing).

    Args:
        path: the CSV (``.tsv``/``.tab`` are tab-separated unless ``delimiter`` says otherwise).
        test_path: an optional test file with the same columns (else ``test_size`` is held out).
        label_column: the class column.
        categorical_columns: columns one-hot encoded; every other column (but ``drop_columns``) is numeric.
        drop_columns: columns ignored (ids, timestamps).
        class_names: the labels in class order (default: the labels found, sorted; numbers by value).
        class_weights: ``balanced`` (each class weighs n / (classes x its count) in the training
            loss, so rare classes count as much as common ones) or ``none``.
        val_size, test_size: held out (stratified, seeded) for validation and, without a test file, testing.
        name: the data set's name in logs and checkpoints.
        seed: seed of the splits.
        loader: ``batch_size``, ``eval_batch_size``, ``num_workers``, ``pin_memory``, ``on_device``
            (:class:`~dlforge.data.datamodule.LoaderOptions`).
    """

    loader_defaults: ClassVar[dict[str, Any]] = {"batch_size": 256}

    def __init__(
        self,
        path: str,
        test_path: str | None = None,
        label_column: str = "label",
        categorical_columns: list[str] | None = None,
        drop_columns: list[str] | None = None,
        class_names: list[str] | None = None,
        class_weights: str = "balanced",
        val_size: float = 0.1,
        test_size: float = 0.2,
        delimiter: str | None = None,
        encoding: str = "auto",
        name: str = "csv_table",
        seed: int = 0,
        **loader: Any,
    ) -> None:
        super().__init__(**loader)
        if class_weights not in CLASS_WEIGHTS:
            raise DlforgeError(f"data.class_weights must be one of {CLASS_WEIGHTS}, not {class_weights!r}")
        self.path = Path(path).expanduser()
        self.test_path = Path(test_path).expanduser() if test_path else None
        self.label_column = label_column
        self.categorical_columns = list(categorical_columns or [])
        self.drop_columns = list(drop_columns or [])
        self.given_class_names = [str(c) for c in class_names] if class_names else None
        self.class_weights = class_weights
        self.val_size, self.test_size = val_size, test_size
        self.delimiter, self.encoding = delimiter, encoding
        self.name = name
        self.seed = seed
        self.class_names: list[str] = []
        self.header: list[str] = []
        self._spec: dict[str, Any] | None = None
        self._trained_spec: dict[str, Any] | None = None

    def prepare_data(self) -> None:
        for path in (self.path, self.test_path):
            if path is not None and not path.is_file():
                raise DataNotFoundError(
                    f"no CSV file at {path}; set data.path (and data.test_path) to your table"
                )

    def adopt_spec(self, spec: dict[str, Any]) -> None:
        """Encode with a trained model's columns, statistics and categories (evaluating a checkpoint)."""
        self._trained_spec = spec
        self.splits = {}

    def setup(self, stage: str | None = None) -> None:
        """Read, split and encode the table (once; every stage needs the training split's statistics)."""
        if self.splits:
            return
        self.prepare_data()
        self.header, rows = read_rows(self.path, self.delimiter, self.encoding)
        numeric, categorical = column_plan(
            self.header, self.label_column, self.categorical_columns, self.drop_columns, self.path
        )
        if self._trained_spec is not None:
            missing = [c for c in self._trained_spec["columns"] if c not in self.header]
            if missing:
                raise DlforgeError(
                    f"{self.path} lacks the model's columns {missing}; pass the table it was trained on"
                )
        tests = None
        if self.test_path is not None:
            test_header, tests = read_rows(self.test_path, self.delimiter, self.encoding)
            missing = [c for c in [*numeric, *categorical, self.label_column] if c not in test_header]
            if missing:
                raise DlforgeError(f"{self.test_path} lacks the columns {missing} of {self.path}")
        for source, part in ((self.path, rows), (self.test_path, tests or [])):
            for column in numeric:
                numeric_values(part, column, source)  # in file order: an error names the file's line
        labels = self._labels(rows, tests)
        y = torch.tensor([labels[r[self.label_column].strip()] for r in rows], dtype=torch.long)
        if tests is None:
            test_idx, pool = stratified_holdout(y, self.test_size, self.seed + 1)
            tests, y_test = [rows[i] for i in test_idx.tolist()], y[test_idx]
        else:
            pool = torch.arange(len(rows))
            y_test = torch.tensor([labels[r[self.label_column].strip()] for r in tests], dtype=torch.long)
        val_idx, train_idx = (pool[i] for i in stratified_holdout(y[pool], self.val_size, self.seed))
        train_rows = [rows[i] for i in train_idx.tolist()]
        self._spec = self._trained_spec or self._fit_spec(train_rows, y[train_idx], numeric, categorical)
        split_rows = {
            "train": (train_rows, y[train_idx]),
            "val": ([rows[i] for i in val_idx.tolist()], y[val_idx]),
        }
        split_rows["test"] = (tests, y_test)
        for split, (part, targets) in split_rows.items():
            source = self.test_path if split == "test" and self.test_path else self.path
            self.splits[split] = TensorBatches(encode_rows(part, self._spec, source), targets)
        log.info(
            "%s: %d train / %d val / %d test rows, %d features (%d numeric, %d categorical columns)",
            self.name,
            *(len(self.splits[s]) for s in ("train", "val", "test")),
            self._spec["num_features"],
            len(numeric),
            len(categorical),
        )

    def _labels(self, rows: Rows, tests: Rows | None) -> dict[str, int]:
        """Class name -> index, checking every row has a known label and there are two classes or more."""
        found = {(r.get(self.label_column) or "").strip() for r in rows}
        if "" in found:
            raise DlforgeError(f"{self.path}: a row has no {self.label_column!r}; give every row a label")
        names = self.given_class_names or label_order(found)
        if self._trained_spec is not None:
            names = list(self._trained_spec["class_names"])
        if len(found) < 2:
            raise DlforgeError(
                f"{self.path}: every row has {self.label_column}={next(iter(found))!r}; a classifier needs "
                "rows of two classes or more"
            )
        for source, part in ((self.path, rows), (self.test_path, tests or [])):
            unknown = sorted({(r.get(self.label_column) or "").strip() for r in part} - set(names))
            if unknown:
                raise DlforgeError(f"{source}: labels {unknown[:5]} are not among the classes {names}")
        self.class_names = names
        return {name: i for i, name in enumerate(names)}

    def _fit_spec(
        self, rows: Rows, labels: torch.Tensor, numeric: list[str], categorical: list[str]
    ) -> dict[str, Any]:
        """The encoding learnt from the training split: per-column mean/std, categories, class weights."""
        stats = {}
        for column in numeric:
            values = numeric_values(rows, column, self.path)
            std = values.std().item() if len(values) > 1 else 0.0
            stats[column] = [values.mean().item(), std if std > 0 else 1.0]
        categories = {c: sorted({(r.get(c) or "").strip() for r in rows}) for c in categorical}
        counts = torch.bincount(labels, minlength=len(self.class_names)).double()
        weights = None
        if self.class_weights == "balanced":
            weights = (counts.sum() / (len(counts) * counts.clamp_min(1))).tolist()
        return {
            "name": self.name,
            "label_column": self.label_column,
            "columns": [c for c in self.header if c in stats or c in categories],
            "numeric": stats,
            "categorical": categories,
            "num_features": len(stats) + sum(len(v) for v in categories.values()),
            "class_weights": weights,
        }

    @property
    def spec(self) -> dict[str, Any]:
        """What a model needs to encode rows like this data module, as plain (checkpoint-safe) values."""
        self.setup()
        assert self._spec is not None
        return {**self._spec, "num_classes": len(self.class_names), "class_names": list(self.class_names)}
