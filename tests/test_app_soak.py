"""A short soak of the web app as ``benchmarks/app_soak.py`` runs it: a real server on 127.0.0.1, 200
mixed valid and malformed requests from 8 concurrent clients; no 5xx, every answer the right one, and
the server's memory bounded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app_fixtures import tiny_checkpoints
from tests.conftest import REPO


def test_the_app_takes_200_mixed_requests_from_8_clients(
    data_dir: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    models = tiny_checkpoints(data_dir, tmp_path_factory)
    out = tmp_path / "soak.json"
    command = [sys.executable, "-m", "benchmarks.app_soak", *(f"{k}={v}" for k, v in models.items())]
    result = subprocess.run(
        [*command, "-n", "200", "--clients", "8", "--warmup", "4", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    soak = json.loads(out.read_text())
    assert soak["url"].startswith("http://127.0.0.1:") and sorted(soak["panels"]) == sorted(models)
    assert soak["requests"] == 200 and soak["clients"] == 8
    assert soak["panels"]["digit"].startswith("image_classifier on mnist")
    assert (soak["server_errors_5xx"], soak["no_answer"]) == (0, 0)
    # a valid upload is answered 200, a malformed one 4xx: none slips through or is mistaken
    assert (soak["valid_not_200"], soak["malformed_not_4xx"]) == (0, 0)
    assert len(soak["by_kind"]) == 15 and sum(map(sum, (k.values() for k in soak["by_kind"].values()))) == 200
    assert soak["by_kind"]["over_limit"].keys() <= {"413"} and soak["by_kind"]["bomb"].keys() <= {"413"}
    assert soak["rss_growth_mb"] < 50, soak["growth_mb_by_requests"]
    assert 0 < soak["latency_ms"]["p50"] <= soak["latency_ms"]["p99"] <= soak["latency_ms"]["max"]
