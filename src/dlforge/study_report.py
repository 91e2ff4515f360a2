"""The report of a search (``python -m dlforge.report <sweep dir of a search>``).

Reads the study from its storage (named in the sweep dir's ``search.json``) and writes, in the sweep
dir, ``report.md`` (the trials by state, the best trial or the Pareto front, the parameter
importances and every trial), ``report.csv`` (one row a trial) and Optuna's matplotlib plots:
``optimization_history.png``, ``param_importances.png``, ``parallel_coordinate.png`` and, with
several objectives, ``pareto_front.png``.
"""

from __future__ import annotations

import csv
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.importance import PedAnovaImportanceEvaluator
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from dlforge.errors import DlforgeError, first_line
from dlforge.outputs import markdown
from dlforge.study import (
    ERROR,
    RUN_DIR,
    counts_towards_n_trials,
    open_storage,
    read_search,
    shown,
    trial_label,
)

Target = Callable[[FrozenTrial], float]


def load_study(folder: Path) -> tuple[optuna.Study, dict[str, Any]]:
    search = read_search(folder)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=search["study_name"], storage=open_storage(search["storage"]))
    except KeyError:
        raise DlforgeError(f"no study {search['study_name']} in {shown(search['storage'])}") from None
    return study, search


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def trials_table(study: optuna.Study, names: list[str]) -> tuple[list[str], list[list[str]]]:
    """One row a trial: state, objective values, epochs reported, duration, parameters, run dir."""
    params = list(study.user_attrs.get("search", {}).get("params", {})) or sorted(
        {p for t in study.trials for p in t.params}
    )
    header = ["trial", "state", *names, "epochs", "duration_s", *params, "run dir"]
    rows = []
    for t in study.get_trials(deepcopy=False):
        # a pruned trial's value is its last report of the monitored metric, not an objective value
        values = t.values if t.state == TrialState.COMPLETE else [None] * len(names)
        duration = t.duration.total_seconds() if t.duration else None
        epochs = t.last_step + 1 if t.last_step is not None else None
        rows.append(
            [
                str(t.number),
                trial_label(t),
                *(_fmt(v) for v in values),
                _fmt(epochs),
                _fmt(duration),
                *(_fmt(t.params.get(p)) for p in params),
                t.user_attrs.get(RUN_DIR, ""),
            ]
        )
    return header, rows


def summary(study: optuna.Study) -> str:
    """Trials by state, and the time they took (summed, and from the first start to the last end)."""
    trials = study.get_trials(deepcopy=False)
    counted = [t for t in trials if counts_towards_n_trials(t)]
    complete = sum(t.state == TrialState.COMPLETE for t in counted)
    pruned = sum(t.state == TrialState.PRUNED for t in counted)
    failed = sum(t.state == TrialState.FAIL for t in counted)
    rerun = sum(t.state == TrialState.FAIL and ERROR not in t.user_attrs for t in trials)
    running = sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
    text = f"{len(counted)} trials finished: {complete} complete, {pruned} pruned"
    text += f" ({pruned / len(counted):.0%})" if counted else ""
    text += f", {failed} failed by an error"
    text += f"; {rerun} interrupted or not run (their parameters ran again)" if rerun else ""
    text += f"; {running} running or queued" if running else ""
    timed = [t for t in trials if t.datetime_start and t.datetime_complete]
    if timed:
        busy = sum(t.duration.total_seconds() for t in timed if t.duration)
        span = max(t.datetime_complete for t in timed) - min(t.datetime_start for t in timed)
        text += f". Trial time {busy / 60:.1f} min in all, {span.total_seconds() / 60:.1f} min"
        text += " from the first start to the last end"
    return text + "."


def plot_target(study: optuna.Study, index: int) -> Target | None:
    """Objective ``index`` for Optuna's plots (None: the value of a single-objective study)."""
    return None if len(study.directions) == 1 else (lambda t: t.values[index])


def importance_target(study: optuna.Study, index: int) -> Target | None:
    """Objective ``index`` for PED-ANOVA, which takes low values as good when given a target."""
    if len(study.directions) == 1:
        return None  # the study's own direction
    sign = -1.0 if study.directions[index] == StudyDirection.MAXIMIZE else 1.0
    return lambda t: sign * t.values[index]


