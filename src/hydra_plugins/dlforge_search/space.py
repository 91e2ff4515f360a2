"""A search's space: Hydra's sweep syntax (``interval``, ``range``, ``choice``) as Optuna distributions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from omegaconf import OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import Trial

from dlforge.errors import DlforgeError, first_line


def distribution(override: Override) -> BaseDistribution:
    """Hydra's sweep syntax as an Optuna distribution: ``interval(a, b)`` (``tag(log, interval(a, b))``,
    ``int(interval(a, b))``), ``range(start, stop, step)`` (stop excluded), ``choice(a, b, ...)``."""
    value = override.value()
    if override.is_interval_sweep():
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log_scale)
        return FloatDistribution(value.start, value.end, log=log_scale)
    choices = list(override.sweep_iterator(transformer=Transformer.encode))
    if override.is_range_sweep() and not value.shuffle:
        if all(isinstance(c, int) for c in (value.start, value.step)):
            return IntDistribution(value.start, choices[-1], step=value.step)
        return FloatDistribution(value.start, choices[-1], step=value.step)
    return CategoricalDistribution(choices)


def search_space(
    params: Mapping[str, Any], arguments: Sequence[str]
) -> tuple[dict[str, BaseDistribution], list[str]]:
    """The distributions to sample (``hydra.sweeper.params``, then sweeps on the command line) and the
    overrides every trial gets (the command line's plain ``key=value``, which also pins a searched key)."""
    parser = OverridesParser.create()
    lines = [f"{key}={value}" for key, value in params.items()]
    space: dict[str, BaseDistribution] = {}
    fixed: list[str] = []
    for line in [*lines, *arguments]:
        try:
            override = parser.parse_override(line)
            key = override.get_key_element()
            if not override.is_sweep_override():
                fixed.append(line)
                space.pop(key, None)
                continue
            space[key] = distribution(override)
        except Exception as err:  # Hydra's parse errors, Optuna's invalid ranges
            raise DlforgeError(f"search space: {line}: {first_line(err)}") from None
    if not space:
        raise DlforgeError(
            "the search space is empty: give hydra.sweeper.params (e.g. optimizer.lr: "
            "tag(log, interval(1e-4, 1e-2))) or sweep a value on the command line"
        )
    return space, fixed


def override_text(value: Any) -> str:
    """A sampled value in Hydra's override syntax (choices of lists are already their text)."""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)


def some_value(dist: BaseDistribution) -> Any:
    return dist.choices[0] if isinstance(dist, CategoricalDistribution) else dist.low  # type: ignore[attr-defined]


def suggest(trial: Trial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    assert isinstance(dist, FloatDistribution)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def enqueued_params(entry: Any, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    """One entry of ``hydra.sweeper.enqueue`` as trial parameters, checked against the space."""
    values = OmegaConf.to_container(entry) if OmegaConf.is_config(entry) else entry
    if not isinstance(values, dict) or not set(values) <= set(space):
        raise DlforgeError(
            f"hydra.sweeper.enqueue: {values} must map searched keys ({', '.join(space)}) to values"
        )
    params = {}
    for name, value in values.items():
        dist = space[name]
        value = Transformer.encode(value)
        inside = (
            value in dist.choices
            if isinstance(dist, CategoricalDistribution)
            else dist.low <= value <= dist.high  # type: ignore[attr-defined]
        )
        if not inside:
            raise DlforgeError(f"hydra.sweeper.enqueue: {name}={value} is outside the search space")
        params[name] = value
    return params
