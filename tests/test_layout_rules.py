"""Code in its place (issue 29): nets import nothing from the data, no module imports another's private
names, shared bases live in models/base.py, and the training options (optimizers, scheduler, monitor)
and the loader options are each written once: in the model and data bases and in one model config."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import dlforge
from dlforge import CONF_DIR
from dlforge.data import MNISTDataModule, MRDataModule, PigLatinDataModule, SpokenDigitsDataModule
from dlforge.data.datamodule import LoaderOptions
from dlforge.data.files import label_order
from dlforge.data.piglatin import BOS, EOS, PAD, VOCAB_SIZE, encode_words
from dlforge.data.table import CSVTableDataModule
from dlforge.data.word2vec_corpus import TextCorpusDataModule
from dlforge.errors import DlforgeError
from dlforge.models import MODELS, Seq2Seq, build_model
from dlforge.models.base import DlforgeModule
from dlforge.nets import build_net
from dlforge.nets.seq2seq import beam_search

PACKAGE = Path(dlforge.__file__).parent
MODEL_CONFIGS = sorted(p.stem for p in (Path(CONF_DIR) / "model").glob("*.yaml"))
MNIST = {
    "name": "mnist",
    "channels": 1,
    "height": 28,
    "width": 28,
    "num_classes": 10,
    "mean": [0.13],
    "std": [0.31],
    "class_names": [str(d) for d in range(10)],
}
ADAM = {"_target_": "torch.optim.Adam", "lr": 0.001}


def dlforge_imports(path: Path) -> list[tuple[str, list[str]]]:
    """The dlforge modules a file of the package imports and the names it takes."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    return imports_of(path.read_text(), package)


def imports_of(source: str, package: str) -> list[tuple[str, list[str]]]:
    """The dlforge modules ``source`` (a module of ``package``) imports, relative imports made
    absolute, each with the names it takes (none for ``import x``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            found.append((module, [alias.name for alias in node.names]))
    return [(m, names) for m, names in found if m == "dlforge" or m.startswith("dlforge.")]


# --- imports ---------------------------------------------------------------------------------------
def test_no_network_imports_the_data() -> None:
    """Token ids, vocabularies and shapes reach a network through its constructor, never an import."""
    nets = sorted((PACKAGE / "nets").glob("*.py"))
    assert len(nets) > 10
    offending = [
        f"{path.name}: {module}"
        for path in nets
        for module, names in dlforge_imports(path)
        if module == "dlforge.data"
        or module.startswith("dlforge.data.")
        or (module == "dlforge" and "data" in names)
    ]
    assert offending == []


def test_the_import_check_sees_relative_and_absolute_imports() -> None:
    source = (
        "from ..data.piglatin import PAD\n"
        "import dlforge.data.text_encoder\n"
        "from dlforge import data\n"
        "import torch\n"
    )
    assert imports_of(source, "dlforge.nets") == [
        ("dlforge.data.piglatin", ["PAD"]),
        ("dlforge.data.text_encoder", []),
        ("dlforge", ["data"]),
    ]
    assert imports_of("from . import layers\n", "dlforge.nets") == [("dlforge.nets", ["layers"])]


def test_no_module_imports_another_modules_private_names() -> None:
    """Helpers two modules share are public (data/table.py took corpora.py's ``_is_number``)."""
    offending = [
        f"{path.relative_to(PACKAGE)}: {module}.{name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for module, names in dlforge_imports(path)
        for name in names
        if name.startswith("_") and not (name.startswith("__") and name.endswith("__"))
    ]
    assert offending == []


def test_labels_are_put_in_class_order_by_one_shared_helper() -> None:
    assert label_order({"10", "2", "b", "-1", "a", "0.5"}) == ["-1", "0.5", "2", "10", "a", "b"]


# --- shared bases ----------------------------------------------------------------------------------
def test_shared_model_bases_live_in_models_base() -> None:
    """Every LightningModule class of dlforge.models that is not a registered family is a shared base,
    defined in dlforge.models.base (the weighted classifier used to live in models/tabular.py)."""
    import importlib
    import pkgutil

    import dlforge.models as models

    bases = {}
    for info in pkgutil.iter_modules(models.__path__):
        module = importlib.import_module(f"dlforge.models.{info.name}")
        for obj in vars(module).values():
            ours = inspect.isclass(obj) and obj.__module__ == module.__name__
            if ours and issubclass(obj, DlforgeModule) and obj not in MODELS.values():
                bases[obj.__name__] = obj.__module__
    assert "WeightedClassifierModule" in bases and "ClassifierModule" in bases
    assert set(bases.values()) == {"dlforge.models.base"}


# --- the training options, written once --------------------------------------------------------------
def composed_model(name: str) -> dict[str, Any]:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"model={name}"])
    return OmegaConf.to_container(cfg.model, resolve=False)


