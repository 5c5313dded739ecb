"""Cells as Ray tasks on a real local Ray: the same results as the local workers, a killed worker retried, an
interrupted study resumed."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import make_study_repo, run, study_env, tiny_params, tiny_weights, trained
from study_repo import write_params

CELLS = Path("results/cells/digits/tiny")
TRAIN = "train@digits-tiny"  # and what it needs: the analysis stages are tested elsewhere


def accuracies(repo: Path) -> dict[str, float]:
    return {
        str(f.relative_to(repo / CELLS)): json.loads(f.read_text())["test_accuracy"]
        for f in sorted((repo / CELLS).rglob("*.json"))
    }


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Path, dict]:
    """A tiny study whose data stages have run, for each test to copy."""
    base = tmp_path_factory.mktemp("cluster")
    params = tiny_params(tiny_weights(base / "tiny.safetensors"))
    params["study"].update(regimes=["scratch", "linear"])
    repo = make_study_repo(base / "repo", params)
    run(["dvc", "repro", "--glob", "features@*"], repo)
    return repo, params


def copy_with(prepared: tuple[Path, dict], dest: Path, **execution) -> Path:
    import shutil

    repo, params = prepared
    shutil.copytree(repo, dest, symlinks=True)
    write_params(dest / "params.yaml", {**params, "execution": {"backend": "ray", **execution}})
    return dest


def test_ray_gives_the_local_backends_results(prepared, tmp_path):
    local = tmp_path / "local"
    import shutil

    shutil.copytree(prepared[0], local, symlinks=True)
    params = {**prepared[1], "study": {**prepared[1]["study"], "sizes": [1]}}  # 4 cells: 2 regimes, 2 seeds
    write_params(local / "params.yaml", params)
    run(["dvc", "repro", TRAIN], local)
    on_ray = copy_with((prepared[0], params), tmp_path / "ray")
    done = run(["dvc", "repro", TRAIN], on_ray)
    assert "Ray: a local instance" in done.stderr
    assert accuracies(on_ray) == accuracies(local) and len(accuracies(local)) == 4


def ray_workers_training() -> list[int]:
    """Process ids of Ray workers running a cell (Ray names a worker after its task: `ray::_task`)."""
    listed = subprocess.run(["pgrep", "-f", "ray::_task"], capture_output=True, text=True).stdout
    return [int(pid) for pid in listed.split()]


def start(repo: Path, log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            ["dvc", "repro", TRAIN],
            cwd=repo,
            env=study_env(repo),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def wait_for(condition, study: subprocess.Popen, log: Path, what: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert study.poll() is None, f"dvc repro ended before {what}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no {what} in {seconds} s:\n{log.read_text()}"
        time.sleep(0.2)


def test_a_worker_killed_mid_cell_is_retried_and_the_study_completes(prepared, tmp_path):
    repo = copy_with(prepared, tmp_path / "repo", retries=2)
    params = json.loads(json.dumps(prepared[1]))
    params["training"].update(min_steps=100, max_steps=100)  # seconds per cell: time to kill one mid-way
    write_params(repo / "params.yaml", {**params, "execution": {"backend": "ray", "retries": 2}})
    log = tmp_path / "repro.log"
    study = start(repo, log)
    try:
        wait_for(ray_workers_training, study, log, "Ray worker training a cell")
        os.kill(ray_workers_training()[0], signal.SIGKILL)
        assert study.wait(timeout=600) == 0, log.read_text()
    finally:
        if study.poll() is None:
            os.killpg(study.pid, signal.SIGKILL)
    results = [json.loads(f.read_text()) for f in (repo / CELLS).rglob("*.json")]
    assert len(results) == 8 and all(r["status"] == "finished" for r in results)


def test_an_interrupted_study_on_ray_resumes_with_only_the_missing_cells(prepared, tmp_path):
    repo = copy_with(prepared, tmp_path / "repo")
    params = json.loads(json.dumps(prepared[1]))
    params["training"].update(min_steps=100, max_steps=100)
    params["study"]["regimes"] = ["scratch"]
    write_params(repo / "params.yaml", {**params, "execution": {"backend": "ray"}})
    log = tmp_path / "repro.log"
    study = start(repo, log)
    try:
        wait_for(lambda: any((repo / CELLS).rglob("*.json")), study, log, "finished cell")
        while study.poll() is None:
            os.killpg(study.pid, signal.SIGINT)  # Ctrl-C, repeated as a user would
            time.sleep(0.5)
    finally:
        if study.poll() is None:
            os.killpg(study.pid, signal.SIGKILL)
    kept = accuracies(repo)
    assert 1 <= len(kept) < 4
    deadline = time.monotonic() + 30  # Ray's processes take a moment to end
    while ray_workers_training() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not ray_workers_training(), "Ctrl-C left Ray tasks running"
    resumed = run(["dvc", "repro", TRAIN], repo)
    retrained = [cell for cell in trained(resumed.stderr) if cell[:3] == ("digits", "tiny", "scratch")]
    assert len(retrained) == 4 - len(kept)
    final = accuracies(repo)
    assert len(final) == 4 and all(final[name] == kept[name] for name in kept)


DOCS = Path(__file__).resolve().parents[1] / "docs" / "cluster.md"


def docs_commands() -> dict[str, str]:
    """docs/cluster.md's command block, in its parts: {"head": ..., "worker": ..., "driver": ...}, each the lines
    under its `# on the head`, `# on each worker machine`, `# on the head, in the study's folder` comment."""
    block = re.search(r"```sh\n(.*?)```", DOCS.read_text(), re.S).group(1)
    parts = [p.strip() for p in re.split(r"^# .*$", block, flags=re.M) if p.strip()]
    assert len(parts) == 3, block
    return dict(zip(("head", "worker", "driver"), parts))


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def end_processes_under(folder: Path) -> None:
    """SIGKILL this user's processes whose command line names `folder` (the nodes' Ray processes all name their
    temp dir): `ray stop` would stop every Ray on the machine, other people's too."""
    listed = subprocess.run(["pgrep", "-f", str(folder)], capture_output=True, text=True).stdout.split()
    for pid in map(int, listed):
        if pid != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow  # two Ray nodes start (~20 s) and a tiny study runs through dvc repro
