"""``pip install .`` gives a working dlforge: the wheel carries conf/, and every entry point runs from
any directory (the installed copy, not this checkout)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FAST, REPO


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, installed into a folder of its own."""
    build = tmp_path_factory.mktemp("wheel")
    source = build / "source"  # a copy: building in the checkout would leave build/ behind
    skip = shutil.ignore_patterns("*.egg-info", "__pycache__")
    shutil.copytree(REPO / "src", source / "src", symlinks=True, ignore=skip)  # keeps the conf link
    shutil.copytree(REPO / "conf", source / "conf")
    for name in ("pyproject.toml", "README.md", "train.py"):
        shutil.copy(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(build), str(source)], check=True
    )
    (wheel,) = build.glob("dlforge-*.whl")
    target = build / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    return target


def run(target: Path, cwd: Path, *argv: str, data_dir: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(target), "DLFORGE_CACHE": str(cwd / "cache")}
    if data_dir is not None:
        env["DATA_DIR"] = str(data_dir)
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_installed_copy_carries_its_config(installed: Path, tmp_path: Path) -> None:
    code = "import dlforge, os; print(dlforge.__file__); print(*sorted(os.listdir(dlforge.CONF_DIR)))"
    result = run(installed, tmp_path, sys.executable, "-c", code)
    where, listing = result.stdout.splitlines()
    assert where.startswith(str(installed)) and not Path(installed / "dlforge" / "conf").is_symlink()
    assert {"train.yaml", "model", "data", "trainer"} <= set(listing.split())


def test_every_entry_point_runs_from_any_directory(installed: Path, tmp_path: Path, data_dir: Path) -> None:
    script = str(installed / "bin" / "dlforge")
    result = run(installed, tmp_path, sys.executable, script, "--help")
    assert result.returncode == 0 and "evaluate" in result.stdout and "generate" in result.stdout
    result = run(installed, tmp_path, sys.executable, script, "generate", "--help")
    assert result.returncode == 0 and "ckpt_path=???" in result.stdout and "model=" not in result.stdout
    result = run(installed, tmp_path, sys.executable, "-m", "dlforge.evaluate")
    assert result.returncode == 2 and result.stderr.startswith("error: ckpt_path is required")
    result = run(
        installed,
        tmp_path,
        sys.executable,
        script,
        "train",
        "model=lenet",
        *FAST,
        "hydra.run.dir=run",
        data_dir=data_dir,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["kind"] == "image_classifier" and summary["metrics"]["test/acc"] is not None
    ckpt = summary["last_checkpoint"]
    result = run(
        installed,
        tmp_path,
        sys.executable,
        "-m",
        "dlforge.evaluate",
        f"ckpt_path={ckpt}",
        "trainer=cpu",
        "hydra.run.dir=eval",
        data_dir=data_dir,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["tool"] == "evaluate"


def test_every_tools_help_shows_its_own_options_each_described() -> None:
    from dlforge.__main__ import COMMANDS
    from dlforge.usage import options, tool_help

    for name in COMMANDS:
        if name == "report":  # argparse: python -m dlforge.report --help
            continue
        text = tool_help(name)
        assert text.startswith("usage: ") and "options (key=value" in text, name
        keys = options(Path(f"{REPO}/conf/{name}.yaml").read_text().splitlines())
        assert [key for key, _, description in keys if not description] == [], name
        if name not in ("train", "crossval"):
            assert "model=" not in text and "experiment=" not in text, name  # only its own options
    train = tool_help("train")
    assert "  model=" in train and "* dcgan" in train and "lenet" in train and "seed=42" in train


def test_help_is_instant(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout.startswith("usage: python train.py")
    modules = subprocess.run(
        [sys.executable, "-X", "importtime", str(REPO / "train.py"), "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert " torch" not in modules.stderr and " hydra" not in modules.stderr  # no heavy imports for help


def test_the_readmes_commands_compose() -> None:
    """Every ``python train.py`` / ``python -m dlforge.<tool>`` line of the README composes as typed
    (unknown keys, options and types fail here before a user meets them)."""
    import re
    import shlex

    from dlforge.cli import check_command_line

    readme = (REPO / "README.md").read_text().replace("\\\n", " ")  # continued lines
    commands = re.findall(r"^(?:python train\.py|python -m dlforge\.(\w+))([^\n#]*)", readme, re.M)
    checked = 0
    for tool, rest in commands:
        if tool == "report" or "<" in rest or "$" in rest or "..." in rest:
            continue  # placeholders for a user's own paths
        problem = check_command_line(tool or "train", shlex.split(rest))
        assert problem is None, f"{tool or 'train'} {rest}: {problem}"
        checked += 1
    assert checked >= 25
