"""Every repository path, make target and command that README.md and docs/*.md name exists.

Read from a page: paths from inline code (a token with a `/`, or ending in a file type below) and from relative
link targets; `make <target>`, `python -m <module>` and `pretraining-gap <command>` from inline code and fenced
blocks (comments cut). A path counts as existing when the repository has it, `dvc.yaml` declares it (or a folder
above it) as an output, or git ignores it (what the tools make: `.venv`, `mlflow.db`, `dvc_plots`); `<name>`
and `*` stand for one path component. CHANGELOG.md is history, so it may name paths that are gone.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from pretraining_gap import commands

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FILE_TYPES = (".py", ".yaml", ".md", ".json", ".csv", ".html", ".toml", ".lock")

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
SPAN = re.compile(r"`([^`\n]+(?:\n[^`\n]+)?)`")  # inline code, which may wrap onto a second line
LINK = re.compile(r"\]\(([^)\s]+)\)")
MAKE = re.compile(r"(?<![\w-])make\s+([A-Za-z][\w-]*)(?![\w=-])")
MODULE = re.compile(r"(?<![\w-])python3?\s+-m\s+([A-Za-z_][\w.]*(?:<[^>]*>)?)")
COMMAND = re.compile(r"(?<![\w-])pretraining-gap\s+([a-z][\w-]*)")


@dataclass
class Named:
    """What a page names: repository paths (relative to the root), link targets (relative to the page)."""

    paths: set[str] = field(default_factory=set)
    links: set[str] = field(default_factory=set)
    targets: set[str] = field(default_factory=set)
    modules: set[str] = field(default_factory=set)
    commands: set[str] = field(default_factory=set)


def looks_like_path(token: str) -> bool:
    """A repository path, not a URL, an absolute path, an option, an assignment or a count like `5/class`."""
    if not token or "://" in token or "=" in token or not re.match(r"[A-Za-z_.<]", token):
        return False
    return "/" in token or token.endswith(FILE_TYPES)


def named(text: str) -> Named:
    """The paths, links, make targets, modules and subcommands that a Markdown page names."""
    found = Named()
    fenced = [line.split("#")[0] for block in FENCE.findall(text) for line in block.splitlines()]
    prose = FENCE.sub("", text)
    spans = SPAN.findall(prose)
    # a pytest node id names its file: tests/test_x.py::test_y
    for token in (t.strip("\"'(),;:[]").split("::")[0] for span in spans for t in span.split()):
        if looks_like_path(token):
            found.paths.add(token)
    found.links = {link.split("#")[0] for link in LINK.findall(prose) if not re.match(r"[a-z]+:|#", link)}
    for code in [*spans, *fenced]:
        found.targets.update(MAKE.findall(code))
        found.modules.update(MODULE.findall(code))
        found.commands.update(COMMAND.findall(code))
    return found


def outputs() -> list[str]:
    """The outputs and metrics that dvc.yaml declares, `${...}` as `*`."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].values()
    declared = [
        next(iter(entry)) if isinstance(entry, dict) else entry
        for stage in stages
        for key in ("outs", "metrics", "plots")
        for entry in stage.get(key, [])
    ]
    return [re.sub(r"\$\{[^}]*\}", "*", path).rstrip("/") for path in declared]


def same_components(doc: list[str], declared: list[str]) -> bool:
    return all(fnmatch.fnmatch(a, b) or fnmatch.fnmatch(b, a) for a, b in zip(doc, declared))


def ignored_by_git(paths: set[str]) -> set[str]:
    """Those of `paths` that .gitignore covers (placeholders filled in)."""
    if not paths:
        return set()
    filled = {re.sub(r"<[^>]*>|\*", "x", path): path for path in paths}
    answer = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        cwd=ROOT,
        input="\n".join(filled),
        capture_output=True,
        text=True,
    )
    return {filled[line] for line in answer.stdout.splitlines() if line in filled}