def test_a_two_node_cluster_joined_by_token(prepared, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    gcs, dashboard, head_agent, worker_agent = free_ports(4)
    # the token file is the test's own (~/.ray/auth_token in HOME); `ray` is this interpreter's, as `make` puts it
    env = {**os.environ, "HOME": str(home), "PATH": study_env(tmp_path)["PATH"]}
    one_machine = " --num-cpus=1 --disable-usage-stats"
    commands = docs_commands()
    head = (
        commands["head"]
        .replace("6379", str(gcs))
        .replace(
            "ray start --head",
            f"ray start --head --temp-dir={temp} --dashboard-port={dashboard} "
            f"--dashboard-agent-listen-port={head_agent}",
        )
    )
    worker = (
        commands["worker"]
        .replace("<head>:6379", f"127.0.0.1:{gcs}")
        .replace("ray start", f"ray start --dashboard-agent-listen-port={worker_agent}")
    )
    repo = copy_with(prepared, tmp_path / "repo", address=f"127.0.0.1:{gcs}")
    params = json.loads(json.dumps(prepared[1]))
    params["study"].update(sizes=[1])  # 4 cells: scratch and linear, 2 seeds
    write_params(
        repo / "params.yaml", {**params, "execution": {"backend": "ray", "address": f"127.0.0.1:{gcs}"}}
    )
    try:
        for script in (head, worker):
            done = subprocess.run(
                ["bash", "-euc", script.replace("ray start", "ray start" + one_machine)],
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert done.returncode == 0, done.stdout + done.stderr
        assert (home / ".ray" / "auth_token").exists()
        driver = subprocess.run(
            ["bash", "-euc", commands["driver"]],
            cwd=repo,
            env={**study_env(repo), "HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert driver.returncode == 0, driver.stdout + driver.stderr
    finally:
        end_processes_under(temp)
        shutil.rmtree(temp, ignore_errors=True)
    log = driver.stderr
    assert "2 nodes, 2 CPUs" in log, log
    nodes = set(re.findall(r"ran on node (\w+)", log))
    assert len(nodes) == 2, log
    assert len(accuracies(repo)) == 4
