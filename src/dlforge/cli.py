"""Shared wiring for the Hydra command-line entry points (``train.py`` and ``python -m dlforge.<tool>``)."""

from __future__ import annotations

import enum
import functools
import inspect
import json
import logging
import math
import os
import re
import shutil
import sys
import types
import typing
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn, Union

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.object_type import ObjectType
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import InstantiationException, MissingConfigException, OverrideParseException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from dlforge import CONF_DIR
from dlforge.errors import DlforgeError, first_line
from dlforge.outputs import run_record, write_json
from dlforge.usage import KEY, command, groups, options, tool_help

log = logging.getLogger("dlforge")


#: Notes the commands' consoles do without (set by the entry points only, :func:`quiet_library_chatter`):
#: the CSV logger's about Hydra's files in the run dir, torch's deprecation seen through Lightning,
#: Lightning's advice to add workers to in-memory loaders (evaluate's test), and Optuna's notes that the
#: heartbeats and stale-trial retries a search relies on are experimental (the sweeper's workers).
CONSOLE_WARNINGS = (
    r"Experiment logs directory .* exists and is not empty",
    r".*isinstance\(treespec, LeafSpec\).*",
    r"The '\w+' does not have many workers",
    r".* is experimental \(supported from v[\d.]+\)\. The interface can change in the future\.",
    r"Argument ``\w+`` is an experimental feature\. The interface can change in the future\.",
    r"Heartbeat of storage is supposed to be used with Study\.optimize",
)


def quiet_library_chatter() -> None:
    """Drop Lightning's advertising tips and the notes of :data:`CONSOLE_WARNINGS` from a command's
    console. For the entry points only (a command's process), never on import: it changes the process's
    warning filters and loggers."""
    # Lightning logs through whichever of its packages was imported last: `lightning` comes with
    # optuna-integration's pruning callback (searches)
    for package in ("pytorch_lightning", "lightning.pytorch"):
        logging.getLogger(f"{package}.utilities.rank_zero").addFilter(
            lambda record: not str(record.msg).startswith("💡 Tip")
        )
    for message in CONSOLE_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # Optuna's storage layer, loaded by the sweeper


