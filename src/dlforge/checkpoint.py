"""What every tool shares: loading a checkpoint safely, its data, the device, and its classes.

Checkpoints are read with ``torch.load(weights_only=True)`` and rebuilt only as registered model
kinds (:func:`dlforge.models.build_model`); tools never import each other, they meet here.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, TypeVar

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from dlforge import CONF_DIR
from dlforge.data.datamodule import DataModule
from dlforge.errors import CheckpointError, DlforgeError, first_line
from dlforge.models import MODELS, DlforgeModule, build_model

M = TypeVar("M", bound=DlforgeModule)


def checkpoint_paths(trainer: Any) -> dict[str, str | None]:
    """Where a run's checkpoint callbacks put the best and the last checkpoint (None: none written):
    ``last.ckpt`` is the callback named ``last`` (``conf/callbacks/default.yaml``), or ``save_last``'s."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    best = last = None
    for callback in trainer.checkpoint_callbacks:
        if not isinstance(callback, ModelCheckpoint):
            continue
        if callback.filename == ModelCheckpoint.CHECKPOINT_NAME_LAST:
            last = callback.best_model_path or last
        else:
            best = best or callback.best_model_path or None
            last = last or callback.last_model_path or None
    return {"best_checkpoint": best, "last_checkpoint": last}


