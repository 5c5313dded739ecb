"""The README's Quick start, command by command, in a fresh copy of the project on a tiny params profile.

The copy uses this interpreter's environment through `BIN=` (making a venv would cost minutes and the network);
`source .venv/bin/activate` is what activation does: that environment's tools first on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from conftest import ROOT, run, study_env, tiny_params, tiny_weights, trained

BIN = Path(sys.executable).parent
PROJECT = ["Makefile", "README.md", "dvc.yaml", "pyproject.toml", ".gitignore", ".dvcignore", "stages"]
PROJECT += ["pretraining_gap"]


def quick_start() -> list[str]:
    """The commands of the README's first code block under "## Quick start", comments cut."""
    section = (ROOT / "README.md").read_text().split("## Quick start", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def fresh_copy(path: Path, params: dict) -> Path:
    """The project's files in a new git repository (as a clone has them), with `params` as its params.yaml."""
    path.mkdir()
    for name in PROJECT:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, path / name)
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], path)
    run(["dvc", "init", "-q"], path)
    shutil.copytree(ROOT / ".dvc/plots", path / ".dvc/plots")
    shutil.copy(ROOT / ".dvc/config", path / ".dvc/config")
    run(["git", "add", "-A"], path)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "fresh copy"], path)
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_ui(repo: Path, env: dict) -> str:
    """`make ui` until it answers: returns what it printed; the server is stopped after."""
    port = free_port()
    ui = subprocess.Popen(
        ["make", "ui", f"BIN={BIN}", f"PORT={port}"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        printed = "".join(ui.stdout.readline() for _ in range(3))
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                    assert page.status == 200
                return printed
            except OSError:
                assert ui.poll() is None and time.monotonic() < deadline, (
                    f"mlflow ui did not answer: {printed}"
                )
                time.sleep(1)
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(30)


def test_the_quick_start_works_verbatim_in_a_fresh_copy(tmp_path):
    params = tiny_params(tiny_weights(tmp_path / "tiny.safetensors"))
    params["study"].update(regimes=["scratch", "finetune"], sizes=[1], seeds=[1])
    repo = fresh_copy(tmp_path / "repo", params)
    env = study_env(repo)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if Path(p) != BIN)  # not activated
    commands = quick_start()
    assert commands == [
        "make study",
        "source .venv/bin/activate",
        "dvc repro",
        "dvc metrics diff",
        "dvc plots show",
        "make ui",
    ], "the README's Quick start changed: drive the new commands here"

    done = run(["make", "study", f"BIN={BIN}"], repo, env=env)
    assert {cell[2] for cell in trained(done.stderr)} == {"scratch", "finetune"}
    assert "workflowType=machine_learning" in done.stderr  # the report stage's link to the runs

    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"  # source .venv/bin/activate
    params["study"]["sizes"] = [1, 2]  # an edit of params.yaml
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    grown = run(["dvc", "repro"], repo, env=env)
    assert sorted(trained(grown.stderr)) == [
        ("digits", "tiny", arm, "2", "1") for arm in ("finetune", "scratch")
    ]

    assert "metrics/summary.json" in run(["dvc", "metrics", "diff"], repo, env=env).stdout
    run(["dvc", "plots", "show"], repo, env=env)
    assert "vegaEmbed(" in (repo / "dvc_plots/index.html").read_text()

    printed = serve_ui(repo, env)
    assert re.search(
        r"http://127\.0\.0\.1:\d+/#/experiments/\d+/runs\?workflowType=machine_learning", printed
    )
