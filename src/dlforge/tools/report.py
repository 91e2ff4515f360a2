"""Tabulate runs: ``python -m dlforge.report <sweep or runs dir> [--metric test/acc]``.

Reads every ``metrics.json`` below the folder (one per run or multirun job) and writes, next to
them, ``report.md`` and ``report.csv`` (the swept values against the final metrics, failed jobs
included) and ``report.png`` (a chosen metric against the first swept value). With
``--results FILE`` it writes instead a table of experiments against the figures they reproduce
(the ``reference`` of each experiment config). On the sweep dir of a search (``hparams_search=``)
it reports the Optuna study instead (:mod:`dlforge.study_report`): best trial, parameter
importances, optimization history, parallel coordinates.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from dlforge.errors import DlforgeError
from dlforge.outputs import Run, atomic_write, load_runs, markdown, swept_values, write_json, write_text
from dlforge.study import SEARCH_FILE


def default_metric(runs: list[Run]) -> str | None:
    names = [name for run in runs for name in run.get("metrics", {})]
    for preferred in ("test/acc", "test/fid", "test/elbo", "val/acc_best", "val/acc"):
        if preferred in names:
            return preferred
    tests = [n for n in names if n.startswith("test/")]
    return (tests or names or [None])[0]


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def sweep_table(runs: list[Run], metric: str | None) -> tuple[list[str], list[list[str]]]:
    """Header and rows: swept values, status, the final test/best metrics, epochs, wall time."""
    swept, values = swept_values(runs)
    names = sorted(
        {
            n
            for run in runs
            for n in run.get("metrics", {})
            if n.startswith("test/") or n.endswith(("_best", "_time_s"))  # a baseline's fit time
        }
    )
    if metric and metric not in names:
        names.insert(0, metric)
    header = [*swept, "status", *names, "epochs", "wall_time_s", "dir"]
    rows = []
    for run, value in zip(runs, values, strict=True):
        status = (
            run.get("status", "ok") if run.get("status") != "failed" else f"failed: {run.get('error', '')}"
        )
        metrics = run.get("metrics", {})
        rows.append(
            [
                *(value[k] for k in swept),
                status,
                *(_fmt(metrics.get(n)) for n in names),
                _fmt(run.get("epochs")),
                _fmt(run.get("wall_time_s")),
                run["dir"],
            ]
        )
    return header, rows


def plot_metric(runs: list[Run], metric: str, path: Path) -> Path | None:
    """``metric`` against the first swept value (log scale for positive numbers spanning decades)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    swept, values = swept_values(runs)
    if not swept:
        return None
    key = swept[0]
    points = [(v[key], run.get("metrics", {}).get(metric)) for run, v in zip(runs, values, strict=True)]
    fig, ax = plt.subplots(figsize=(6, 4))
    try:
        xs = [float(x) for x, _ in points]
    except ValueError:
        xs = list(range(len(points)))
        ax.set_xticks(xs, [x for x, _ in points], rotation=30, ha="right")
    numeric = [(x, y) for x, (_, y) in zip(xs, points, strict=True) if y is not None]
    failed = [x for x, (_, y) in zip(xs, points, strict=True) if y is None]
    if numeric:
        order = sorted(numeric)
        ax.plot([x for x, _ in order], [y for _, y in order], "o-")
    if failed:
        ax.plot(failed, [ax.get_ylim()[0]] * len(failed), "rx", markersize=10, label="failed / no value")
        ax.legend()
    if all(x > 0 for x in xs) and max(xs) / min(xs) >= 10 and len(set(xs)) > 1:
        ax.set_xscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} by {key} ({len(runs)} runs)")
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def reference_value(ref: dict[str, Any], run: Run) -> Any:
    """The reference figure for this run: ``value``, or for a study ``values[<the run's swept value>]``."""
    key = ref.get("by")
    if not key:
        return ref.get("value")
    overrides = dict(o.split("=", 1) for o in run.get("overrides", []) if "=" in o)
    mine = overrides.get(key)
    for value, figure in (ref.get("values") or {}).items():
        if mine is not None and (str(value) == mine or _same_number(value, mine)):
            return figure
    return None