def task_overrides() -> list[str]:
    """The command line's overrides of this Hydra run (this job's, in a multirun); none outside one.
    For the entry points, which hand them to the library (:func:`dlforge.training.train`)."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def verbatim(arg: str, key: str) -> str:
    """``key=a gorgeous, witty film`` (free text: a review, a caption) as a quoted Hydra override, so
    that it reaches the tool as typed (Hydra's grammar would read commas as a sweep, and parse quotes,
    brackets, ``${``); other arguments as they are."""
    if not arg.startswith(f"{key}="):
        return arg
    value = arg[len(key) + 1 :]
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return arg  # already quoted for Hydra
    value = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value)
    return f"{key}='" + value.replace("${", "\\${") + "'"


def record_failure(err: BaseException) -> dict[str, Any]:
    """In a multirun: log the error, mark the job's ``metrics.json`` as failed, let the sweep go on.

    Returns that record, from which a search's sweeper records a failed trial.
    """
    hydra_cfg = HydraConfig.get()
    message = f"{type(err).__name__}: {first_line(err)}"
    log.error("job %s failed: %s", hydra_cfg.job.num, message, exc_info=not isinstance(err, DlforgeError))
    record = run_record(hydra_cfg.job.name, {}, status="failed", error=message)
    write_json(Path(hydra_cfg.runtime.output_dir) / "metrics.json", record)
    return record


def hydra_entry(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[[], Any]]:
    """Turn ``task(cfg)`` into a Hydra main over ``conf/<config_name>.yaml``.

    ``--help`` prints the tool's own options (:mod:`dlforge.usage`). Every error a user can cause ends in
    one line ``error: <what is wrong>; <how to fix it>`` on stderr and exit status 2, with no traceback:
    the command line is checked before Hydra runs (:func:`check_command_line`), a :class:`DlforgeError`
    or Lightning's configuration error during the run is printed as one line, and a run dir that holds
    nothing but Hydra's own records is removed. ``HYDRA_FULL_ERROR=1`` shows tracebacks instead. In a
    multirun, a failing job (any error) is recorded as failed and the sweep goes on.
    """

    def decorate(task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        @functools.wraps(task)
        def guarded(cfg: DictConfig) -> Any:
            quiet_library_chatter()
            multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
            try:
                return task(cfg)
            except Exception as err:
                if multirun:
                    return record_failure(user_error(err) or err)
                given = task_overrides()
                problem = user_error(err) or shape_error(err, given) or file_error(err, given)
                if problem is None or debugging():
                    raise
                remove_empty_run_dir()
                if isinstance(problem, DlforgeError):
                    fail(str(problem))
                if isinstance(problem, InstantiationException):
                    fail(instantiation_error(problem, cfg, task_overrides()))
                fail(f"{first_line(problem)}; check the trainer.* options")

        main = hydra.main(config_path=CONF_DIR, config_name=config_name, version_base="1.3")(guarded)

        @functools.wraps(task)
        def entry() -> Any:
            os.environ.setdefault("MPLBACKEND", "Agg")  # pictures go to files: no window system needed
            args = sys.argv[1:]
            if any(arg in ("-h", "--help") for arg in args):
                print(tool_help(config_name), end="")
                return None
            if not debugging():
                problem = check_command_line(config_name, args)
                if problem:
                    fail(problem)
            quiet_library_chatter()  # before Hydra loads its plugins
            return main()

        return entry

    return decorate


def user_error(err: BaseException | None) -> BaseException | None:
    """The error a user caused (a :class:`DlforgeError`, or Lightning's configuration error), also when
    Hydra's ``instantiate`` wrapped it; else Hydra's error in building a config node (a Trainer, a
    logger, a scheduler, a data module: the library refused a value of the config); None for a bug."""
    chain = []
    while err is not None:
        if isinstance(err, (DlforgeError, MisconfigurationException)):
            return err
        chain.append(err)
        err = err.__cause__
    return next((e for e in chain if isinstance(e, InstantiationException)), None)


def shape_error(err: BaseException, overrides: list[str]) -> DlforgeError | None:
    """A list or mapping given on the command line where the code wanted one value (``ckpt_path=[]``):
    the library's error names the config's container type; the line names the override."""
    if not isinstance(err, (TypeError, ValueError, AttributeError)):
        return None
    scalar = re.search(r"os\.PathLike object, not (bool|int|float)\b", f"{err}")
    if scalar:
        words = {"bool": ("true", "false"), "int": (), "float": ()}[scalar[1]]
        for line in overrides:
            key, _, value = line.lstrip("+~").partition("=")
            if value.lower() in words or (not words and re.fullmatch(r"[-+\d.e]+|nan|inf", value)):
                return DlforgeError(
                    f"{line}: {key} takes a path; quote a name that reads as a {scalar[1]}: {key}='{value}'"
                )
        return None
    if not re.search(r"\b(ListConfig|DictConfig|NoneType)\b|os\.PathLike", f"{err}"):
        return None
    given = [o for o in overrides if o.split("=", 1)[-1][:1] in ("[", "{")]
    if not given:
        return None
    key, value = given[0].lstrip("+~").split("=", 1)
    kind = "list" if value.startswith("[") else "mapping"
    return DlforgeError(f"{given[0]}: {key} takes one value, not a {kind}; see --help")


def file_error(err: BaseException, overrides: list[str]) -> DlforgeError | None:
    """A file the run could not read or write (a folder under a file, a path without permission, a
    full disk): the operating system's reason, the path and the command line's value that named it."""
    while err is not None and not (isinstance(err, OSError) and err.filename):
        err = err.__cause__
    if err is None:
        return None
    path = str(err.filename)
    values = [(o, o.split("=", 1)[-1].strip("'\"")) for o in overrides]
    named = [o for o, value in values if value in path and ("/" in value or len(value) > 3)]
    source = f" (from {', '.join(named)})" if named else ""
    return DlforgeError(f"cannot use {path}{source}: {err.strerror or type(err).__name__}; give another path")


def instantiation_error(err: InstantiationException, cfg: DictConfig, overrides: list[str]) -> str:
    """Hydra's several-line "Error in call to target ..." as one line: the node that could not be built,
    the library's reason, and the command line's values for that node with the values their option
    takes (from its declared type)."""
    text = str(err)
    target = re.search(r"target '([^']+)'", text)
    node = re.search(r"full_key: (\S+)", text)
    key = node[1] if node else node_of_target(cfg, target[1] if target else "")
    cause = err.__cause__ or err
    what = f"{key} ({target[1].rsplit('.', 1)[-1]})" if key and target else key or "a config node"
    given = [o for o in overrides if key and o.lstrip("+~").split("=", 1)[0].startswith(f"{key}.")]
    named = [o for o in given if o.lstrip("+~").split("=", 1)[0].rsplit(".", 1)[-1] in f"{cause}"]
    given = named or given  # the values the library's reason names, else all of the node's
    hints = []
    for line in given:
        option = line.lstrip("+~").split("=", 1)[0]
        words = forms(declared_type(cfg, option))
        if len(words) > 1 or (words and "a text" not in words[0]):
            hints.append(f"{option} takes {in_words(words)}")
    problem = f"cannot build {what}: {first_line(cause)}"
    problem += f" (from {', '.join(given)})" if given else ""
    return problem + (f"; {'; '.join(hints)}" if hints else f"; check the {key or 'config'}.* options")


def node_of_target(cfg: DictConfig, target: str, prefix: str = "") -> str | None:
    """The dotted key of the config node whose ``_target_`` is ``target`` (an object's full name, as
    Hydra names it in its errors), or None."""
    try:
        wanted = get_object(target)
    except Exception:
        return None
    for key in cfg:
        if OmegaConf.is_interpolation(cfg, key) or not isinstance(cfg[key], DictConfig):
            continue
        node, here = cfg[key], f"{prefix}{key}"
        named = node.get("_target_") if not OmegaConf.is_interpolation(node, "_target_") else None
        try:
            if isinstance(named, str) and get_object(named) is wanted:
                return here
        except Exception:
            pass
        found = node_of_target(node, target, f"{here}.")
        if found:
            return found
    return None


def debugging() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def remove_empty_run_dir() -> None:
    """Remove the run dir of a run that failed before it wrote anything to keep (a checkpoint, a
    result): what is left would be half a run (Hydra's records, a config, a log)."""
    if not HydraConfig.initialized():
        return
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    kept = [p for p in run_dir.rglob("*") if p.suffix in (".ckpt", ".png", ".onnx", ".pt", ".wav")]
    if run_dir.is_dir() and not kept and not (run_dir / "metrics.json").exists():
        root = logging.getLogger()
        for handler in list(root.handlers):  # the run's log file goes with its run dir
            log_file = getattr(handler, "baseFilename", None)
            if log_file and Path(log_file).is_relative_to(run_dir):
                root.removeHandler(handler)
                handler.close()
        shutil.rmtree(run_dir, ignore_errors=True)


MULTIRUN_FLAGS = ("-m", "--multirun")


def check_command_line(config_name: str, args: list[str]) -> str | None:
    """What is wrong with a command line's overrides, as one line, or None.

    Composes the config as Hydra will (unknown keys, unknown options, syntax; config groups and options
    also from the folders of ``hydra.searchpath=[file:///my/conf]``) and checks each new value's type
    (:func:`type_error`: ``data.batch_size=abc``); also names mandatory values left unset
    (``ckpt_path=???``). Command lines with Hydra flags other than ``-m`` are left to Hydra.
    """
    multirun = any(arg in MULTIRUN_FLAGS for arg in args)
    args = [arg for arg in args if arg not in MULTIRUN_FLAGS]
    if any(arg.startswith("-") for arg in args):
        return None
    try:
        overrides = OverridesParser.create().parse_overrides(args)
    except OverrideParseException as err:
        return (
            f"cannot read the command line ({first_line(err)}); write key=value, lists as key=[a,b], "
            "and quote a value with other signs: \"text='Hello, world!'\""
        )
    # a user's own config folders: Hydra finds groups and options there too (as Hydra reads the override)
    searchpath = [
        o.input_line
        for o in overrides
        if o.get_key_element() == "hydra.searchpath" and not o.is_sweep_override()
    ]
    checked = [o for o in overrides if not o.key_or_group.startswith("hydra")]
    # Hydra's own groups (hydra/sweeper/pruner=hyperband): chosen first, as their options depend on them
    hydra_groups = [
        o.input_line for o in overrides if o.key_or_group.startswith("hydra/") and not o.is_sweep_override()
    ]
    for override in checked:
        if override.is_sweep_override() and not multirun:
            return (
                f"{override.input_line} gives several values: add -m to run one job per value, "
                f"write a list as {override.key_or_group}=[...], or quote a text with commas"
            )
    single = [o for o in checked if not o.is_sweep_override()]
    found = ConfigGroups(config_name, searchpath)
    groups = [*hydra_groups, *(o.input_line for o in single if found.is_group(o.key_or_group))]
    values = [o for o in single if not (o.is_add() or o.is_delete() or found.is_group(o.key_or_group))]
    values = list({o.key_or_group: o for o in values}.values())  # a key given twice: the last one counts
    # a search's options: their types are the sweeper's structured config's, their ranges its file's
    sweeper = [
        o for o in overrides if o.key_or_group.startswith("hydra.sweeper.") and not o.is_sweep_override()
    ]
    try:
        lines = [*searchpath, *hydra_groups, *(o.input_line for o in single)]
        cfg = compose_config(config_name, [*lines, *(o.input_line for o in sweeper)], choices=True)
        base = (
            compose_config(config_name, [*searchpath, *groups], choices=bool(sweeper))
            if values or sweeper
            else cfg
        )
    except Exception as err:  # Hydra's composition errors come in several types
        return composition_error(err, [*single, *sweeper], found)
    choices = OmegaConf.to_container(cfg.hydra.runtime.choices)
    ranges = option_ranges(config_name, choices) if values or sweeper else {}
    for override in sweeper:
        problem = range_error(override, base, cfg, ranges)
        if problem:
            return problem
    with open_dict(cfg), open_dict(base):
        cfg.pop("hydra")
        base.pop("hydra", None)
    for override in values:
        problem = type_error(override, base, cfg) or range_error(override, base, cfg, ranges)
        if problem:
            return problem
    missing = list(missing_keys(cfg))
    if missing:
        key = missing[0]
        described = dict(
            (k, d) for k, _, d in options((Path(CONF_DIR) / f"{config_name}.yaml").read_text().splitlines())
        )
        what = described.get(key) or f"see {command(config_name)} --help"
        return f"{key} is required: pass {key}=<...> ({what})"
    return None


def missing_keys(node: DictConfig, prefix: str = "") -> Iterator[str]:
    """The dotted keys of mandatory values (``???``) left unset, without resolving interpolations."""
    for key in node:
        if OmegaConf.is_missing(node, key):
            yield f"{prefix}{key}"
        elif not OmegaConf.is_interpolation(node, key) and isinstance(node[key], DictConfig):
            yield from missing_keys(node[key], f"{prefix}{key}.")


def compose_config(config_name: str, overrides: list[str], choices: bool = False) -> DictConfig:
    """The config as Hydra composes it (``choices``: with Hydra's own node, whose ``runtime.choices``
    names the option chosen in each group)."""
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        return compose(config_name, overrides=overrides, return_hydra_config=choices)


class ConfigGroups:
    """The config groups of one command line and their options, as Hydra finds them: in conf/ and in the
    folders its ``hydra.searchpath=[...]`` override adds (a user's own ``model/my_model.yaml``)."""

    def __init__(self, config_name: str, searchpath: list[str]) -> None:
        self.config_name, self.searchpath = config_name, searchpath
        self.listed: dict[tuple[str, ObjectType], list[str]] = {}

    def listing(self, group: str, kind: ObjectType) -> list[str]:
        """The config groups (``ObjectType.GROUP``) or options (``CONFIG``) in ``group`` (``""``: the top)."""
        if (group, kind) not in self.listed:
            with initialize_config_dir(CONF_DIR, version_base="1.3"):
                loader = GlobalHydra.instance().config_loader()
                found = loader.get_group_options(group, kind, self.config_name, self.searchpath)
            self.listed[group, kind] = sorted(found)
        return self.listed[group, kind]

    def options(self, group: str) -> list[str]:
        return self.listing(group, ObjectType.CONFIG)

    def is_group(self, key: str) -> bool:
        """Whether an override's key names a config group (``model``, ``model/net``), not a value."""
        parent, _, name = key.lstrip("+~").replace(".", "/").rpartition("/")
        return name in self.listing(parent, ObjectType.GROUP)


def composition_error(err: Exception, overrides: list[Any], found: ConfigGroups) -> str:
    """Hydra's multi-line composition errors as one line naming the valid keys or options."""
    text = str(err)
    missing = re.search(r"Could not find '([\w/]+)/([^']+)'", text)
    if isinstance(err, MissingConfigException) and missing:
        group, choice = missing.groups()
        path = f"{group}/{choice}"
        for override in overrides:  # the group the command line named: a choice may hold a "/" (a path)
            named = override.key_or_group.lstrip("+~").replace(".", "/")
            if path.startswith(f"{named}/"):
                group, choice = named, path[len(named) + 1 :]
        return f"{group}={choice}: no such option; choose one of {', '.join(found.options(group))}"
    unknown = re.search(r"Key '([^']+)' is not in struct\s+full_key: (\S+)", f"{err.__cause__}")
    if unknown:
        key, full_key = unknown.groups()
        parent = full_key.rsplit(".", 1)[0] if "." in full_key else ""
        line = next((o.input_line for o in overrides if o.key_or_group == full_key), full_key)
        groups = [o.input_line for o in overrides if found.is_group(o.key_or_group)]
        composed = compose_config(found.config_name, [*found.searchpath, *groups])
        node = OmegaConf.select(composed, parent) if parent else None
        keys = ", ".join(str(k) for k in node) if isinstance(node, DictConfig) else "see --help"
        where = parent or "the config"
        copied = followed(composed, parent) if "." in parent else None
        if copied:  # model.optimizer.lr=0.1 where model.optimizer is ${optimizer}
            return f"{line}: {parent} follows {copied}: write {copied}.{full_key.rsplit('.', 1)[-1]}=..."
        return f"{line}: {where} has no option {key!r}; its options: {keys} (a new key needs +{line})"
    reason = f" ({first_line(err.__cause__)})" if err.__cause__ else ""
    return f"cannot compose the config: {first_line(err)}{reason}"


def type_error(override: Any, base: DictConfig, cfg: DictConfig) -> str | None:
    """A new value of a form its option does not take (a word for a number, a number for a flag).

    An option takes what the code that takes it declares: the annotation of its parameter in its node's
    ``_target_`` (:func:`declared_type`), so every documented form passes (``data.test_speakers: float |
    str | Sequence[str]``: a fraction, a count, a pattern or a list of names; ``trainer.deterministic``:
    true, false or warn). An option that no signature declares (the model's, the command's own: ``test``,
    ``seed``; the loader options of ``**loader``) takes its default's type, any number for a number (a
    count may be a fraction: ``data.val_size=0.1``). Null always passes.
    """
    key = override.key_or_group
    new = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
    if new is None:
        return None
    old = OmegaConf.select(base, key, default=None, throw_on_resolution_failure=False)
    copied = followed(base, key)
    if copied and "." not in copied and old is None and not isinstance(new, DictConfig):
        # model.scheduler: ${scheduler}, a whole group that is off by default
        return f"{override.input_line}: {key} follows {copied}: choose it with {copied}=<option>"
    if isinstance(old, DictConfig) and not isinstance(new, DictConfig):
        first = next((k for k in old if k != "_target_"), "<option>")
        return (
            f"{override.input_line}: {key} is a group of options ({', '.join(map(str, old))}), not one "
            f"value; set one of them: {followed(base, key) or key}.{first}=<value>"
        )
    declared = declared_type(cfg, key)
    if declared is not inspect.Parameter.empty:
        if takes(declared, new):
            return None
        words = forms(declared)
        expected = in_words(words) if words else f"a {declared}"
    elif isinstance(old, bool):
        if isinstance(new, bool):
            return None
        expected, words = "true or false", []
    elif isinstance(old, (int, float)):
        if isinstance(new, (int, float)) and not isinstance(new, bool):
            return None
        expected, words = "a number", []
    else:
        return None
    problem = f"{override.input_line}: {key} takes {expected} (default {as_typed(old)})"
    if "a text" in words and isinstance(new, (bool, int, float)):  # Hydra read the text as a number
        problem += f"; quote a text: {key}='{override.input_line.split('=', 1)[1]}'"
    return problem


def followed(cfg: DictConfig, key: str) -> str | None:
    """The key that ``key`` copies (``model.optimizer: ${optimizer}``: ``optimizer``), or None."""
    parent, _, name = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
    if not isinstance(node, DictConfig) or name not in node or not OmegaConf.is_interpolation(node, name):
        return None
    copied = re.fullmatch(r"\$\{([\w.]+)\}", str(OmegaConf.to_container(node, resolve=False)[name]))
    return copied.group(1) if copied else None


def as_typed(value: Any) -> str:
    """A value as a command line writes it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return "''" if value == "" else str(value)


def declared_type(cfg: DictConfig, key: str) -> Any:
    """The annotation of the parameter that takes ``key`` in the ``_target_`` of its node: of the target
    itself or, where a class hands ``**kwargs`` on to its bases, of the base that names it;
    ``inspect.Parameter.empty`` where none is declared."""
    parent, _, name = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
    if not isinstance(node, DictConfig) or not isinstance(node.get("_target_"), str):
        return inspect.Parameter.empty
    try:
        target = get_object(node._target_)
    except Exception:  # a target that does not import here fails in the run, with Hydra's own message
        return inspect.Parameter.empty
    for candidate in target.__mro__[:-1] if inspect.isclass(target) else (target,):
        try:
            parameters = inspect.signature(candidate, eval_str=True).parameters
        except (NameError, TypeError, ValueError):  # no signature, or annotations not readable here
            return inspect.Parameter.empty
        if name in parameters:
            return parameters[name].annotation
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            break
    return inspect.Parameter.empty


def takes(annotation: Any, value: Any) -> bool:
    """Whether a command line's value (null, true/false, a number, a text, a list, a mapping) has one of
    the forms ``annotation`` declares; any value for an annotation that says nothing (``Any``, a type
    variable). An object's type takes a mapping (a config node Hydra instantiates)."""
    if annotation in (inspect.Parameter.empty, Any, object):
        return True
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(takes(option, value) for option in typing.get_args(annotation))
    if origin is Literal:
        return any(type(value) is type(v) and value == v for v in typing.get_args(annotation))
    kind = origin or annotation
    if not inspect.isclass(kind):
        return True
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:  # a whole number is a float too
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if issubclass(kind, (str, os.PathLike, enum.Enum)):
        return isinstance(value, str)
    if is_container(kind, Mapping):
        return isinstance(value, DictConfig)
    if is_container(kind, Iterable):
        return isinstance(value, ListConfig)
    return isinstance(value, DictConfig)


def is_container(kind: type, abstract: type) -> bool:
    """A built-in or abstract container type (``list``, ``Sequence``, ``dict``) of the ``abstract`` kind;
    not a class that merely iterates (a tensor)."""
    return kind.__module__ in ("builtins", "collections.abc", "typing") and issubclass(kind, abstract)


def forms(annotation: Any) -> list[str]:
    """The forms of value ``annotation`` declares, in words, as a command line gives them."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return list(dict.fromkeys(f for option in typing.get_args(annotation) for f in forms(option)))
    if origin is Literal:
        return [str(v).lower() if isinstance(v, bool) else str(v) for v in typing.get_args(annotation)]
    kind = origin or annotation
    if not inspect.isclass(kind) or kind is type(None):
        return []
    if kind is bool:
        return ["true", "false"]
    if kind in (int, float):
        return ["a whole number" if kind is int else "a number"]
    if issubclass(kind, enum.Enum):
        return [str(member.value) for member in kind]
    if issubclass(kind, (str, os.PathLike)):
        return ["a text"]
    if is_container(kind, Mapping):
        return ["a mapping {key: value}"]
    if is_container(kind, Iterable):
        return ["a list [a,b]"]
    return []


def in_words(words: list[str]) -> str:
    """``a, b or c``; a whole number is among the numbers."""
    if "a number" in words:
        words = [w for w in words if w != "a whole number"]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


#: A number in a range's statement: ``-1``, ``0.5``, ``1e-4``, ``inf``
NUMBER = r"-?(?:inf|\d+(?:\.\d*)?(?:e[-+]?\d+)?)"
#: One way a value may lie in its range: ``[0, 1)`` (any number; brackets closed, parentheses open),
#: ``1..65536`` or ``1..`` (whole numbers), or one number (``-1``)
ALTERNATIVE = rf"[\[(]\s*{NUMBER}\s*,\s*{NUMBER}\s*[\])]|{NUMBER}\.\.(?:{NUMBER})?|{NUMBER}"
#: ``range <alternative> [or <alternative> ...]`` in an option's YAML comment
STATED_RANGE = re.compile(rf"\brange\s+((?:{ALTERNATIVE})(?:\s+or\s+(?:{ALTERNATIVE}))*)")


@dataclass(frozen=True)
class Interval:
    """Numbers from ``low`` to ``high`` (each end in or out), or only the whole numbers among them."""

    low: float
    high: float
    closed_low: bool = True
    closed_high: bool = True
    whole: bool = False

    @classmethod
    def parse(cls, text: str) -> Interval:
        if text[0] in "[(":
            low, high = (float(end) for end in text[1:-1].split(","))
            return cls(low, high, text[0] == "[", text[-1] == "]")
        if ".." in text:
            low, _, high = text.partition("..")
            return cls(float(low), float(high or "inf"), whole=True)
        return cls(float(text), float(text), whole=float(text).is_integer())

    def holds(self, value: float) -> bool:
        if self.whole and not isinstance(value, int):
            return False
        above = value >= self.low if self.closed_low else value > self.low
        below = value <= self.high if self.closed_high else value < self.high
        return above and below  # nan is in no range

    def words(self) -> str:
        low, high = as_number(self.low), as_number(self.high)
        if self.low == self.high:
            return low
        kind = "a whole number" if self.whole else "a number"
        if math.isinf(self.high):
            return f"{kind} of {low} or more" if self.closed_low else f"{kind} above {low}"
        if self.closed_low and self.closed_high:
            return f"{kind} from {low} to {high}"
        start = f"at least {low}" if self.closed_low else f"above {low}"
        return f"{kind} {start} and {'at most' if self.closed_high else 'below'} {high}"


#: ``one of a | b | c`` in a text option's YAML comment: the values it takes
STATED_CHOICES = re.compile(r"\bone of ([\w.-]+(?:\s*\|\s*[\w.-]+)+)")


@dataclass(frozen=True)
class Choices:
    """The texts a text option takes (``log_level``: ``critical | error | warning | info | debug``)."""

    values: tuple[str, ...]

    def holds(self, value: Any) -> bool:
        return (value if value is None or isinstance(value, str) else as_typed(value)) in self.values

    def words(self) -> str:
        return f"one of {', '.join(self.values)}"


@dataclass(frozen=True)
class Null:
    """An option whose comment says what null means (``max_len: 50  # ...; null: the longest``)."""

    def holds(self, value: Any) -> bool:
        return value is None

    def words(self) -> str:
        return "null"


def as_number(value: float) -> str:
    return str(int(value)) if value.is_integer() else f"{value:g}"


def stated_range(comment: str) -> list[Interval]:
    """The range an option's YAML comment states (``range 1..65536``, ``range (0, 1) or 1..``); [] if
    none."""
    found = STATED_RANGE.search(comment)
    return [Interval.parse(m[0]) for m in re.finditer(ALTERNATIVE, found[1])] if found else []


def file_ranges(path: Path) -> dict[str, list[Interval]]:
    """The ranges a config file states: dotted key within the file -> its range."""
    found: dict[str, list[Interval]] = {}
    stack: list[tuple[int, str]] = []
    for line in path.read_text().splitlines():
        match = KEY.match(line)
        if not match:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([*(k for _, k in stack), match["key"]])
        if not match["value"].strip():
            stack.append((indent, match["key"]))
        comment = match["comment"] or ""
        choices = STATED_CHOICES.search(comment)
        if stated_range(comment):
            found[dotted] = [*stated_range(comment), *([Null()] if "null" in comment else [])]
        elif choices:
            found[dotted] = [Choices(tuple(re.split(r"\s*\|\s*", choices[1])))]
    return found


def package_of(path: Path) -> str:
    """Where a config file's keys land: its ``# @package`` line, else its group's path (``data``)."""
    for line in path.read_text().splitlines():
        if line.startswith("# @package"):
            package = line.split()[-1]
            return "" if package == "_global_" else package
    parent = path.parent.relative_to(CONF_DIR)
    return "" if parent == Path(".") else ".".join(parent.parts)


def option_ranges(config_name: str, choices: Mapping[str, str | None]) -> dict[str, list[Interval]]:
    """The range of every option of a composed config that states one, from the files composed: the
    command's config (and the top-level configs it builds on), and each group's chosen option with the
    files of its group it builds on (``trainer=cpu`` on ``default``, a model on ``base/training``)."""
    conf = Path(CONF_DIR)
    files = [(conf / f"{name}.yaml", "") for name in groups_of(conf / f"{config_name}.yaml")]
    files.append((conf / f"{config_name}.yaml", ""))
    for group, choice in choices.items():
        path = conf / group / f"{choice}.yaml"
        if choice is None or group.startswith("hydra") or not path.is_file():
            continue
        package = package_of(path)
        for name in groups_of(path):
            files.append((path.parent / f"{name}.yaml", package))
        files.append((path, package))
    ranges: dict[str, list[Interval]] = {}
    for path, package in files:
        if path.is_file():
            for key, stated in file_ranges(path).items():
                ranges[f"{package}.{key}" if package else key] = stated
    return ranges


def groups_of(path: Path) -> list[str]:
    """The files a config's defaults list names without a group choice (``- default``,
    ``- base/training@_here_``, ``- train``) that lie beside it."""
    named = [group for group, choice in groups(path.read_text().splitlines()) if choice is None]
    return [name for name in named if (path.parent / f"{name}.yaml").is_file()]


def range_error(
    override: Any, base: DictConfig, cfg: DictConfig, ranges: Mapping[str, list[Interval]]
) -> str | None:
    """A new number (or list of numbers) outside the range its option's YAML comment states."""
    key = override.key_or_group
    stated = ranges.get(key)
    new = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
    if not stated:
        return None
    old = OmegaConf.select(base, key, default=None, throw_on_resolution_failure=False)
    if new is None and not isinstance(stated[0], Choices):
        declared = declared_type(cfg, key)
        if (
            old is None
            or any(isinstance(i, Null) for i in stated)
            or (declared is not inspect.Parameter.empty and takes(declared, None))
        ):
            return None  # null is the default, or its comment or its signature says what it means
        return f"{override.input_line}: use {in_words([i.words() for i in stated])} (default {as_typed(old)})"
    refused = f"{override.input_line}: use {in_words([i.words() for i in stated])} (default {as_typed(old)})"
    if (
        isinstance(new, str)
        and not isinstance(stated[0], Choices)
        and not isinstance(old, str)
        and declared_type(cfg, key) is inspect.Parameter.empty  # no signature says a text is welcome
    ):
        return refused  # a text where a number goes (threads=abc, whose default null says no type)
    # a text option's stated values: any other value (a number, a list, a flag) is refused
    for value in [new] if isinstance(stated[0], Choices) else numbers_in(new):
        if not any(interval.holds(value) for interval in stated):
            return refused
    return None


def numbers_in(value: Any) -> Iterator[float]:
    """The numbers of a value: itself, or those of a list (of lists); not flags, texts or mappings."""
    if isinstance(value, ListConfig):
        for item in value:
            yield from numbers_in(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, say how many jobs failed and how to tabulate them."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        statuses = [json.loads(p.read_text()).get("status") for p in sweep_dir.glob("*/metrics.json")]
        failed = statuses.count("failed")
        log.info(
            "sweep done: %d job(s), %d failed; table and plot: python -m dlforge.report %s",
            len(statuses),
            failed,
            sweep_dir,
        )
