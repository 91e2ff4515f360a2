"""A real table through data=csv_table: scikit-learn's bundled breast-cancer set (569 tumours, 30 numeric
features, 212 malignant), the tabular MLP and the baselines on one split.

    python -m benchmarks.tabular

Writes the set as a CSV (``outputs/tabular/breast_cancer.csv``: it ships inside scikit-learn, no
download), runs ``python train.py data=csv_table data.path=... data.label_column=diagnosis
model=<model>`` for each case below, and writes ``benchmarks/results/tabular_breast_cancer.json``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.common import table, write

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "outputs" / "tabular"
MLP = ["data.batch_size=32", "trainer.max_epochs=30", "model.monitor=val/pr_auc"]
CASES: dict[str, list[str]] = {
    "tabular_mlp": ["model=tabular_mlp", *MLP],
    "tabular_mlp_unweighted": ["model=tabular_mlp", *MLP, "data.class_weights=none"],
    "logistic_regression": ["model=logistic_regression"],
    "random_forest": ["model=random_forest"],
    "gradient_boosting": ["model=gradient_boosting"],
    "decision_tree": ["model=decision_tree"],
}


def write_breast_cancer(path: Path) -> Path:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*(name.replace(" ", "_") for name in data.feature_names), "diagnosis"])
        for row, target in zip(data.data, data.target, strict=True):
            writer.writerow([*(f"{v:.6g}" for v in row), data.target_names[target]])
    return path


def main() -> None:
    path = write_breast_cancer(OUT / "breast_cancer.csv")
    rows = []
    for name, overrides in CASES.items():
        run_dir = OUT / name
        command = [
            sys.executable,
            str(REPO / "train.py"),
            "data=csv_table",
            f"data.path={path}",
            "data.label_column=diagnosis",
            *overrides,
            "trainer=cpu",
            f"hydra.run.dir={run_dir}",
        ]
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
        record = json.loads((run_dir / "metrics.json").read_text())
        with open(run_dir / "confusion_matrix.csv") as f:
            matrix = [[int(v) for v in row[1:]] for row in list(csv.reader(f))[1:]]
        metrics = record["metrics"]
        rows.append(
            {
                "case": name,
                "command": " ".join(["python", "train.py", *command[2:-1]]).replace(str(REPO) + "/", ""),
                "test_acc": metrics["test/acc"],
                "test_roc_auc": metrics["test/roc_auc"],
                "test_pr_auc": metrics["test/pr_auc"],
                "malignant_recall": matrix[1][1] / sum(matrix[1]),
                "confusion_matrix": matrix,
                "wall_time_s": record["wall_time_s"],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    write("tabular_breast_cancer", {"data": "sklearn.datasets.load_breast_cancer as CSV", "runs": rows})
    aucs = ("test_roc_auc", "test_pr_auc")
    header = ["case", "test acc %", "ROC-AUC", "PR-AUC", "malignant recall %", "wall s"]
    cells = [
        [
            r["case"],
            100 * r["test_acc"],
            *(f"{r[k]:.4f}" for k in aucs),
            100 * r["malignant_recall"],
            r["wall_time_s"],
        ]
        for r in rows
    ]
    print(table(header, cells))


if __name__ == "__main__":
    main()
