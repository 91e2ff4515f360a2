"""Property-based fuzzing of every command line (issue 31): overrides drawn from the real config tree.

For each tool (``train.py``, ``evaluate``, ``predict``, ``generate``, ``export``, ``embeddings``,
``report``, a search's sweeper, the app's start-up), Hypothesis draws one or two overrides of the
tool's own composed config (Hydra's compose API walks ``conf/``): existing keys with values of a
wrong type, out-of-range numbers (0, -1, 1e12, nan, inf), empty, very long and non-ASCII texts, paths
that are missing, a folder, unreadable, binary or truncated; unknown keys and wrong group choices.

The property: the command either succeeds, or exits non-zero with exactly one ``error:`` line, the
last, and no traceback; within a time bound; leaving no half-written run dir, temporary or output file.

Each example runs the tool's ``main()`` in this process (``tests/conftest.py: run_tool``), from a fresh
folder, on tiny data, with training cut to a step or two. The example budget is the Hypothesis profile's
(``ci`` by default, ``--hypothesis-profile=long`` for a deeper run); found failures stay in the
committed example database ``tests/hypothesis-db/`` and are replayed first.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.object_type import ObjectType
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, ListConfig, OmegaConf

from dlforge import CONF_DIR
from dlforge.cli import ConfigGroups, file_ranges, numbers_in, stated_range
from tests.conftest import run_tool, write_image_folder, write_mnist_like

#: seconds a command may take in the fuzz (the slowest success, a 1-step search, takes about 10)
TIME_BOUND = 60
#: the overrides that keep any training a step or two long, on the tiny data, offline
SHORT = (
    "trainer=cpu",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_model_summary=false",
    "data.download=false",
    "data.batch_size=8",
    "data.val_size=16",
)
#: out-of-range numbers and values of other types than an option's
NUMBERS = ("0", "-1", "1e12", "nan", "inf", "-inf", "0.5")
TEXTS = ("abc", "''", "'" + "x" * 5000 + "'", "'héllo wörld → 世界 ∂'", "true", "null", "[]", "{}", "[abc]")
LISTS = ("[]", "[0]", "[-1]", "[nan]", "[1e12]", "[[1]]", "[a,b]")
#: damaged files, written fresh in each example's folder (a tool that wrote into one cannot spoil the next)
DAMAGED = ("missing.ckpt", "folder", "unreadable.ckpt", "binary.png", "truncated.ckpt", "empty.txt",
           "truncated.txt", "notadir.txt/inside.ckpt", "junk.wav")  # fmt: skip


def damage(folder: Path, good_ckpt: Path) -> None:
    """The damaged files of :data:`DAMAGED` in ``folder``."""
    (folder / "folder").mkdir()
    unreadable = folder / "unreadable.ckpt"
    unreadable.write_bytes(good_ckpt.read_bytes()[:100])
    unreadable.chmod(0)
    blob = bytes(range(256)) * 64
    (folder / "binary.png").write_bytes(blob)
    (folder / "junk.wav").write_bytes(b"RIFF" + blob[:200])
    data = good_ckpt.read_bytes()
    (folder / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    (folder / "empty.txt").write_bytes(b"")
    (folder / "truncated.txt").write_text("the 0.1 0.2 0.3\nof 0.4 0.")
    (folder / "notadir.txt").write_text("a file, not a folder\n")


# --- the world: tiny data, checkpoints, vectors ---------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny MNIST, an image, GloVe-format vectors, and a LeNet and a DCGAN trained a step each."""
    from dlforge.training import train

    root = tmp_path_factory.mktemp("fuzz_world")
    write_mnist_like(root, "MNIST", n_train=120, n_test=40)
    write_image_folder(root / "shapes", n_train=6, n_test=3)
    words = ["king", "queen", "man", "woman", "apple", "pear", "paris", "france", "rome", "italy"]
    (root / "vectors.txt").write_text(
        "".join(
            f"{w} {' '.join(str(((i * 7 + j * 3) % 11) / 10 - 0.5) for j in range(4))}\n"
            for i, w in enumerate(words)
        )
    )
    found = {"data": root, "image": next((root / "shapes" / "test").rglob("*.png"))}
    for name, overrides in {
        "lenet": ("model=lenet",),
        "dcgan": ("model=dcgan", "model.net.features=8"),
    }.items():
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("train", overrides=[f"paths.data_dir={root}", *overrides, *SHORT, "test=false"])
        cfg.paths.output_dir = str(root / name)
        cfg.paths.cache_dir = str(root / "cache")
        found[name] = Path(train(cfg)["last_checkpoint"])
    return found