@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_every_model_config_gives_exactly_the_options_its_class_takes(name: str) -> None:
    """Each config sets every training option of its class (the checkpoint callback reads ``monitor``
    and ``monitor_mode``) and nothing the class lacks (a GAN takes no ``optimizer``)."""
    model = composed_model(name)
    cls = MODELS[model.pop("kind")]
    accepted = set(inspect.signature(cls).parameters) - {"data", "embeddings"}
    assert set(model) <= accepted
    assert set(cls.training_defaults()) <= set(model)
    assert model["monitor_mode"] in ("min", "max")


def test_the_shared_config_is_composed_and_a_model_config_overrides_it() -> None:
    """conf/model/base/training.yaml holds the optimizer, scheduler and the classifiers' monitor once."""
    shared = OmegaConf.load(Path(CONF_DIR) / "model" / "base" / "training.yaml")
    assert set(shared) == {"optimizer", "scheduler", "monitor", "monitor_mode"}
    lenet, autoencoder = composed_model("lenet"), composed_model("autoencoder")
    assert (lenet["optimizer"], lenet["scheduler"]) == ("${optimizer}", "${scheduler}")
    assert (lenet["monitor"], lenet["monitor_mode"]) == ("val/acc", "max")
    assert (autoencoder["monitor"], autoencoder["monitor_mode"]) == ("val/loss", "min")
    own = (Path(CONF_DIR) / "model" / "lenet.yaml").read_text()
    assert "base/training@_here_" in own and "optimizer:" not in own and "monitor:" not in own
    assert "optimizer" not in composed_model("dcgan") and "optimizer" not in composed_model("random_forest")


def test_the_base_keeps_the_training_options_with_their_class_defaults() -> None:
    model = build_model("image_classifier", net={"name": "mlp", "hidden": [8]}, data=MNIST)
    assert {k: model.hparams[k] for k in ("optimizer", "scheduler", "monitor", "monitor_mode")} == {
        "optimizer": None,
        "scheduler": None,
        "monitor": "val/acc",
        "monitor_mode": "max",
    }
    assert model.hparams_initial["monitor"] == "val/acc"  # what the loggers get
    vae = build_model("vae", net={"name": "mlp_autoencoder", "hidden": [8]}, data=MNIST, optimizer=ADAM)
    assert (vae.hparams.optimizer, vae.hparams.monitor, vae.hparams.monitor_mode) == (ADAM, "val/loss", "min")
    assert "optimizer" not in build_model("classical", net={"name": "decision_tree"}, data=MNIST).hparams
    with pytest.raises(DlforgeError, match=r"no optimizer config to train with; set model\.optimizer$"):
        model.configure_optimizers()
    gan = build_model("gan", net={"name": "dcgan", "features": 8}, data=MNIST)
    with pytest.raises(DlforgeError, match=r"set model\.optimizer_g, model\.optimizer_d"):
        gan.configure_optimizers()


def test_an_old_checkpoints_hyper_parameters_rebuild_the_same_model() -> None:
    """Checkpoints written when every model listed the training options itself load unchanged."""
    old = {
        "net": {"name": "mlp", "hidden": [8]},
        "data": MNIST,
        "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1},
        "scheduler": {"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 1},
        "label_smoothing": 0.1,
        "monitor": "val/loss",
        "monitor_mode": "min",
    }
    model = build_model("image_classifier", **old)
    assert dict(model.hparams) == old
    assert dict(build_model("image_classifier", **dict(model.hparams)).hparams) == old  # load_model's way
    config = model.configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.SGD) and config["optimizer"].defaults["lr"] == 0.1
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)


def test_unknown_training_options_are_refused_by_name() -> None:
    with pytest.raises(
        DlforgeError, match=r"model gan has no option optimizer; its options: net, .*optimizer_g"
    ):
        build_model("gan", net={"name": "dcgan"}, data=MNIST, optimizer=ADAM)
    with pytest.raises(DlforgeError, match="model classical has no option scheduler"):
        build_model("classical", net={"name": "decision_tree"}, data=MNIST, scheduler=None)
    with pytest.raises(TypeError, match="ImageClassifier has no option optimiser"):
        MODELS["image_classifier"](net={"name": "mlp"}, data=MNIST, optimiser=ADAM)


