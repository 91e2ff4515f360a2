"""Explore and score word vectors: ``python -m dlforge.embeddings <command> [words] key=value ...``.

The vectors are a word2vec checkpoint (``vectors=<run>/checkpoints/last.ckpt``) or a GloVe-format
text file (``vectors=glove.6B.50d.txt``):

- ``evaluate``: the benchmark scores training logs (analogies, WordSim-353, SimLex-999, coverage),
  printed and written to ``metrics.json`` in the run dir;
- ``neighbours word=king k=10`` (or ``neighbours king queen``): the nearest words by cosine;
- ``analogy "king - man + woman"``: 3CosAdd, the query's words excluded from the answers;
- ``similarity king queen``: the cosine of two words;
- ``map [words ...] n=200 method=pca|tsne``: a PNG placing the words (default: the ``n`` most
  frequent of three letters or more) in two dimensions;
- ``export ckpt_path=<ckpt> output=vectors.txt``: a checkpoint's vectors in GloVe's text format,
  which the text classifiers read (``data.glove.path=vectors.txt``).

Results also go to ``result.json`` in the run dir (``outputs/embeddings/<time>/``).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from dlforge.cli import hydra_entry
from dlforge.data.word_benchmarks import read_benchmarks
from dlforge.errors import DlforgeError
from dlforge.outputs import run_record, write_json
from dlforge.viz import save_figure
from dlforge.word_vectors import WordVectors, load_vectors, map_figure

log = logging.getLogger("dlforge")

COMMANDS = ("evaluate", "neighbours", "analogy", "similarity", "map", "export")
#: Hydra's own command-line flags, and which take a value
HYDRA_FLAGS = {"-h", "--help", "--hydra-help", "--version", "-m", "--multirun", "--resolve", "--run"}
HYDRA_VALUE_FLAGS = {"-c", "--cfg", "-p", "--package", "-cp", "--config-path", "-cn", "--config-name"}
HYDRA_VALUE_FLAGS |= {"-cd", "--config-dir", "-i", "--info", "-sc", "--shell-completion"}


def source_of(cfg: DictConfig) -> str:
    """The vectors to read: ``vectors=`` or ``ckpt_path=`` (the same thing, one of them)."""
    given = [cfg.get(key) for key in ("vectors", "ckpt_path") if cfg.get(key)]
    if len(given) != 1:
        raise DlforgeError(
            "pass the word vectors: vectors=<GloVe .txt or word2vec .ckpt> (or ckpt_path=<.ckpt>)"
        )
    return str(given[0])


def words_of(cfg: DictConfig) -> list[str]:
    return [str(w) for w in [*([cfg.word] if cfg.get("word") else []), *(cfg.get("words") or [])]]


def evaluate(cfg: DictConfig, vectors: WordVectors) -> dict[str, Any]:
    benchmarks = read_benchmarks(dict(cfg.benchmarks), option="benchmarks")
    if benchmarks is None:
        raise DlforgeError("no benchmarks: set benchmarks.folder=<folder holding questions-words.txt, ...>")
    metrics = vectors.evaluate(benchmarks, cfg.analogy_vocab)
    analogies = vectors.analogy_accuracy(benchmarks.questions, benchmarks.sections, cfg.analogy_vocab)
    for name, value in metrics.items():
        print(f"{name}\t{value:.4f}", flush=True)
    print(f"analogy questions\t{analogies['questions']} of {analogies['total']}", flush=True)
    return {
        "metrics": metrics,
        "analogy_questions": analogies["questions"],
        "sections": analogies["sections"],
    }


def neighbours(cfg: DictConfig, vectors: WordVectors) -> dict[str, Any]:
    words = words_of(cfg)
    if not words:
        raise DlforgeError("neighbours of which word? pass word=king (or words after the command)")
    found = {}
    for word in words:
        found[word] = [{"word": w, "cosine": c} for w, c in vectors.neighbours(word, cfg.k, cfg.restrict)]
        print(f"{word}: " + ", ".join(f"{r['word']} {r['cosine']:.3f}" for r in found[word]), flush=True)
    return {"neighbours": found}


def analogy(cfg: DictConfig, vectors: WordVectors) -> dict[str, Any]:
    if not cfg.get("query"):
        raise DlforgeError('which analogy? pass an expression: analogy "king - man + woman"')
    result = vectors.explore(str(cfg.query), cfg.k, cfg.restrict)
    for row in result["results"]:
        print(f"{row['word']}\t{row['cosine']:.4f}", flush=True)
    return result


def similarity(cfg: DictConfig, vectors: WordVectors) -> dict[str, Any]:
    words = words_of(cfg)
    if len(words) != 2:
        raise DlforgeError(f"similarity takes two words (similarity king queen), not {words}")
    cosine = vectors.similarity(*words)
    print(f"{words[0]}\t{words[1]}\t{cosine:.4f}", flush=True)
    return {"words": words, "cosine": cosine}


def draw_map(cfg: DictConfig, vectors: WordVectors) -> dict[str, Any]:
    words = words_of(cfg) or vectors.frequent_words(cfg.n)
    if len(words) < 3:
        raise DlforgeError(f"a map needs 3 words or more, got {words}")
    points = vectors.project(words, cfg.method, cfg.seed)
    method = {"pca": "PCA", "tsne": "t-SNE"}.get(cfg.method, cfg.method)
    title = f"{len(words)} words of {Path(vectors.source).name} ({method} of unit vectors)"
    output = Path(cfg.output or Path(cfg.paths.output_dir) / "word_map.png")
    save_figure(map_figure(words, points, title), output)
    print(output, flush=True)
    return {"output": str(output), "words": words, "points": points.round(4).tolist()}


def export(cfg: DictConfig, vectors: WordVectors) -> dict[str, Any]:
    """Write GloVe's text format, most frequent word first, to a temporary name, then rename."""
    output = Path(cfg.output or Path(cfg.paths.output_dir) / "vectors.txt")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for word, row in zip(vectors.words, vectors.vectors.tolist(), strict=True):
            f.write(word + " " + " ".join(f"{x:.6f}" for x in row) + "\n")
    os.replace(tmp, output)
    print(f"{len(vectors)} x {vectors.dim} vectors in {output}", flush=True)
    return {"output": str(output)}


