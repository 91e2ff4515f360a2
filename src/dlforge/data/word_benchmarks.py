"""The standard word-vector benchmarks, read from their distributed text formats.

- analogies (Mikolov et al. 2013, ``questions-words.txt``): ``: section`` lines, then questions
  ``a b c d`` a line ("a is to b as c is to d");
- similarity (WordSim-353, SimLex-999): ``word1<TAB>word2<TAB>human score`` a line (spaces also
  separate), ``#`` lines are comments; the metric is named after the file (``wordsim353.tsv`` ->
  ``wordsim353``).

A malformed line is an error that names the file and the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlforge.errors import DataNotFoundError, DlforgeError

#: one analogy question: (a, b, c, expected d)
Question = tuple[str, str, str, str]
#: one scored word pair: (word1, word2, human score)
Pair = tuple[str, str, float]


@dataclass
class WordBenchmarks:
    """Analogy questions (with their section) and scored word pairs by benchmark name."""

    questions: list[Question] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    similarity: dict[str, list[Pair]] = field(default_factory=dict)


def _lines(path: Path) -> list[tuple[int, str]]:
    """Numbered non-empty lines of a UTF-8 text file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DlforgeError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]


def read_analogies(path: str | Path) -> tuple[list[Question], list[str]]:
    """Questions ``(a, b, c, d)`` and the section of each, from a ``questions-words.txt`` file."""
    path = Path(path)
    questions: list[Question] = []
    sections: list[str] = []
    section = ""
    for number, line in _lines(path):
        if line.startswith(":"):
            section = line[1:].strip()
            continue
        words = line.split()
        if len(words) != 4:
            raise DlforgeError(
                f"{path}:{number}: an analogy question is four words 'a b c d', not {line[:80]!r}"
            )
        questions.append((words[0], words[1], words[2], words[3]))
        sections.append(section)
    if not questions:
        raise DlforgeError(f"{path} holds no analogy questions (lines 'a b c d')")
    return questions, sections


def read_pairs(path: str | Path) -> list[Pair]:
    """Scored word pairs ``(word1, word2, score)`` from a WordSim-353 / SimLex-999 style file."""
    path = Path(path)
    pairs: list[Pair] = []
    for number, line in _lines(path):
        if line.startswith("#"):
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        try:
            if len(parts) < 3:
                raise ValueError
            pairs.append((parts[0].strip(), parts[1].strip(), float(parts[2])))
        except ValueError:
            raise DlforgeError(
                f"{path}:{number}: a similarity line is 'word1<TAB>word2<TAB>score', not {line[:80]!r}"
            ) from None
    if len(pairs) < 3:
        raise DlforgeError(f"{path} holds {len(pairs)} scored word pairs; a rank correlation needs 3 or more")
    return pairs


def read_benchmarks(config: dict[str, Any] | None, option: str = "data.benchmarks") -> WordBenchmarks | None:
    """The benchmarks a config names: ``{folder, analogies: <file>, similarity: [<file>, ...]}``
    (file names relative to ``folder``; null entries are skipped); None without a folder.
    ``option`` names the config key in the hint of a missing file's error."""
    if not config or not config.get("folder"):
        return None
    folder = Path(config["folder"]).expanduser()
    files = [config.get("analogies"), *(config.get("similarity") or [])]
    missing = [name for name in files if name and not (folder / name).is_file()]
    if missing:
        raise DataNotFoundError(
            f"no word benchmark {', '.join(missing)} in {folder}; point DATA_DIR at a folder holding "
            f"word-benchmarks/, or set {option}.folder"
        )
    benchmarks = WordBenchmarks()
    if config.get("analogies"):
        benchmarks.questions, benchmarks.sections = read_analogies(folder / config["analogies"])
    for name in config.get("similarity") or []:
        benchmarks.similarity[Path(name).stem] = read_pairs(folder / name)
    return benchmarks