#: each tool: its command, and the arguments every example starts from ({name}: a path of the world)
TOOLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "train": ("train", ("model=lenet", *SHORT)),
    "evaluate": ("evaluate", ("ckpt_path={lenet}", *SHORT[:5], "data.download=false")),
    "predict": ("predict", ("ckpt_path={lenet}", "image={image}")),
    "generate": ("generate", ("ckpt_path={dcgan}", "n=4", "nrow=2", "device=cpu")),
    "export": ("export", ("ckpt_path={lenet}", "format=torchscript", "check.samples=2")),
    "embeddings": ("embeddings", ("neighbours", "king", "vectors={vectors}", "k=2")),
    "search": (
        "train",
        (
            "-m",
            "hparams_search=lenet_mnist_optuna",
            "hydra.sweeper.n_trials=1",
            "hydra.sweeper.sampler.n_startup_trials=1",
            "hydra.sweeper.params={optimizer.lr:'interval(0.001, 0.01)'}",
            *SHORT,
        ),
    ),
    "app": ("app", ("digit={lenet}", "port=0")),
}
#: options and group choices that start more than one process (DDP): an in-process run cannot relaunch
#: itself (Lightning re-runs ``sys.argv``, here pytest's, and kills this process when that child fails);
#: tests/test_multinode.py and tests/test_gan.py run them as typed, in their own processes
MULTI_PROCESS = {
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.strategy",
    "trainer=ddp",
    "trainer=ddp_multinode",
}
#: the share of the profile's example budget each tool gets (training and searching cost the most)
WEIGHT = {"train": 1.5, "search": 0.3, "report": 1.0}


def leaves(node: DictConfig, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, default)`` of every option in a composed config (interpolations as their text)."""
    for key in node:
        full = f"{prefix}{key}"
        if key == "_target_" or full.split(".")[0] in ("hydra", "paths"):
            continue
        if OmegaConf.is_missing(node, key):
            yield full, None
        elif OmegaConf.is_interpolation(node, key):
            yield full, OmegaConf.to_container(node, resolve=False)[key]
        elif isinstance(node[key], DictConfig):
            yield from leaves(node[key], f"{full}.")
        else:
            yield full, node[key]


def composed(config_name: str, args: tuple[str, ...]) -> DictConfig:
    """The tool's config as Hydra composes it from ``args`` (without Hydra flags and commands)."""
    overrides = [a for a in args if "=" in a and "{" not in a and not a.startswith("hydra.sweeper.params")]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name, overrides=overrides, return_hydra_config=config_name == "train")


def values_for(default: Any) -> st.SearchStrategy[str]:
    """Values of another type than ``default``'s, or out of any sensible range, as a command line types
    them; and damaged paths for texts."""
    paths = st.sampled_from(DAMAGED).map(lambda name: f"'{{here}}/{name}'")
    if isinstance(default, bool):
        return st.sampled_from(("maybe", "0", "2", "''", "[]", "nan"))
    if isinstance(default, (int, float)):
        return st.sampled_from(NUMBERS + TEXTS)
    if isinstance(default, ListConfig):
        return st.sampled_from(LISTS + NUMBERS[:3] + TEXTS[:2])
    return st.one_of(st.sampled_from(TEXTS + NUMBERS[:5]), paths)


