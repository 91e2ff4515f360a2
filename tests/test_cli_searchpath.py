"""A user's own config folder, added as Hydra documents it (``hydra.searchpath=[file:///path/to/conf]``):
the command line's check before Hydra runs accepts its options as Hydra does, and lists them when a name
is mistyped."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf

from dlforge import CONF_DIR
from tests.conftest import FAST


def user_conf(tmp_path: Path) -> Path:
    """``<tmp>/my_conf/model/tiny_lenet.yaml``: conf/model/lenet.yaml under a new name, made tiny (its
    ``base/training`` defaults still come from conf/, as Hydra merges the folders)."""
    folder = tmp_path / "my_conf"
    (folder / "model").mkdir(parents=True)
    lenet = (Path(CONF_DIR) / "model" / "lenet.yaml").read_text()
    assert "blocks: [[20], [50]]" in lenet and "hidden: [500]" in lenet
    tiny = lenet.replace("blocks: [[20], [50]]", "blocks: [[4], [6]]")
    tiny = tiny.replace("hidden: [500]", "hidden: [12]")
    (folder / "model" / "tiny_lenet.yaml").write_text(tiny)
    return folder


def test_a_model_config_of_the_users_own_folder_trains(run_main, tmp_path: Path) -> None:
    searchpath = f"hydra.searchpath=[file://{user_conf(tmp_path)}]"
    result = run_main(
        "train.py", searchpath, "model=tiny_lenet", "data=mnist", *FAST, "trainer.max_epochs=1", "test=false",
        "hydra.run.dir=outputs/mine",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "outputs" / "mine"
    assert json.loads((run / "metrics.json").read_text())["status"] == "ok"
    model = OmegaConf.load(run / ".hydra" / "config.yaml").model
    assert OmegaConf.to_container(model.net.blocks) == [[4], [6]] and list(model.net.hidden) == [12]
    assert model.monitor == "val/acc"  # conf/model/base/training.yaml, found in conf/


def test_a_mistyped_name_lists_the_users_options_in_one_line(run_main, tmp_path: Path) -> None:
    searchpath = f"hydra.searchpath=[file://{user_conf(tmp_path)}]"
    result = run_main("train.py", searchpath, "model=tiny_lenat", *FAST)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert errors[0].startswith("error: model=tiny_lenat: no such option; choose one of ")
    options = errors[0].split("choose one of ", 1)[1].split(", ")
    assert "tiny_lenet" in options and "lenet" in options  # the user's folder and conf/ alike
    assert not (tmp_path / "outputs").exists()  # refused before Hydra made a run dir

    result = run_main("train.py", "model=tiny_lenet", *FAST)  # without the folder: not an option
    assert result.returncode == 2
    assert "model=tiny_lenet: no such option" in result.stderr and "tiny_lenet," not in result.stderr