def missing_paths(paths: set[str]) -> set[str]:
    """Those of `paths` that neither the repository, dvc.yaml's outputs nor .gitignore account for."""
    declared = [out.split("/") for out in outputs()]
    missing = set()
    for path in paths:
        pattern = re.sub(r"<[^>]*>", "*", path).rstrip("/")
        if any(ROOT.glob(pattern)) if "*" in pattern else (ROOT / pattern).exists():
            continue
        if not any(same_components(pattern.split("/"), out) for out in declared):
            missing.add(path)
    return missing - ignored_by_git(missing)


def make_targets() -> set[str]:
    rules = re.findall(r"^([^\s:#=$][^:=$]*?)\s*::?(?!=)", (ROOT / "Makefile").read_text(), re.M)
    return {target for rule in rules for target in rule.split()}


def importable(module: str) -> bool:
    """Whether `module` can be imported from the root (`benchmarks.<name>`: whether the package can)."""
    module = re.sub(r"\.<[^>]*>$", "", module)
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def broken_links(links: set[str], page_dir: Path) -> set[str]:
    """Those of `links` (relative to `page_dir`) that lead outside the repository or to nothing in it."""
    inside = {}
    for link in links:
        target = (page_dir / link).resolve()
        inside[link] = target.relative_to(ROOT).as_posix() if target.is_relative_to(ROOT) else None
    missing = missing_paths({path for path in inside.values() if path})
    return {link for link, path in inside.items() if path is None or path in missing}


def problems(text: str, page_dir: Path = ROOT) -> list[str]:
    """One line per path, link, make target or module that `text` names and the repository lacks."""
    found = named(text)
    return sorted(
        [f"path `{path}` does not exist" for path in missing_paths(found.paths)]
        + [f"link ({link}) leads nowhere" for link in broken_links(found.links, page_dir)]
        + [f"`make {target}`: no such target in the Makefile" for target in found.targets - make_targets()]
        + [f"`python -m {module}`: no such module" for module in found.modules if not importable(module)]
    )


SAMPLE = """Run `make study` or `make nosuchtarget`, then read `reports/index.html` and `pretraining_gap/nowhere.py`.
Cells live in `results/cells/<dataset>/<backbone>/`; `finetune · 5/class` and `PORT=5000` are no paths, nor is
`http://127.0.0.1:5000/#/x`. See [the choices](docs/choices.md#protocol), [a lost page](docs/lost.md),
`python -m pretraining_gap.nosuchmodule` and `python -m pretraining_gap.<name>`; `pretraining-gap plan` wraps
`.venv/bin/dvc
repro` over a line.
```
make plots          # then make believe, a comment
python -m pretraining_gap.config
```
"""


def test_the_extractor_reads_inline_code_links_and_fenced_commands():
    found = named(SAMPLE)
    assert found.paths == {
        "reports/index.html",
        "pretraining_gap/nowhere.py",
        "results/cells/<dataset>/<backbone>/",
        ".venv/bin/dvc",
    }
    assert found.links == {"docs/choices.md", "docs/lost.md"}
    assert found.targets == {"study", "nosuchtarget", "plots"}
    assert found.modules == {
        "pretraining_gap.nosuchmodule",
        "pretraining_gap.<name>",
        "pretraining_gap.config",
    }
    assert found.commands == {"plan"}


def test_a_page_that_names_what_does_not_exist_fails():
    assert problems(SAMPLE) == [
        "`make nosuchtarget`: no such target in the Makefile",
        "`python -m pretraining_gap.nosuchmodule`: no such module",
        "link (docs/lost.md) leads nowhere",
        "path `pretraining_gap/nowhere.py` does not exist",
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_path_target_and_module_the_docs_name_exists(page):
    assert problems(page.read_text(), page.parent) == [], f"fix {page.relative_to(ROOT)} or the repository"


def test_every_pretraining_gap_command_the_docs_name_exists():
    declared = set(commands.COMMANDS)
    for page in PAGES:
        unknown = named(page.read_text()).commands - declared
        assert not unknown, (
            f"{page.relative_to(ROOT)} names `pretraining-gap {sorted(unknown)}`; it has {declared}"
        )