def importances(study: optuna.Study, names: list[str]) -> tuple[str, PedAnovaImportanceEvaluator | None]:
    """PED-ANOVA importances (Optuna's; numpy only) of reaching the best fifth of the complete trials
    (at least 5 trials above the cut), for each objective."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if len(complete) < 3:
        return "Too few complete trials for parameter importances (3 needed).\n", None
    quantile = min(0.5, max(0.2, 5 / len(complete)))
    evaluator = PedAnovaImportanceEvaluator(target_quantile=quantile)
    sections = []
    for index, name in enumerate(names):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the note that a target is taken as lower-is-better
                found = optuna.importance.get_param_importances(
                    study, evaluator=evaluator, target=importance_target(study, index)
                )
        except (ValueError, RuntimeError) as err:
            sections.append(f"{name}: no importances ({first_line(err)}).\n")
            continue
        rows = [[param, f"{value:.3f}"] for param, value in found.items()]
        sections.append(f"{name}:\n\n" + markdown(["parameter", "importance"], rows))
    note = f"PED-ANOVA: how much each parameter matters to reach the best {quantile:.0%} of the complete"
    note += " trials.\n\n"
    return note + "\n".join(sections), evaluator


def save_plot(make: Callable[[], Any], path: Path) -> str | None:
    """Save one of Optuna's matplotlib plots; the reason when it cannot be drawn."""
    import matplotlib.pyplot as plt

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            ax = make()
    except (ValueError, RuntimeError, ZeroDivisionError) as err:
        plt.close("all")
        return first_line(err)
    fig = (ax.flat[0] if hasattr(ax, "flat") else ax).get_figure()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return None


def plots(study: optuna.Study, names: list[str], folder: Path, evaluator: Any) -> list[str]:
    """Optuna's matplotlib plots of the study, as markdown image lines (or why one is missing)."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as optuna_plots

    logging.getLogger("optuna").setLevel(logging.ERROR)
    name, target = names[0], plot_target(study, 0)
    wanted: dict[str, Callable[[], Any]] = {
        "optimization_history": lambda: optuna_plots.plot_optimization_history(
            study, target=target, target_name=name
        ),
        "param_importances": lambda: optuna_plots.plot_param_importances(
            study, evaluator=evaluator, target=importance_target(study, 0), target_name=name
        ),
        "parallel_coordinate": lambda: optuna_plots.plot_parallel_coordinate(
            study, target=target, target_name=name
        ),
    }
    if len(names) > 1:
        wanted["pareto_front"] = lambda: optuna_plots.plot_pareto_front(study, target_names=names)
    if evaluator is None:
        del wanted["param_importances"]
    lines = []
    for plot, make in wanted.items():
        why = save_plot(make, folder / f"{plot}.png")
        lines.append(f"![{plot}]({plot}.png)" if why is None else f"{plot}: not drawn ({why})")
    return lines


def best_section(study: optuna.Study, names: list[str]) -> str:
    """The best trial (one objective) or the Pareto front (several)."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not complete:
        return "No complete trial yet.\n"
    if len(names) == 1:
        best = study.best_trial
        run_dir = best.user_attrs.get(RUN_DIR, "")
        head = f"Trial {best.number}: {names[0]} = {best.value:.4g}, run dir `{run_dir}`\n\n"
        rows = [[param, _fmt(value)] for param, value in best.params.items()]
        return head + markdown(["parameter", "value"], rows)
    front = sorted(study.best_trials, key=lambda t: t.values)
    params = list(front[0].params)
    rows = [
        [str(t.number), *(_fmt(v) for v in t.values), *(_fmt(t.params[p]) for p in params)] for t in front
    ]
    return f"{len(front)} trials on the Pareto front:\n\n" + markdown(["trial", *names, *params], rows)


def write_report(folder: Path) -> str:
    """Write ``report.md``, ``report.csv`` and the plots of the search in ``folder``; return the text."""
    study, search = load_study(folder)
    names = search["objectives"]
    goal = ", ".join(f"{n} ({d})" for n, d in zip(names, search["directions"], strict=True))
    header, rows = trials_table(study, names)
    importance_text, evaluator = importances(study, names)
    text = "\n".join(
        [
            f"# Search {study.study_name}\n",
            f"Storage `{shown(search['storage'])}`; objective: {goal}.\n",
            summary(study) + "\n",
            "## Best trial\n" if len(names) == 1 else "## Pareto front\n",
            best_section(study, names),
            "## Parameter importances\n",
            importance_text,
            "## Plots\n",
            "\n\n".join(plots(study, names, folder, evaluator)) + "\n",
            "## Trials\n",
            markdown(header, rows),
        ]
    )
    (folder / "report.md").write_text(text)
    with open(folder / "report.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return text