def overrides_for(tool: str) -> st.SearchStrategy[list[str]]:
    """One or two overrides of the tool's real options, unknown keys or group choices."""
    command, args = TOOLS[tool]
    cfg = composed("train" if tool == "search" else command, args)
    options = sorted(kv for kv in leaves(cfg) if kv[0] not in MULTI_PROCESS)
    if tool == "search":
        options += [(f"hydra.sweeper.{k}", v) for k, v in leaves(cfg.hydra.sweeper) if k != "params"]
    option = st.sampled_from(options).flatmap(
        lambda kv: values_for(kv[1]).map(lambda value: f"{kv[0]}={value}")
    )
    found = ConfigGroups(command, [])
    names = [g for g in found.listing("", ObjectType.GROUP) if g not in ("hydra", "paths")]
    groups = [
        (g, [o for o in found.options(g) if f"{g}={o}" not in MULTI_PROCESS])
        for g in names
        if g in cfg or tool in ("train", "search")
    ]
    choice = st.sampled_from([(g, [*o, "nosuch"]) for g, o in groups] or [("model", ["nosuch"])]).flatmap(
        lambda go: st.sampled_from(go[1]).map(lambda o: f"{go[0]}={o}")
    )
    unknown = st.sampled_from([k.rsplit(".", 1)[0] for k, _ in options if "." in k] + [""]).flatmap(
        lambda parent: st.sampled_from(["nosuch=1", "+nosuch=1", "+nosuch=''"]).map(
            lambda o: (o[0] + parent + "." + o[1:] if o[0] == "+" else f"{parent}.{o}") if parent else o
        )
    )
    one = st.one_of(option, option, option, choice, unknown)
    return st.lists(one, min_size=1, max_size=2)


# --- running one example -------------------------------------------------------------------------------
@contextlib.contextmanager
def time_bound(seconds: int) -> Iterator[None]:
    """Interrupt the command if it runs longer than ``seconds`` (a hang fails the property)."""

    def interrupt(signum: int, frame: Any) -> None:
        raise TimeoutError(f"the command ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class Runner:
    """Runs a tool's ``main()`` on a command line in a fresh folder and checks the property."""

    def __init__(
        self, world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
    ) -> None:
        self.world, self.tmp_path, self.monkeypatch, self.capsys = world, tmp_path, monkeypatch, capsys
        self.count = 0
        monkeypatch.setenv("DATA_DIR", str(world["data"]))
        monkeypatch.setenv("DLFORGE_CACHE", str(world["data"] / "cache"))
        monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def __call__(self, command: str, args: list[str]) -> tuple[int, str]:
        self.count += 1
        here = self.tmp_path / f"example_{self.count:04d}"
        here.mkdir()
        damage(here, self.world["lenet"])
        names = {**{k: str(v) for k, v in self.world.items()}, "here": str(here)}
        argv = [re.sub(r"\{(\w+)\}", lambda m: names.get(m[1], m[0]), a) for a in args]
        outputs = {Path(a.split("=", 1)[1].strip("'")) for a in argv if a.startswith("output=")}
        self.monkeypatch.chdir(here)
        self.capsys.readouterr()
        start = time.perf_counter()
        with time_bound(TIME_BOUND * 2):
            code = run_tool(command, argv, self.monkeypatch)
        took = time.perf_counter() - start
        err = self.capsys.readouterr().err
        shown = f"dlforge {command} {' '.join(a[:200] for a in argv)}\n{err[-3000:]}"
        errors = [
            line for line in err.splitlines() if re.match(r"^(?:python -m dlforge\.\w+: )?error: ", line)
        ]
        assert "Traceback" not in err, shown
        assert took < TIME_BOUND, f"{took:.0f} s: {shown}"
        leftovers = [p for p in here.rglob("*") if ".tmp" in p.name or p.name.endswith("~")]
        assert not leftovers, f"temporary files left: {leftovers}\n{shown}"
        if code == 0:
            assert not errors, shown
        else:
            assert errors and len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], shown
            runs = here / "outputs"
            left = [p for p in runs.rglob("*") if p.is_file()] if runs.exists() else []
            assert not left, f"half-written run dir: {left[:5]}\n{shown}"
            fresh = [p for p in outputs if here in p.parents and str(p.relative_to(here)) not in DAMAGED]
            written = [p for p in fresh if p.is_file() and p.stat().st_size]
            assert not written, f"output file left by a failed run: {written}\n{shown}"
        return code, err


