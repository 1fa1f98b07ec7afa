"""The core never imports Textual: `sptui batch`, the worker and every kind run without it, also in an
environment where the app's packages (Textual, textual-plotext, plotext: the `app` extra) are not installed."""

import ast
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.helpers import tms_job

PACKAGE = Path(__file__).resolve().parent.parent / "sptui"
APP_ONLY = ("textual", "textual_plotext", "plotext")


def test_no_core_module_imports_textual():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "tui" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(PACKAGE)}: {n}" for n in names if n.split(".")[0] in APP_ONLY]
    assert not offenders, offenders


def test_importing_the_whole_core_loads_no_textual():
    # module names from the files (pkgutil.walk_packages would import sptui.tui itself to walk into it)
    modules = sorted(
        ".".join(("sptui",) + path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        for path in PACKAGE.rglob("*.py")
        if "tui" not in path.relative_to(PACKAGE).parts and path.name != "__main__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {APP_ONLY!r})\n"
        "print(bad[:5]); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


NOT_INSTALLED = f"""\
import sys


class AppPackagesNotInstalled:
    \"\"\"Imports of {APP_ONLY} fail as they do where those packages are not installed.\"\"\"

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {APP_ONLY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, AppPackagesNotInstalled())
"""


@pytest.fixture(scope="module")
def headless(tmp_path_factory):
    """A fresh venv that sees this project's packages (torch, numpy, sptui from this checkout, ...) through
    a .pth file, but in which Textual, textual-plotext and plotext cannot be imported."""
    base = tmp_path_factory.mktemp("headless")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.check_output(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    ours = sysconfig.get_paths()["purelib"]  # where this interpreter finds the project's packages
    (purelib / "app_packages_not_installed.py").write_text(NOT_INSTALLED)
    (purelib / "aa_no_app.pth").write_text("import app_packages_not_installed\n")
    (purelib / "zz_project.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    root = base / "artifacts"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(SPTUI_ARTIFACTS=str(root), SPTUI_TORCH_THREADS="1")

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        # cwd outside the checkout: sptui comes from the venv's site set-up, not from the working directory
        return subprocess.run([str(python), *args], capture_output=True, text=True, env=env, cwd=base, timeout=timeout)

    job = base / "tiny.toml"
    job.write_text(tms_job("tiny", steps=60, log_points=3, checkpoint_every=30))
    return run, job


def test_the_headless_environment_really_lacks_the_app_packages(headless):
    run, _ = headless
    for name in APP_ONLY:
        result = run("-c", f"import {name}")
        assert result.returncode == 1 and f"No module named '{name}'" in result.stderr, result.stderr
    result = run("-c", "import torch, sptui, sptui.cli; print(sptui.__file__)")
    assert result.returncode == 0 and str(PACKAGE) in result.stdout, result.stderr


def test_queue_commands_work_and_the_app_says_one_line_without_textual(headless):
    run, job = headless
    assert run("-m", "sptui", "validate", str(job)).returncode == 0
    submitted = run("-m", "sptui", "submit", str(job), "--json")
    assert submitted.returncode == 0, submitted.stderr
    (job_id,) = [j["id"] for j in json.loads(submitted.stdout)]
    listed = run("-m", "sptui", "ls", "--json")
    assert listed.returncode == 0 and [j["state"] for j in json.loads(listed.stdout)] == ["queued"], listed.stderr
    shown = run("-m", "sptui", "show", str(job_id), "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["state"] == "queued", shown.stderr
    for modules in ("sptui.batch", "sptui.worker", "sptui.runner", "sptui.kinds.tms"):
        assert run("-c", f"import {modules}").returncode == 0

    app = run("-m", "sptui")
    assert app.returncode == 2 and app.stdout == ""
    assert len(app.stderr.strip().splitlines()) == 1, app.stderr
    assert "Textual" in app.stderr and "sptui[app]" in app.stderr


@pytest.mark.slow
def test_worker_and_batch_run_jobs_without_textual(headless):
    run, job = headless
    assert run("-m", "sptui", "submit", str(job), "--force").returncode == 0
    worker = run("-m", "sptui", "worker", "--once", "--device", "cpu")
    assert worker.returncode == 0, worker.stdout + worker.stderr
    listed = json.loads(run("-m", "sptui", "ls", "--json").stdout)
    assert listed and all(j["state"] == "succeeded" for j in listed), listed
    batch = run("-m", "sptui", "batch", str(job), "--json")
    assert batch.returncode == 0, batch.stderr
    assert [r["state"] for r in json.loads(batch.stdout)] == ["succeeded"]


def test_the_app_extra_names_exactly_the_app_packages_with_the_default_pins():
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    app = project["optional-dependencies"]["app"]
    assert sorted(r.split(">")[0].replace("-", "_") for r in app) == sorted(APP_ONLY)
    assert set(app) <= set(project["dependencies"])  # `pip install sptui` still gives the app
    assert "textual>=8.2,<8.3" in app  # the minor version the SVG snapshots were made with