ACTIONS = {
    "evaluate": evaluate,
    "neighbours": neighbours,
    "analogy": analogy,
    "similarity": similarity,
    "map": draw_map,
    "export": export,
}


def embeddings(cfg: DictConfig) -> dict[str, Any]:
    """Run ``cfg.command`` on the vectors of ``cfg.vectors`` and write ``result.json``."""
    if cfg.get("command") not in ACTIONS:
        raise DlforgeError(f"command={cfg.get('command')}: choose one of {', '.join(ACTIONS)}")
    source = source_of(cfg)
    if cfg.command == "export" and Path(source).suffix != ".ckpt":
        raise DlforgeError(f"export writes a word2vec checkpoint's vectors; {source} is not a .ckpt")
    start = time.perf_counter()
    vectors = load_vectors(source, cfg.paths.cache_dir)
    result = ACTIONS[cfg.command](cfg, vectors)
    record = run_record(
        "embeddings",
        result.pop("metrics", {}),
        time.perf_counter() - start,
        command=cfg.command,
        vectors=source,
        vocabulary=len(vectors),
        dim=vectors.dim,
        **result,
    )
    write_json(
        Path(cfg.paths.output_dir) / ("metrics.json" if cfg.command == "evaluate" else "result.json"), record
    )
    return record


def hydra_value(text: str) -> str:
    """``text`` as a quoted Hydra value, taken verbatim (quotes, commas, ``${`` are not Hydra's);
    a value already in quotes stays as it is."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text
    text = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), text)
    return "'" + text.replace("${", "\\${") + "'"


def hydra_arguments(argv: list[str]) -> list[str]:
    """``<command> [words ...] key=value ...`` as Hydra overrides: ``command=<command>``, the words as
    ``query=`` (analogy: one expression, signs included) or ``words=[...]``; ``query=`` verbatim."""
    command, words, overrides = None, [], []
    arguments = iter(argv)
    for arg in arguments:
        if arg.startswith("query="):
            overrides.append("query=" + hydra_value(arg[len("query=") :]))
        elif "=" in arg or arg in HYDRA_FLAGS:
            overrides.append(arg)
        elif arg in HYDRA_VALUE_FLAGS:
            overrides += [arg, next(arguments, "")]
        elif command is None:
            command = arg
        else:
            words.append(arg)
    if command is not None:
        overrides.insert(0, f"command={command}")
    if words and command == "analogy":
        overrides.append(f"query={hydra_value(' '.join(words))}")
    elif words:
        overrides.append(f"words=[{','.join(hydra_value(w) for w in words)}]")
    return overrides


@hydra_entry("embeddings")
def _main(cfg: DictConfig) -> None:
    embeddings(cfg)


def main() -> None:
    sys.argv = [sys.argv[0], *hydra_arguments(sys.argv[1:])]
    _main()


if __name__ == "__main__":
    main()
