"""Each family serves itself: ``serving/<family>.py`` holds a :class:`ServedModel` subclass registered
for the family's model class (``dlforge.registry.register_serving``). Importing this package imports
(and so registers) every family; :func:`served_class` and :func:`task_class` find them, so the tools
(predict, generate, export, app) hold no family names."""

from __future__ import annotations

from typing import Any

from dlforge.errors import DlforgeError
from dlforge.registry import SERVING, TASKS
from dlforge.serving import (  # noqa: F401  (they register)
    audio,
    classical,
    classifier,
    generative,
    seq2seq,
    stackgan,
    text,
    wavenet,
    word2vec,
)
from dlforge.serving.served import ServedModel


def served_class(model: Any) -> type[ServedModel]:
    """The serving class registered for ``model``'s class (or a base class) that accepts it."""
    for cls in type(model).__mro__:
        for served in SERVING.get(cls, ()):
            if served.accepts(model):
                return served
    families = sorted({served.what for entries in SERVING.values() for served in entries})
    raise DlforgeError(f"{model.kind} models cannot be exported or served: that takes {', '.join(families)}")


def task_class(task: str) -> type[ServedModel]:
    """The serving class of an exported card's ``task`` (KeyError-free: unknown tasks raise DlforgeError)."""
    if task not in TASKS:
        raise DlforgeError(f"no family serves the task {task!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[task]


def all_served() -> list[type[ServedModel]]:
    """Every registered serving class, each once, in registration order."""
    return list(dict.fromkeys(served for entries in SERVING.values() for served in entries))


__all__ = ["ServedModel", "all_served", "served_class", "task_class"]
