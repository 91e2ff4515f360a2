"""``pip install .`` gives a working dlforge: the wheel carries conf/, and every entry point runs from
any directory (the installed copy, not this checkout)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FAST, REPO


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, installed into a folder of its own."""
    build = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(build), str(REPO)], check=True
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