def test_the_gan_keeps_its_two_optimizers_and_one_scheduler_each() -> None:
    options = {"net": {"name": "dcgan", "features": 8, "latent_dim": 8}, "data": MNIST}
    adam_g, adam_d = {**ADAM, "lr": 0.002}, {**ADAM, "lr": 0.0001}
    scheduler = {"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 1}
    gan = build_model("gan", **options, optimizer_g=adam_g, optimizer_d=adam_d, scheduler=scheduler)
    assert (gan.hparams.monitor, gan.hparams.monitor_mode) == (None, "min")
    optimizers, schedulers = gan.configure_optimizers()
    assert [o.defaults["lr"] for o in optimizers] == [0.002, 0.0001]
    assert [s["scheduler"].optimizer for s in schedulers] == optimizers
    assert {id(p) for p in optimizers[0].param_groups[0]["params"]} == {
        id(p) for p in gan.generator.parameters()
    }


def test_every_family_shows_its_training_options_in_its_signature() -> None:
    families = {kind: cls for kind, cls in MODELS.items() if cls.__module__.startswith("dlforge.models.")}
    assert len(families) >= 12  # (a test's own toy family may be registered too)
    for kind, cls in families.items():
        parameters = inspect.signature(cls).parameters
        for name, default in cls.training_defaults().items():
            assert name in parameters, (kind, name)
            if parameters[name].kind is inspect.Parameter.KEYWORD_ONLY:
                assert parameters[name].default == default, (kind, name)
        assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()), kind


# --- token ids live with the tokenizer ------------------------------------------------------------
def test_the_seq2seq_model_hands_its_tokenizers_ids_to_the_network() -> None:
    data = {"name": "piglatin", "alphabet": "ab", "max_train_len": 5, "max_word_len": 9}
    model = Seq2Seq(net={"name": "gru_seq2seq", "hidden": 4, "embed_dim": 4}, data=data)
    assert (model.net.pad, model.net.bos, model.net.eos) == (PAD, BOS, EOS)
    assert model.net.embed.padding_idx == PAD
    defaults = inspect.signature(type(model.net)).parameters
    assert (defaults["pad"].default, defaults["bos"].default, defaults["eos"].default) == (PAD, BOS, EOS)


@pytest.mark.parametrize("name", ["gru_seq2seq", "transformer_seq2seq"])
def test_a_network_decodes_with_the_ids_it_is_given(name: str) -> None:
    """With ids in another order (EOS first, PAD and BOS last) decoding starts from BOS, never outputs
    PAD or BOS even when they score best, and pads after EOS with PAD: the ids, not their places."""
    torch.manual_seed(0)
    pad, bos, eos = VOCAB_SIZE - 1, VOCAB_SIZE - 2, 0
    net = build_net(name, vocab_size=VOCAB_SIZE, pad=pad, bos=bos, eos=eos).eval()
    out = net.decoder.out if name == "gru_seq2seq" else net.out
    with torch.no_grad():
        out.weight.zero_()
        out.bias.zero_()
        out.bias[[pad, bos, eos]] = torch.tensor([100.0, 50.0, 10.0])
    first = []
    step = net.step

    def spy(token: torch.Tensor, *args: Any) -> Any:
        first.append(token.clone())
        return step(token, *args)

    net.step = spy  # type: ignore[method-assign]
    src = encode_words(["string", "a"]).masked_fill(encode_words(["string", "a"]) == PAD, pad)
    with torch.no_grad():
        tokens, _ = net.greedy(src, 5)
        beam, _ = beam_search(net, src, 3, 5)
    assert torch.equal(first[0], torch.full((2,), bos))
    assert tokens[:, 0].tolist() == [eos, eos] and (tokens[:, 1:] == pad).all()
    assert torch.equal(beam[:, 0], tokens[:, 0])


# --- the loader options, written once --------------------------------------------------------------
def test_each_data_module_keeps_its_own_loader_defaults(tmp_path: Path) -> None:
    sizes = {
        MNISTDataModule: (64, 64),
        SpokenDigitsDataModule: (32, 32),
        PigLatinDataModule: (256, 1024),
        MRDataModule: (50, 50),
        TextCorpusDataModule: (8192, 4096),
    }
    for cls, expected in sizes.items():
        data = cls()
        assert (data.batch_size, data.eval_batch_size) == expected, cls.__name__
        assert (data.num_workers, data.pin_memory, data.on_device) == (0, False, False), cls.__name__
    table = CSVTableDataModule(path=str(tmp_path / "t.csv"))
    assert (table.batch_size, table.eval_batch_size) == (256, 256)