def _same_number(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def _changes(run: Run) -> list[str]:
    """The run's command-line overrides besides ``experiment=``; paths shortened to their file name."""
    changes = []
    for override in run.get("overrides", []):
        key, _, value = override.partition("=")
        if key.lstrip("+~") == "experiment":
            continue
        changes.append(f"{key}={value.rsplit('/', 1)[-1]}" if "/" in value else override)
    return changes


def results_table(runs: list[Run]) -> str:
    """Experiments with a ``reference`` against the figure measured here."""
    header = [
        "experiment",
        "reproduces",
        "their figure",
        "measured here",
        "data",
        "epochs",
        "device",
        "wall time",
        "changed",
        "run",
    ]
    rows = []
    for run in runs:
        ref = run.get("reference")
        if not ref or run.get("status") == "failed":
            continue
        measured = run.get("metrics", {}).get(ref["metric"])
        theirs = reference_value(ref, run)
        rows.append(
            [
                run.get("experiment") or run.get("model") or "",
                f"{ref['source']}: {ref.get('setting', '')}",
                f"{ref['metric']} {_fmt(theirs)}" if theirs is not None else "-",
                f"{ref['metric']} {_fmt(measured)}",
                run.get("data") or "",
                _fmt(run.get("epochs")),
                run.get("device") or "",
                f"{run.get('wall_time_s', 0) / 60:.1f} min",
                " ".join(_changes(run)),
                run["dir"],
            ]
        )
    if not rows:
        raise DlforgeError("none of these runs names a reference: run them with experiment=<name>")
    return markdown(header, rows)


NOTES = "\n## Notes"
HEADER_START = "| experiment |"


def table_lines(text: str) -> tuple[str | None, list[str]]:
    """The header line and the row lines of the results table in ``text`` (None, [] without one)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(HEADER_START):
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append(row)
            return line, rows
    return None, []


def run_of(row: str) -> str:
    """A results row's run dir (its last cell), the key rows are merged by."""
    return row.rstrip().rstrip("|").rsplit(" | ", 1)[-1].strip()


def _row_key(row: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", run_of(row))]


def write_results(path: Path, table: str, folder: Path, runs: list[Run]) -> None:
    """Write the results table; hand-written notes (from a ``## Notes`` heading on) survive a rewrite.

    Rows are keyed by run dir: a run found under ``folder`` replaces its row, and the rows of runs
    not found there (measured earlier, perhaps on another machine) are kept, so a few new runs can
    be added without re-running every experiment. The runs' ``metrics.json`` records go to the JSON
    file beside it (``results.md`` -> ``results.json``), merged the same way.
    """
    records_path = path.with_suffix(".json")
    records = json.loads(records_path.read_text()) if records_path.is_file() else {}
    records.update({r["dir"]: {k: v for k, v in r.items() if k != "dir"} for r in runs if r.get("reference")})
    write_json(records_path, dict(sorted(records.items())))
    old = path.read_text() if path.is_file() else ""
    notes = old[old.index(NOTES) :] if NOTES in old else ""
    header, rows = table_lines(table)
    old_header, old_rows = table_lines(old)
    kept = [r for r in old_rows if run_of(r) not in {run_of(n) for n in rows}] if old_header == header else []
    merged = markdown_lines(table)[:2] + sorted(rows + kept, key=_row_key)
    command = f"python -m dlforge.report {folder} --results {path}"
    text = f"# Results\n\nThe seeds' figures against ours. Generated by `{command}`"
    if kept:
        text += f" ({len(kept)} rows of runs not under {folder} kept from the previous version)"
    text += ".\n\n" + "\n".join(merged) + "\n" + notes
    write_text(path, text)


def markdown_lines(table: str) -> list[str]:
    return table.rstrip("\n").splitlines()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlforge.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a multirun dir (or any folder of run dirs)")
    parser.add_argument("--metric", help="the metric to plot (default: test/acc, test/fid, ... if present)")
    parser.add_argument("--results", type=Path, help="write the experiments-vs-reference table to this file")
    args = parser.parse_args(argv)
    try:
        if (args.folder / SEARCH_FILE).is_file() and not args.results:
            from dlforge.study_report import write_report  # Optuna's plots: only for a search

            print(write_report(args.folder), end="")
            print(f"\nwrote {args.folder / 'report.md'}, report.csv and the plots")
            return 0
        runs = load_runs(args.folder)
        if args.results:
            table = results_table(runs)
            write_results(args.results, table, args.folder, runs)
            print(table, end="")
            print(f"\nwrote {args.results}")
            return 0
        metric = args.metric or default_metric(runs)
        header, rows = sweep_table(runs, metric)
        text = markdown(header, rows)
        write_text(args.folder / "report.md", text)
        with atomic_write(args.folder / "report.csv") as tmp, open(tmp, "w", newline="") as f:
            csv.writer(f).writerows([header, *rows])
        plot = plot_metric(runs, metric, args.folder / "report.png") if metric else None
    except DlforgeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(text, end="")
    print(f"\nwrote {args.folder / 'report.md'}, report.csv" + (f", {plot.name}" if plot else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
