"""The package's shape, measured from git: what a family touches, the top level, the imports between parts.

- **Shared files a family edits.** The commits that brought the audio family (audio CNN + WaveNet:
  data, nets, models, callbacks, then its app panels) and, after issue 29, the text-to-image family
  (StackGAN) are split into the family's own files, its data set's, and the shared files they had to
  edit (tools, their configs, the page, the packages' import lists).
- **Family names in the serving tools.** Identifiers naming a model or served class, in the code (not
  the docstrings) of predict, generate, export, the app and the inference layer, at each revision.
- **Modules in the package's top level**, at each revision.
- **Imports between the package's parts** at HEAD: which part imports which (each edge once per module).

    python -m benchmarks.layout            # writes benchmarks/results/layout.json

Results: benchmarks/results/layout.json.
"""

from __future__ import annotations

import ast
import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "layout.json"
BEFORE = "d690d82"  # the revision issue 29 measured
#: the audio family's commits: data, nets, models, callbacks and the tools' audio paths; its app panels
AUDIO_COMMITS = ("63cf383", "4b9b944")
#: the text-to-image family's commits (issue 30, the first family after the serving layer): its data
#: set and judge, then its nets, model, callbacks, serving, configs and tests
STACKGAN_COMMITS = ("d3de913", "e84210e")
#: the files that are a family's own pieces (anything else a family commit edits is shared)
OWN = (
    "nets/", "models/", "callbacks/", "serving/", "conf/model/", "conf/experiment/", "tests/", "benchmarks/"
)  # fmt: skip
SERVING_TOOLS = ("predict", "generate", "export", "app", "inference")
PARTS = ("data", "nets", "models", "callbacks", "serving", "tools")
#: class names of families (models and their served forms), before and after the serving layer
FAMILY_CLASSES = {
    "AudioClassifier", "WaveNetModel", "Seq2Seq", "GenerativeModule", "ImageClassifier", "TextClassifier",
    "ClassifierModule", "ClassicalClassifier", "GAN", "VAE", "Autoencoder", "Pix2Pix", "Word2Vec",
    "ImageClassifierModel", "TextClassifierModel", "AudioClassifierModel", "GeneratorModel",
    "TranslatorModel", "AudioGeneratorModel", "GeneratorGraph", "TranslatorGraph", "ClassifierGraph",
}  # fmt: skip


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout


def package_files(rev: str) -> list[str]:
    return [p for p in git("ls-tree", "-r", "--name-only", rev, "src/dlforge").split() if p.endswith(".py")]


def top_level_modules(rev: str) -> list[str]:
    return sorted(Path(p).name for p in package_files(rev) if p.count("/") == 2)


def serving_tool_paths(rev: str) -> list[str]:
    files = package_files(rev)
    return [p for p in files if Path(p).stem in SERVING_TOOLS and p.count("/") in (2, 3)]


def family_names_in_code(source: str) -> Counter:
    """Family class names used in the code (names and attributes; docstrings and comments left out)."""
    names: Counter = Counter()
    for node in ast.walk(ast.parse(source)):
        name = getattr(node, "id", None) or getattr(node, "attr", None)
        if isinstance(node, (ast.Name, ast.Attribute)) and name in FAMILY_CLASSES:
            names[name] += 1
        if isinstance(node, ast.alias) and node.name in FAMILY_CLASSES:
            names[node.name] += 1
    return names


def family_names_in_tools(rev: str) -> dict[str, Any]:
    per_file = {}
    for path in serving_tool_paths(rev):
        counts = family_names_in_code(git("show", f"{rev}:{path}"))
        per_file[path.removeprefix("src/dlforge/")] = sum(counts.values())
    return {"per_file": per_file, "total": sum(per_file.values())}


def shared_files_edited(commits: tuple[str, ...]) -> dict[str, Any]:
    """The files the commits changed: the family's own pieces, its data set's, and the shared ones."""
    changed: dict[str, int] = {}
    for commit in commits:
        for line in git("show", "--numstat", "--format=", commit).splitlines():
            added, removed, path = line.split("\t")
            changed[path] = changed.get(path, 0) + int(added) + int(removed)
    data = {p: n for p, n in sorted(changed.items()) if "/data/" in p or p.startswith("conf/data/")}
    shared = {
        path: lines
        for path, lines in sorted(changed.items())
        if not any(part in path for part in OWN) and not path.startswith("docs/") and path not in data
    }
    return {"files": len(changed), "data_files": data, "shared_files": len(shared), "shared": shared}


def part_of(module: str) -> str:
    """``dlforge.models.gan`` -> ``models``; tools (``dlforge.predict``) -> ``tools``; else ``library``."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in PARTS:
        return parts[1]
    if len(parts) > 1 and (REPO / "src" / "dlforge" / "tools" / f"{parts[1]}.py").is_file():
        return "tools"
    return "library"


def imports_between_parts() -> dict[str, dict[str, int]]:
    """part -> imported part -> how many of its modules import that part (HEAD, the working tree)."""
    root = REPO / "src" / "dlforge"
    edges: dict[str, Counter] = {}
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        source_part = relative.parts[0] if len(relative.parts) > 1 else "library"
        package = ".".join(["dlforge", *relative.parts[:-1]])
        seen = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join([*base, module] if module else base)
                # ``from dlforge import report``: the names are the modules
                modules = [f"dlforge.{a.name}" for a in node.names] if module == "dlforge" else [module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            seen.update(part_of(m) for m in modules if m.startswith("dlforge."))
        seen.discard(source_part)
        edges.setdefault(source_part, Counter()).update(seen)
    return {part: dict(sorted(counts.items())) for part, counts in sorted(edges.items())}


def main() -> None:
    head = git("rev-parse", "--short", "HEAD").strip()
    document = {
        "revisions": {"before": BEFORE, "after": head},
        "top_level_modules": {
            "before": len(top_level_modules(BEFORE)),
            "after": len(top_level_modules(head)),
            "after_names": top_level_modules(head),
        },
        "family_names_in_serving_tools": {
            "before": family_names_in_tools(BEFORE),
            "after": family_names_in_tools(head),
        },
        "audio_family_commits": {"commits": list(AUDIO_COMMITS), **shared_files_edited(AUDIO_COMMITS)},
        "stackgan_family_commits": {
            "commits": list(STACKGAN_COMMITS),
            **shared_files_edited(STACKGAN_COMMITS),
        },
        "imports_between_parts": imports_between_parts(),
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps({k: v for k, v in document.items() if k != "imports_between_parts"}, indent=1)[:3000])
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
