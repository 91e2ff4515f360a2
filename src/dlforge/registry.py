"""Registries: each network, model, family's callbacks and serving registers itself beside its definition.

As torchvision's ``register_model``: ``@register_net("convnet")`` on a plain ``nn.Module``,
``@register_model("image_classifier")`` on a LightningModule (the name is the model's ``kind``,
stored in its checkpoints), ``@register_callbacks(GAN)`` on a function that gives a model of that
class its pictures and side outputs, ``@register_serving(GenerativeModule)`` on the class that serves
it. ``dlforge.nets``, ``dlforge.models``, ``dlforge.callbacks`` and ``dlforge.serving`` import every
family and build from these tables; nothing here imports a family.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: network name -> class (or factory) taking the data's shape and the config's options
NETS: dict[str, Callable[..., Any]] = {}
#: model kind (as stored in checkpoints) -> LightningModule class
MODELS: dict[str, type] = {}
#: model class -> function(hparams, options) -> callbacks for models of that class (and subclasses)
CALLBACKS: dict[type, Callable[..., list[Any]]] = {}
#: model class -> its families' serving classes (``dlforge.serving.served.ServedModel``), tried in order
SERVING: dict[type, list[type]] = {}
#: a card's task -> the serving class that runs an export of that task
TASKS: dict[str, type] = {}


def _register(table: dict[Any, Any], key: Any, what: str) -> Callable[[T], T]:
    def add(obj: T) -> T:
        if key in table and table[key] is not obj:
            raise RuntimeError(f"{what} {key!r} is registered twice ({table[key]!r} and {obj!r})")
        table[key] = obj
        return obj

    return add


def register_net(name: str) -> Callable[[T], T]:
    """Register a network class (or factory) under ``name``, the ``net.name`` configs and checkpoints use."""
    return _register(NETS, name, "network")


def register_model(kind: str) -> Callable[[type[T]], type[T]]:
    """Register a LightningModule under ``kind`` (set as its ``kind`` attribute, stored in checkpoints)."""

    def add(cls: type[T]) -> type[T]:
        cls.kind = kind  # type: ignore[attr-defined]
        return _register(MODELS, kind, "model kind")(cls)

    return add


def register_callbacks(model_cls: type) -> Callable[[T], T]:
    """Register ``factory(hparams, options) -> list[Callback]`` for models of ``model_cls`` (or a subclass):
    ``hparams`` are the model's hyper-parameters, ``options`` the run's (``quality_classifier``, ...)."""
    return _register(CALLBACKS, model_cls, "callbacks for")


def register_serving(model_cls: type) -> Callable[[T], T]:
    """Register a ``ServedModel`` subclass for models of ``model_cls`` (or a subclass) whose
    ``accepts(model)`` is true; the first registered for a task also runs that task's exports."""

    def add(served: T) -> T:
        entries = SERVING.setdefault(model_cls, [])
        if served not in entries:
            entries.append(served)
        TASKS.setdefault(served.task, served)  # type: ignore[attr-defined]
        return served

    return add