def last_checkpoint_file(trainer: Any) -> Path | None:
    """Where the callback named ``last`` (``conf/callbacks/default.yaml``) writes ``last.ckpt``, written
    yet or not (None: the run has no such callback, or it has no folder yet)."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    for callback in trainer.checkpoint_callbacks:
        last = isinstance(callback, ModelCheckpoint) and callback.filename == callback.CHECKPOINT_NAME_LAST
        if last and callback.dirpath:
            return Path(callback.dirpath) / f"{callback.filename}{callback.FILE_EXTENSION}"
    return None


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents, read without unpickling code (``weights_only=True``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; pass ckpt_path=<run dir>/checkpoints/last.ckpt")
    if not zipfile.is_zipfile(path):  # torch.save's format
        raise CheckpointError(f"{path} is not a PyTorch checkpoint; pass a .ckpt file that dlforge wrote")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        raise CheckpointError(f"cannot read checkpoint {path}: {first_line(err)}") from None


def checkpoint_kind(checkpoint: dict[str, Any], path: str | Path) -> str:
    """The registered model kind a checkpoint holds (refusing files dlforge did not write)."""
    kind = checkpoint.get("dlforge", {}).get("model") if isinstance(checkpoint, dict) else None
    if kind not in MODELS:
        raise CheckpointError(f"{path} is not a dlforge model checkpoint (model kind {kind!r})")
    return kind


def load_model(
    path: str | Path,
    want: type[M] = DlforgeModule,  # type: ignore[assignment]
    device: str | torch.device = "cpu",
    what: str = "",
) -> M:
    """Rebuild the model stored at ``path`` in eval mode on ``device``.

    ``want`` is the model class a tool works with (``GenerativeModule`` for generate); another
    kind is refused with a line saying what the tool needs (``what``, e.g. "a generative model").
    """
    checkpoint = read_checkpoint(path)
    kind = checkpoint_kind(checkpoint, path)
    if not issubclass(MODELS[kind], want):
        needs = what or f"a {want.__name__} model"
        raise CheckpointError(f"{path} holds a {kind} model; this tool needs {needs}")
    model = build_model(kind, **checkpoint["hyper_parameters"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval().to(pick_device(device))  # type: ignore[return-value]


def check_resumable(model: DlforgeModule, path: str | Path) -> None:
    """Refuse to resume (or test) ``model`` from a checkpoint of another kind or other network shapes."""
    checkpoint = read_checkpoint(path)
    kind = checkpoint_kind(checkpoint, path)
    if kind != model.kind:
        raise CheckpointError(
            f"ckpt_path={path} holds a {kind} model but this run builds a {model.kind}; "
            "pass the model= (and options) it was trained with"
        )
    theirs, ours = checkpoint["state_dict"], model.state_dict()
    differ = sorted(
        k
        for k in set(ours) | set(theirs)
        if k not in theirs or k not in ours or theirs[k].shape != ours[k].shape
    )
    if differ:
        raise CheckpointError(
            f"ckpt_path={path} has other network shapes than this run's model ({differ[0]}, ...); "
            "pass the model and data options it was trained with"
        )


def pick_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` is the GPU when there is one, else the CPU; ``cuda`` without one is a clear error."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise DlforgeError(f"device={name} but this machine has no CUDA GPU; use device=cpu or device=auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise DlforgeError(f"device={name} is not a device; use auto, cpu or cuda") from None


def class_names(model: DlforgeModule) -> list[str]:
    """The class names a model was trained with (indices as names when the data had none)."""
    data = model.hparams.get("data") or {}
    return [str(name) for name in data.get("class_names") or range(data.get("num_classes") or 0)]


def class_index(value: Any, names: list[str], what: str) -> int:
    """A class given as its index or (case-insensitive) name; ``what`` names the option in errors."""
    if isinstance(value, int) and 0 <= value < len(names):
        return value
    lowered = [name.lower() for name in names]
    if str(value).lower() in lowered:
        return lowered.index(str(value).lower())
    raise DlforgeError(
        f"{what}={value}: not a class of this model; use an index 0-{len(names) - 1} or one of {names}"
    )


SHAPE_KEYS = ("channels", "height", "width", "num_classes")


def check_same_data(
    model: DlforgeModule, data_spec: dict[str, Any], source: str, keys: tuple[str, ...] = SHAPE_KEYS
) -> None:
    """Fail with a hint when ``data_spec`` (a data set's, or another model's) differs from the data
    ``model`` was trained on in shape or classes; ``source`` names where the spec came from."""
    trained = model.hparams.get("data") or {}
    if all(trained.get(k) == data_spec.get(k) for k in keys if k in trained):
        return

    def shape(spec: dict[str, Any]) -> str:
        size = "x".join(str(spec.get(k)) for k in ("channels", "height", "width"))
        return f"{size}, {spec.get('num_classes')} classes"

    raise CheckpointError(
        f"{source} is {data_spec.get('name')} ({shape(data_spec)}) but the model was trained on "
        f"{trained.get('name')} ({shape(trained)}); use the data set it was trained on "
        f"(data={trained.get('name')})"
    )


def data_config(name: str, paths: DictConfig, seed: int) -> DictConfig:
    """``conf/data/<name>.yaml`` composed with a run's paths and seed (the data of a checkpoint)."""
    overrides = [
        f"data={name}",
        f"paths.data_dir={paths.data_dir}",
        f"paths.cache_dir={paths.cache_dir}",
        f"seed={seed}",
    ]
    fresh = not GlobalHydra.instance().is_initialized()
    if fresh:
        initialize_config_dir(CONF_DIR, version_base="1.3")
    try:
        cfg = compose(config_name="train", overrides=overrides)
    except Exception as err:  # Hydra's composition errors come in several types
        raise DlforgeError(f"no data config for {name!r} ({first_line(err)}); pass data=<name>") from None
    finally:
        if fresh:
            GlobalHydra.instance().clear()
    return OmegaConf.create(OmegaConf.to_container(cfg.data, resolve=True))


def data_for(model: DlforgeModule, data_cfg: DictConfig, stage: str = "test", **options: Any) -> DataModule:
    """The data module of ``data_cfg`` set up as ``model``'s data was (its vocabulary, its shape)."""
    datamodule: DataModule = instantiate(data_cfg, **options)
    datamodule.adopt_spec(model.hparams.get("data") or {})
    datamodule.prepare_data()
    datamodule.setup(stage)
    check_same_data(model, datamodule.spec, f"data={datamodule.name}")
    return datamodule
