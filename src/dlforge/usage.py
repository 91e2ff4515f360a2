"""``--help`` for every tool, read from its config file: the examples at its top, its config groups and
options with their defaults, each described by its YAML comment. Standard library only, so help is
instant (no torch, no Hydra composition)."""

from __future__ import annotations

import re
from pathlib import Path

from dlforge import CONF_DIR

KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w]*):(?P<value>[^#]*?)\s*(?:#\s?(?P<comment>.*))?$")
HIDDEN_GROUPS = {"hydra", "paths", "_self_"}
HIDDEN_KEYS = {"defaults", "hydra", "paths", "callbacks"}


def command(config_name: str) -> str:
    return "python train.py" if config_name == "train" else f"python -m dlforge.{config_name}"


def header(lines: list[str]) -> list[str]:
    """The comment lines at the top of a config file (usage and examples)."""
    out = []
    for line in lines:
        if not line.startswith("#"):
            break
        if not line.startswith("# @package"):
            out.append(line[2:] if line.startswith("# ") else line[1:])
    return out


def one_line(text: str, width: int = 100) -> str:
    """The first sentence of ``text``, at most ``width`` characters."""
    text = " ".join(text.split())
    end = text.find(". ")
    text = text[: end + 1] if end >= 0 else text
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


def describe(path: Path) -> str:
    """A config option's description: the first sentence of its file's opening comment."""
    return one_line(" ".join(header(path.read_text().splitlines())))


def groups(lines: list[str]) -> list[tuple[str, str | None]]:
    """The ``defaults`` list's config groups and their default choices."""
    found, inside = [], False
    for line in lines:
        if line.startswith("defaults:"):
            inside = True
            continue
        if inside:
            match = re.match(r"^\s+-\s+(?:override\s+)?/?([\w/]+)(?:@[\w.]+)?(?::\s*(\S+))?", line)
            if not match:
                if line.strip() and not line.lstrip().startswith("#"):
                    break
                continue
            group, choice = match.groups()
            if group.split("/")[0] not in HIDDEN_GROUPS:
                found.append((group, None if choice in (None, "null") else choice))
    return found


def options(lines: list[str]) -> list[tuple[str, str, str]]:
    """``(dotted key, default, description)`` of every scalar option, from the file's own lines."""
    found: list[tuple[str, str, str]] = []
    stack: list[tuple[int, str]] = []
    above: list[str] = []
    skip_indent: int | None = None
    for line in lines:
        if not line.strip():
            above = []
            continue
        if line.lstrip().startswith("#"):
            above.append(line.strip().lstrip("#").strip())
            continue
        match = KEY.match(line)
        if not match:  # list items and continuation lines
            above = []
            continue
        indent, key = len(match["indent"]), match["key"]
        if skip_indent is not None and indent > skip_indent:
            continue
        skip_indent = None
        while stack and stack[-1][0] >= indent:
            stack.pop()
        value = match["value"].strip()
        if not stack and key in HIDDEN_KEYS:
            skip_indent = indent
            above = []
            continue
        dotted = ".".join([*(k for _, k in stack), key])
        description = one_line(match["comment"] or " ".join(above))
        above = []
        if value:
            found.append((dotted, value, description))
        else:
            stack.append((indent, key))
            if description:
                found.append((dotted, "", description))
    return found


def inherited(lines: list[str], conf: Path) -> list[str]:
    """The lines of the top-level configs a config builds on (``defaults: [train, _self_]``)."""
    bases = [g for g, c in groups(lines) if c is None and (conf / f"{g}.yaml").is_file()]
    return [line for base in bases for line in (conf / f"{base}.yaml").read_text().splitlines()]


def tool_help(config_name: str, conf_dir: str | Path = CONF_DIR) -> str:
    """The ``--help`` text of ``conf/<config_name>.yaml``."""
    conf = Path(conf_dir)
    own = (conf / f"{config_name}.yaml").read_text().splitlines()
    out = [f"usage: {command(config_name)} [group=option ...] [key=value ...]", ""]
    out += header(own)
    lines = inherited(own, conf) + own
    chosen = [(g, c) for g, c in groups(lines) if (conf / g).is_dir()]
    if chosen:
        out += ["", "config groups (group=option; the default is marked *):"]
        for group, default in chosen:
            folder = conf / group
            names = sorted(p.stem for p in folder.glob("*.yaml"))
            out.append(f"  {group}=" + ("" if default else "   (none by default)"))
            for name in names:
                mark = "*" if name == default else " "
                out.append(f"    {mark} {name:<34} {describe(folder / f'{name}.yaml')}".rstrip())
    keys = options(lines)
    if keys:
        out += ["", "options (key=value; defaults shown; ??? must be given):"]
        width = min(34, max(len(f"{k}={v}") for k, v, _ in keys))
        for key, value, description in keys:
            left = f"{key}={value}" if value else f"{key}."
            out.append(f"  {left:<{width}}  {description}".rstrip())
    out += [
        "",
        "Every key of the composed config can be overridden (model.net.hidden=[64], trainer.max_epochs=5);",
        f"{command(config_name)} [overrides] --cfg job prints it. HYDRA_FULL_ERROR=1 shows tracebacks.",
    ]
    return "\n".join(out) + "\n"