@pytest.fixture
def runner(world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> Runner:
    return Runner(world, tmp_path, monkeypatch, capsys)


def budget(tool: str) -> int:
    return max(2, round(settings.default.max_examples * WEIGHT.get(tool, 1.0)))


FUZZ = {"suppress_health_check": list(HealthCheck), "deadline": None}


#: the failures the fuzz found (fixed), run first every time: a found case stays found
FOUND = {
    "train": [
        ["model.optimizer='{here}/empty.txt'"],
        ["reference='{here}/unreadable.ckpt'"],
        ["model.scheduler=abc"],
        ["optimized_metric=abc"],
        ["callbacks.last_checkpoint.dirpath=abc"],
        ["+data.nosuch=1"],
        ["trainer.strategy=nosuch"],
        ["logger.csv.name='{here}/notadir.txt/inside.ckpt'"],
        ["data.batch_size=0", "data.batch_size=8"],
        ["threads=abc"],  # the long profile: a text where a number goes, the default null
        ["scheduler='{here}/missing.ckpt'"],  # the long profile: a path as a group's choice
        ["trainer.default_root_dir=abc"],  # the long profile: a new folder for the test's pictures
    ],
    "evaluate": [["logger.csv.name='{here}/notadir.txt/inside.ckpt'"]],
    "export": [["ckpt_path=[]"], ["check.samples=null"]],
    "predict": [["ckpt_path={}"], ["batch_size=null"], ["ckpt_path=''"]],
    "generate": [["device=null"], ["seed=null"]],
    "app": [
        ["log_level=abc"],
        ["log_level=inf"],
        ["caption=true"],
        ["host=''"],
        ["host=null"],
        ["log_level=[]"],
    ],
    "embeddings": [["vectors='{here}/truncated.txt'"], ["vectors='{here}/binary.png'"]],
    "search": [
        ["hydra.sweeper.n_trials=0"],
        ["hydra.sweeper.n_trials=abc"],
        ["hydra.sweeper.pruner.n_warmup_steps={}"],
    ],
}


def fuzz_test(tool: str) -> Callable[..., None]:
    command, args = TOOLS[tool]

    @settings(max_examples=budget(tool), **FUZZ)
    @given(extra=overrides_for(tool))
    def test(runner: Runner, extra: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
        if tool == "app":  # start-up only: everything up to serving, no server
            import uvicorn

            monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
        if tool == "embeddings":  # its words and query come before the options, as typed
            runner(command, [*extra[:1], *args, *extra[1:]])
        else:
            runner(command, [*args, *extra])

    for extra in FOUND.get(tool, []):
        test = example(extra=extra)(test)
    test.__name__ = f"test_fuzz_{tool}"
    return test


test_fuzz_train = fuzz_test("train")
test_fuzz_evaluate = fuzz_test("evaluate")
test_fuzz_predict = fuzz_test("predict")
test_fuzz_generate = fuzz_test("generate")
test_fuzz_export = fuzz_test("export")
test_fuzz_embeddings = fuzz_test("embeddings")
test_fuzz_search = fuzz_test("search")
test_fuzz_app = fuzz_test("app")


# --- report: a sweep dir of run records, some damaged ----------------------------------------------------
GOOD_RUN = {"tool": "train", "status": "ok", "error": None, "experiment": None, "model": "lenet",
            "data": "mnist", "metrics": {"test/acc": 0.5}, "wall_time_s": 1.0}  # fmt: skip
RECORDS = st.one_of(
    st.builds(
        lambda acc, lr: json.dumps({**GOOD_RUN, "metrics": {"test/acc": acc}, "overrides": [f"lr={lr}"]}),
        st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none(), st.just("high")),
        st.sampled_from(["0.1", "0.01", "", "é", "a|b"]),
    ),
    st.sampled_from([
        "[]", '"text"', "{}", "null", '{"metrics": 5}', '{"overrides": "a=b", "metrics": {}}',
        '{"metrics": {"test/acc": [1, 2]}}', '{"status": "ok", "metrics": {"a": 1}', "\x00\xff binary",
        '{"metrics": {"test/acc": 0.5}, "overrides": [1, null]}',
    ]),
)  # fmt: skip


@settings(max_examples=budget("report"), **FUZZ)
@example(records=["[]"], folder="sweep", metric=None, results=None)
@example(records=["\x00\xff binary"], folder="sweep", metric=None, results=None)
@example(records=['{"metrics": 5}'], folder="sweep", metric=None, results=None)  # found by the long profile
@example(
    records=['{"metrics": {"test/acc": 0.5}, "overrides": [1, null]}'],
    folder="sweep",
    metric=None,
    results=None,
)
@given(
    records=st.lists(RECORDS, min_size=0, max_size=3),
    folder=st.sampled_from(["sweep", "missing", "empty.txt", "folder"]),
    metric=st.one_of(st.none(), st.sampled_from(["test/acc", "", "nosuch", "'é → 世界'", "x" * 3000])),
    results=st.one_of(st.none(), st.sampled_from(["results.md", "folder", "notadir.txt/results.md"])),
)
def test_fuzz_report(
    runner: Runner, records: list[str], folder: str, metric: str | None, results: str | None
) -> None:
    sweep = runner.tmp_path / f"sweep_{runner.count + 1:04d}"
    for i, text in enumerate(records):
        (sweep / str(i)).mkdir(parents=True)
        (sweep / str(i) / "metrics.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    sweep.mkdir(exist_ok=True)
    argv = [str(sweep) if folder == "sweep" else f"{{here}}/{folder}"]
    argv += ["--metric", metric] if metric is not None else []
    argv += ["--results", f"{{here}}/{results}"] if results else []
    runner("report", argv)


# --- word-vector queries -----------------------------------------------------------------------------------
QUERY_PARTS = [
    "king",
    "man",
    "woman",
    "+",
    "-",
    "+man",
    "-king",
    "--",
    "+-",
    "well-known",
    "wörld",
    "-+queen",
]


@settings(max_examples=max(50, settings.default.max_examples * 20), **FUZZ)
@given(parts=st.lists(st.sampled_from(QUERY_PARTS), max_size=6))
@example(parts=["king", "-"])
@example(parts=["king", "-", "-", "man"])
def test_a_query_is_read_whole_or_refused(parts: list[str]) -> None:
    """An analogy query is answered only when every word and sign of it was read: each sign stands
    before one word; otherwise one line says how to write it (issue 31: "king -" was neighbours of king)."""
    from dlforge.errors import DlforgeError
    from dlforge.word_vectors import parse_expression

    text = " ".join(parts)
    try:
        positive, negative = parse_expression(text)
    except DlforgeError as err:
        assert "joined by + and -" in str(err)
        return
    words = [part.lstrip("+-") for part in parts if part.strip("+-")]
    assert sorted(positive + negative) == sorted(words) and positive
    assert not any(word[0] in "+-" for word in positive + negative)
    assert len(negative) == sum(part.startswith("-") for part in parts)  # each minus took one word


# --- ranges: stated beside every numeric option, checked for every tool ----------------------------------
def numeric_options() -> Iterator[tuple[Path, str, Any]]:
    """``(file, dotted key, default)`` of every option whose default is a number (or a list of numbers)
    in the configs the tools compose (not the experiments and searches, which only set values)."""
    import yaml

    for path in sorted(Path(CONF_DIR).rglob("*.yaml")):
        if path.relative_to(CONF_DIR).parts[0] in ("experiment", "hparams_search", "hydra", "paths"):
            continue
        config = OmegaConf.create(yaml.safe_load(path.read_text()) or {})
        for key, value in leaves(config):
            numbers = list(numbers_in(value))
            if numbers and not isinstance(value, str) and (not isinstance(value, ListConfig) or len(numbers)):
                yield path, key, value


def test_every_numeric_option_states_its_range_and_its_default_lies_in_it() -> None:
    missing, outside = [], []
    for path, key, value in numeric_options():
        stated = file_ranges(path).get(key)
        where = f"{path.relative_to(CONF_DIR)}: {key}={value}"
        if not stated:
            missing.append(where)
        elif not all(any(i.holds(n) for i in stated) for n in numbers_in(value)):
            outside.append(where)
    assert missing == [] and outside == []


@pytest.mark.parametrize(
    ("config", "args", "expect"),
    [
        (
            "train",
            ["data.batch_size=0"],
            "data.batch_size=0: use a whole number from 1 to 65536 (default 64)",
        ),
        (
            "train",
            ["model=lenet", "model.net.dropout=1"],
            "use a number at least 0 and below 1 (default 0.0)",
        ),
        ("train", ["data=cifar10", "data.val_size=1.5"], "use 0, a number above 0 and below 1 or a whole"),
        (
            "train",
            ["optimizer=sgd", "optimizer.momentum=nan"],
            "optimizer.momentum=nan: use a number from 0 to 1",
        ),
        (
            "train",
            ["trainer=cpu", "trainer.max_epochs=0"],
            "trainer.max_epochs=0: use a whole number of 1 or more",
        ),
        ("train", ["model=lenet", "model.net.hidden=[64,0]"], "model.net.hidden=[64,0]: use a whole number"),
        (
            "evaluate",
            ["ckpt_path=x", "trainer.limit_test_batches=2.5"],
            "use a number from 0 to 1 or a whole",
        ),
        ("generate", ["ckpt_path=x", "n=1e12"], "n=1e12: use a whole number from 1 to 10000 (default 64)"),
        ("export", ["ckpt_path=x", "check.rtol=-1"], "check.rtol=-1: use a number of 0 or more"),
        ("predict", ["top_k=0"], "top_k=0: use a whole number of 1 or more (default 3)"),
        ("embeddings", ["k=inf"], "k=inf: use a whole number of 1 or more (default 10)"),
        ("app", ["port=70000"], "port=70000: use a whole number from 0 to 65535 (default 7860)"),
        ("dream", ["ckpt_path=x", "steps=-1"], "steps=-1: use a whole number of 1 or more (default 200)"),
        # found by the fuzz: a number where a text option's stated values go; a text where options go
        ("app", ["log_level=inf"], "log_level=inf: use one of critical, error, warning, info, debug, trace"),
        ("train", ["model=lenet", "model.optimizer=x"], "set one of them: optimizer.lr=<value>"),
        ("train", ["model=lenet", "model.optimizer.lr=0.1"], "follows optimizer: write optimizer.lr="),
        ("train", ["threads=abc"], "threads=abc: use a whole number from 1 to 1024 or null (default null)"),
    ],
)
def test_one_generic_range_check_serves_every_tool(config: str, args: list[str], expect: str) -> None:
    from dlforge.cli import check_command_line

    assert expect in (check_command_line(config, args) or "")


def test_values_inside_their_ranges_pass() -> None:
    from dlforge.cli import check_command_line

    for config, args in [
        (
            "train",
            ["data.batch_size=1", "data.val_size=0.5", "optimizer.lr=10", "trainer.limit_train_batches=0.5"],
        ),
        ("train", ["data=cifar10", "data.val_size=0", "trainer.devices=-1", "seed=4294967295"]),
        ("generate", ["ckpt_path=x", "n=10000", "temperature=0.01"]),
    ]:
        assert check_command_line(config, args) is None, args


@pytest.mark.parametrize(
    ("text", "intervals", "holds", "refuses"),
    [
        ("a; range 1..65536", "a whole number from 1 to 65536", [1, 65536], [0, 1.0, 65537, float("nan")]),
        ("range (0, inf)", "a number above 0", [1e-9, 1e300], [0, float("inf"), -1]),
        ("x; range 0 or (0, 1) or 1..", "0, a number above 0 and below 1 or a whole number of 1 or more",
         [0, 0.5, 7], [1.5, -1, 1e12]),
        ("range -1 or 0..", "-1 or a whole number of 0 or more", [-1, 0, 3], [-2, 0.5]),
    ],
)  # fmt: skip
def test_a_stated_range_reads_and_says_itself(text: str, intervals: str, holds: list, refuses: list) -> None:
    from dlforge.cli import in_words

    stated = stated_range(text)
    assert in_words([i.words() for i in stated]) == intervals
    assert all(any(i.holds(v) for i in stated) for v in holds)
    assert not any(any(i.holds(v) for i in stated) for v in refuses)