def test_loader_options_given_by_name_override_and_a_null_eval_size_is_the_batch_size() -> None:
    data = PigLatinDataModule(batch_size=8, num_workers=2, pin_memory=True, on_device=True)
    assert (data.batch_size, data.eval_batch_size, data.num_workers, data.pin_memory, data.on_device) == (
        8,
        1024,
        2,
        True,
        True,
    )
    assert PigLatinDataModule(batch_size=8, eval_batch_size=None).eval_batch_size == 8
    corpus = TextCorpusDataModule(batch_size=16, eval_batch_size=None, on_device=True)  # passes them in order
    assert (corpus.batch_size, corpus.eval_batch_size, corpus.on_device) == (16, 16, True)


def test_bad_loader_options_are_refused_in_one_place() -> None:
    with pytest.raises(DlforgeError, match=r"data.batch_size=0: use a whole number of examples"):
        MNISTDataModule(batch_size=0)
    with pytest.raises(DlforgeError, match=r"data.eval_batch_size=2.5"):
        SpokenDigitsDataModule(eval_batch_size=2.5)
    with pytest.raises(DlforgeError, match=r"data.num_workers=-1"):
        MRDataModule(num_workers=-1)
    with pytest.raises(TypeError, match="no loader option batchsize; the loader options are batch_size"):
        MNISTDataModule(batchsize=8)
    assert [f for f in inspect.signature(LoaderOptions).parameters] == [
        "batch_size",
        "eval_batch_size",
        "num_workers",
        "pin_memory",
        "on_device",
    ]


# --- the layout: names, parts, and which part may import which ------------------------------------
#: the layers a family's pieces live in: its name may repeat across them, and only there
FAMILY_LAYERS = {"nets", "models", "callbacks", "serving", "tools"}
#: part -> the parts it must not import (the library's shared modules may be imported by all)
FORBIDDEN = {
    "nets": {"data", "models", "callbacks", "serving", "tools"},
    "data": {"nets", "models", "callbacks", "serving", "tools"},
    "models": {"callbacks", "serving", "tools"},
    "callbacks": {"serving", "tools"},
    "serving": {"callbacks", "tools"},
    "library": {"tools"},
}
TOOLS = {p.stem for p in (PACKAGE / "tools").glob("*.py")}


def part(module: str) -> str:
    """``dlforge.models.gan`` -> ``models``; ``dlforge.predict`` (a tool) -> ``tools``; else ``library``."""
    name = module.split(".")[1] if module.count(".") else ""
    return name if name in FORBIDDEN or name == "tools" else "tools" if name in TOOLS else "library"


def modules_imported(path: Path) -> set[str]:
    found = set()
    for module, names in dlforge_imports(path):
        found |= {f"dlforge.{name}" for name in names} if module == "dlforge" else {module}
    return found


def test_no_two_modules_share_a_name_but_a_familys_pieces() -> None:
    by_name: dict[str, list[Path]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name != "__init__.py":
            by_name.setdefault(path.name, []).append(path.relative_to(PACKAGE))
    clashes = {
        name: [str(p) for p in paths]
        for name, paths in by_name.items()
        if len(paths) > 1 and not all(p.parts[0] in FAMILY_LAYERS and len(p.parts) == 2 for p in paths)
    }
    assert clashes == {}


def test_the_top_level_holds_the_shared_library_only() -> None:
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert not set(top) & TOOLS and len(top) <= 22, top  # 31 before issue 29 (benchmarks/layout.py)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_each_part_imports_only_what_it_may(layer: str) -> None:
    files = PACKAGE.glob("*.py") if layer == "library" else (PACKAGE / layer).rglob("*.py")
    offending = [
        f"{path.relative_to(PACKAGE)} imports {module}"
        for path in sorted(files)
        for module in sorted(modules_imported(path))
        if part(module) in FORBIDDEN[layer]
    ]
    assert offending == []


def test_tools_never_import_each_other_and_name_no_family() -> None:
    offending = []
    for path in sorted((PACKAGE / "tools").glob("*.py")):
        for module in sorted(modules_imported(path)):
            other_tool = part(module) == "tools" and module != f"dlforge.{path.stem}"
            family = module.split(".")[1:2] in (["nets"], ["callbacks"]) or (
                module.startswith(("dlforge.serving.", "dlforge.models.")) and module.count(".") == 2
                and module.split(".")[2] not in ("served", "web", "base")
            )  # fmt: skip
            if other_tool or (family and path.stem in ("predict", "generate", "export", "app")):
                offending.append(f"tools/{path.name} imports {module}")
    assert offending == []
