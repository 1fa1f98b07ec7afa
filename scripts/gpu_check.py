"""`just gpu-check`: every CUDA path of sptui in one command, and the numbers for the README.

    python3 scripts/gpu_check.py --device cuda --out REPORT_DIR [--wheels .gpu-wheels] [--budget 360]
    python scripts/gpu_check.py --device cpu --out REPORT_DIR --quick      # the dry run CI runs

Phases (each timed, each ok or not, all in REPORT_DIR/gpu-check.json and gpu-check.md):
  environment  device, driver, torch, CUDA and library versions, TF32
  batch        the demo and one small job of every kind (scripts/gpu_check_jobs.py) through `sptui batch --device D`
  worker       the same jobs through `sptui worker --slots-per-gpu 2` (on a CPU: --slots 2): each finished with
               its results, two ran at once, and each job's log shows the CUDA_VISIBLE_DEVICES of its slot
  compare      a CPU run of each small job against the device run (rules and tolerances in gpu_check_jobs.py)
  nvml         the GPU strip's reading (sptui.gpu): the card torch sees, its memory, a live change when 1 GiB is
               allocated
  syncs        host synchronisations per loop step of the training and streaming kinds, counted by
               torch.cuda.set_sync_debug_mode over runs of n and 2n steps (what grows with the steps is per step)
  benchmarks   the benchmarks' GPU variants, each against its baseline in the same process (benchmarks/*.py)
With --device cpu it is a dry run: every phase's code runs at small sizes; counts that need CUDA say so.
`--wheels DIR` first installs the packages a bare GPU image lacks from DIR, offline (scripts/gpu_wheels.py),
then runs the check with them on PYTHONPATH. Exit status 0 when every phase is ok.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "benchmarks"), str(REPO)]
INSTALLED_ENV = "SPTUI_GPU_CHECK_INSTALLED"
QUICK_KINDS = ["tms", "functions"]  # the dry run in the default test suite: kinds that need no TransformerLens


class Report:
    """Phases with their time, state and details; written as JSON and as Markdown after every phase."""

    def __init__(self, out: Path, args: argparse.Namespace):
        self.out, self.started = out, time.monotonic()
        self.data: dict[str, Any] = {"command": " ".join(sys.argv), "device": args.device, "quick": args.quick,
                                     "started": time.strftime("%Y-%m-%d %H:%M:%S"), "phases": {}}

    def phase(self, name: str, fn, *a) -> Any:
        print(f"== {name}", flush=True)
        t0 = time.monotonic()
        entry: dict[str, Any] = {}
        try:
            result = fn(*a)
            entry = {"ok": bool(result.pop("ok", True)), **result}
        except Exception as e:
            traceback.print_exc()
            entry = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        entry["seconds"] = round(time.monotonic() - t0, 1)
        self.data["phases"][name] = entry
        print(f"   {name}: {'ok' if entry['ok'] else 'FAILED'} in {entry['seconds']} s"
              + (f" ({entry['error']})" if entry.get("error") else ""), flush=True)
        self.write()
        return entry

    @property
    def ok(self) -> bool:
        return all(p["ok"] for p in self.data["phases"].values())

    def write(self) -> None:
        self.data["seconds"] = round(time.monotonic() - self.started, 1)
        self.data["ok"] = self.ok
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "gpu-check.json").write_text(json.dumps(self.data, indent=2, default=str))
        try:
            text = markdown(self.data)
        except Exception:  # a bug in the summary must not lose the JSON beside it
            text = "# sptui GPU check\n\nThe summary could not be written:\n\n```\n" + traceback.format_exc() + "```\n"
        (self.out / "gpu-check.md").write_text(text)


# ---------------------------------------------------------------- running sptui

def sptui_env(device: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["PYTHONUNBUFFERED"] = "1"
    if device == "cpu":
        env.setdefault("SPTUI_TORCH_THREADS", "1")
    return env


def sptui(root: Path, *args: str, for_device: str = "", timeout: float = 900, log: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "sptui", "--artifacts", str(root), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=sptui_env(for_device), cwd=REPO, timeout=timeout)
    if log is not None:
        with open(log, "a") as f:
            f.write(f"$ {' '.join(cmd)}\n{result.stdout}\n{result.stderr}\n")
    return result


def start_sptui(root: Path, *args: str, for_device: str = "", log: Path) -> subprocess.Popen:
    out = open(log, "a")
    return subprocess.Popen([sys.executable, "-m", "sptui", "--artifacts", str(root), *args], stdout=out,
                            stderr=subprocess.STDOUT, env=sptui_env(for_device), cwd=REPO, text=True)


def finished_runs(root: Path, jobs, device: str) -> dict[str, dict[str, Any]]:
    """name -> {state, error, seconds, run_dir, results missing} for the newest run of each job."""
    listed = sptui(root, "ls", "--json", for_device=device)
    if listed.returncode != 0:
        raise RuntimeError(f"sptui ls failed: {listed.stderr.strip()}")
    newest: dict[str, dict] = {}
    for row in json.loads(listed.stdout):
        if row["name"] not in newest or row["id"] > newest[row["name"]]["id"]:
            newest[row["name"]] = row
    out = {}
    for job in jobs:
        row = newest.get(job.name)
        if row is None:
            out[job.name] = {"state": "missing", "ok": False}
            continue
        results = Path(row["run_dir"]) / "results"
        lacking = [f for f in job.results if not (results / f).exists()]
        out[job.name] = {"state": row["state"], "error": row.get("error"), "seconds": row.get("elapsed"),
                         "run_dir": row["run_dir"], "gpu": row.get("gpu"), "started": row.get("started"),
                         "finished": row.get("finished"), "missing_results": lacking,
                         "ok": row["state"] == "succeeded" and not lacking and not row.get("error")}
    return out


# ---------------------------------------------------------------- phases

def environment(device: str) -> dict[str, Any]:
    import importlib.metadata

    import torch

    from sptui.devices import configure_cuda, tf32_enabled

    configure_cuda()
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                            "torch": torch.__version__, "cuda_build": torch.version.cuda, "tf32": tf32_enabled()}
    for name in ("transformers", "transformer_lens", "numpy", "safetensors", "datasets", "huggingface_hub",
                 "nvidia-ml-py", "sae-lens"):
        try:
            info[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info[name] = None
    git = shutil.which("git")
    commit = subprocess.run([git, "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True) if git else None
    info["sptui_commit"] = commit.stdout.strip() if commit and commit.returncode == 0 else "unknown"
    if device != "cpu":
        if not torch.cuda.is_available():
            return {"ok": False, "error": "torch sees no CUDA GPU", **info}
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    compute_capability=f"{props.major}.{props.minor}", multiprocessors=props.multi_processor_count,
                    cudnn=torch.backends.cudnn.version(), gpu_count=torch.cuda.device_count(),
                    cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"))
        try:
            import pynvml

            pynvml.nvmlInit()
            driver = pynvml.nvmlSystemGetDriverVersion()
            info["driver"] = driver.decode() if isinstance(driver, bytes) else driver
        except Exception as e:
            info["driver"] = f"unknown ({e})"
    for k, v in info.items():
        print(f"   {k}: {v}")
    return info


def batch_phase(ctx) -> dict[str, Any]:
    """The demo, then every small job, through `sptui batch`; the CPU reference's sources start alongside."""
    from gpu_check_jobs import job_file

    out: dict[str, Any] = {}
    first, second = ctx.waves
    if ctx.device != "cpu" or ctx.args.compare:
        ctx.write_jobs("reference-sources.toml", first)
        ctx.reference = start_sptui(ctx.work / "cpu", "batch", str(ctx.work / "reference-sources.toml"), "--json",
                                    for_device="cpu", log=ctx.work / "reference.log")
    demo = ctx.demo_file()
    if demo is not None:
        result = sptui(ctx.work / "batch", "batch", str(demo), "--json", "--device", ctx.device, log=ctx.log,
                       timeout=ctx.timeout)
        rows = json.loads(result.stdout or "[]")
        out["demo"] = {"ok": result.returncode == 0 and bool(rows) and rows[0]["state"] == "succeeded",
                       "seconds": rows[0]["seconds"] if rows else None, "run_dir": rows[0]["run_dir"] if rows else None}
    path = ctx.work / "small.toml"
    path.write_text(job_file(first + second))
    result = sptui(ctx.work / "batch", "batch", str(path), "--json", "--device", ctx.device, log=ctx.log,
                   timeout=ctx.timeout)
    out["jobs"] = finished_runs(ctx.work / "batch", first + second, ctx.device)
    out["ok"] = result.returncode == 0 and all(r["ok"] for r in out["jobs"].values()) and out.get("demo", {"ok": True})["ok"]
    if result.returncode != 0:
        out["stderr"] = result.stderr.strip().splitlines()[-5:]
    return out


def worker_phase(ctx) -> dict[str, Any]:
    """The same jobs queued and run by a worker with two slots on the GPU (two on the CPU in a dry run)."""
    root = ctx.work / "worker"
    slots = ["--slots-per-gpu", "2"] if ctx.device != "cpu" else ["--slots", "2"]
    out: dict[str, Any] = {"slots": " ".join(slots)}
    said = []
    for i, wave in enumerate(ctx.waves):
        if not wave:
            continue
        path = ctx.write_jobs(f"worker-{i}.toml", wave)
        submitted = sptui(root, "submit", str(path), "--device", ctx.device, log=ctx.log)
        if submitted.returncode != 0:
            return {"ok": False, "error": f"submit failed: {submitted.stderr.strip()}"}
        worker = sptui(root, "worker", "--device", ctx.device, *slots, "--once", log=ctx.log, timeout=ctx.timeout)
        said += worker.stdout.splitlines()
        if worker.returncode != 0:
            return {"ok": False, "error": f"worker exited with {worker.returncode}: {worker.stderr.strip()[-300:]}"}
    jobs = finished_runs(root, ctx.waves[0] + ctx.waves[1], ctx.device)
    spans = sorted((float(r["started"]), float(r["finished"])) for r in jobs.values() if r.get("started") and r.get("finished"))
    out["concurrent"] = any(b[0] < a[1] for a, b in zip(spans, spans[1:]))
    if ctx.device != "cpu":  # the slot's GPU, as the worker recorded it and as the job's own process saw it
        for r in jobs.values():
            log = (Path(r["run_dir"]) / "log.txt").read_text() if r.get("run_dir") else ""
            r["cuda_visible_devices_seen"] = log.split("CUDA_VISIBLE_DEVICES=", 1)[1].split(";")[0] if "CUDA_VISIBLE_DEVICES=" in log else None
            r["slot_ok"] = r.get("gpu") is not None and r["cuda_visible_devices_seen"] == str(r.get("gpu"))
            r["ok"] = r["ok"] and r["slot_ok"]
    out["jobs"] = jobs
    out["worker_said"] = said[-40:]
    out["ok"] = all(r["ok"] for r in jobs.values()) and (out["concurrent"] or len(jobs) < 2)
    return out


def compare_phase(ctx) -> dict[str, Any]:
    """CPU runs of the small jobs against the device's: sources trained on each device; readers of a source run on
    the CPU over the device's own source run, so both read the same model."""
    first, second = ctx.waves
    device_runs = {name: Path(r["run_dir"]) for name, r in ctx.batch_runs().items() if r.get("run_dir")}
    if ctx.reference is None:
        return {"ok": False, "error": "the CPU reference runs were not started"}
    ctx.reference.wait(timeout=ctx.timeout)
    if second:
        refs = {j.key: str(device_runs[j.name]) for j in first if j.name in device_runs}
        ctx.write_jobs("reference-readers.toml", second, refs)
        run = sptui(ctx.work / "cpu", "batch", str(ctx.work / "reference-readers.toml"), "--json", for_device="cpu",
                    log=ctx.work / "reference.log", timeout=ctx.timeout)
        if run.returncode != 0:
            ctx.note(f"CPU reference readers: exit {run.returncode}")
    cpu_runs = finished_runs(ctx.work / "cpu", first + second, "cpu")
    out: dict[str, Any] = {"kinds": {}}
    for job in first + second:
        cpu, dev = cpu_runs.get(job.name, {}), device_runs.get(job.name)
        if not cpu.get("ok") or dev is None:
            out["kinds"][job.key] = {"ok": False, "error": f"CPU run {cpu.get('state')}: {cpu.get('error')}"
                                     if not cpu.get("ok") else "no device run"}
            continue
        try:
            c = job.compare(Path(cpu["run_dir"]), dev)
            out["kinds"][job.key] = {"ok": c.ok, "rule": c.rule, **c.measured}
        except Exception as e:
            out["kinds"][job.key] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    out["ok"] = all(k["ok"] for k in out["kinds"].values())
    return out


def nvml_phase(ctx) -> dict[str, Any]:
    """The GPU strip's reading: which cards, their memory, and that it follows an allocation of 1 GiB."""
    import torch

    from sptui.gpu import read_gpus

    status = read_gpus()
    out: dict[str, Any] = {"reason": status.reason,
                           "gpus": [{"index": g.index, "name": g.name, "util_percent": g.util_percent,
                                     "memory_used_mib": g.memory_used // 2**20, "memory_total_mib": g.memory_total // 2**20}
                                    for g in status.gpus]}
    if ctx.device == "cpu":
        out["ok"] = not status.gpus and bool(status.reason)  # no GPU here: one quiet reason, as the strip shows it
        return out
    if not status.gpus:
        return {**out, "ok": False}
    props = torch.cuda.get_device_properties(0)
    first = status.gpus[0]
    before = first.memory_used
    block = torch.empty(2**30, dtype=torch.uint8, device="cuda")
    torch.cuda.synchronize()
    after = read_gpus().gpus[0].memory_used
    del block
    torch.cuda.empty_cache()
    out.update(name_matches=props.name in first.name or first.name in props.name,
               total_matches=abs(first.memory_total - props.total_memory) <= 0.05 * props.total_memory,
               one_gib_seen_mib=(after - before) // 2**20)
    out["ok"] = out["name_matches"] and out["total_matches"] and after - before >= 0.9 * 2**30
    return out


def syncs_phase(ctx) -> dict[str, Any]:
    """Host syncs per loop step: each probed kind runs n and 2n steps in this process under the sync debug
    mode; what grows with the steps is per step (logging and set-up syncs happen as often in both)."""
    import warnings

    import tomli_w
    import torch
    from gpu_check_jobs import JOBS, job_table

    from sptui.runner import execute
    from sptui.runs import RunDir
    from sptui.spec import parse_text

    sources = {name: r["run_dir"] for name, r in ctx.batch_runs().items() if r.get("run_dir")}
    n = 4 if ctx.args.quick else 20
    out: dict[str, Any] = {"counted": ctx.device != "cpu", "n": n, "kinds": {}}
    for kind in ctx.kinds:
        job = JOBS[kind]
        if job.probe is None:
            continue
        counts = []
        for steps in (n, 2 * n):
            ref = sources.get(JOBS[job.source].name) if job.source else None
            table = job_table(job, ref, job.probe(steps))
            (spec,) = parse_text(tomli_w.dumps({"job": [table]}), "probe.toml")
            run = RunDir(ctx.work / "probe" / f"{kind}-{steps}")
            shutil.rmtree(run.root, ignore_errors=True)
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                if ctx.device != "cpu":
                    torch.cuda.synchronize()
                    torch.cuda.set_sync_debug_mode("warn")
                try:
                    outcome = execute(spec, run, device=ctx.device, artifacts_root=ctx.work / "batch", render=False)
                finally:
                    if ctx.device != "cpu":
                        torch.cuda.set_sync_debug_mode("default")
            if outcome.state != "succeeded":
                out["kinds"][kind] = {"ok": False, "error": f"probe run {outcome.state}: {outcome.error}"}
                break
            counts.append(sum("synchroniz" in str(w.message) for w in seen))
        else:
            per = (counts[1] - counts[0]) / n
            free = kind in ctx.sync_free
            out["kinds"][kind] = {"syncs": counts, "per": job.probe_unit, "syncs_per_step": per if out["counted"] else None,
                                  "expected_sync_free": free, "ok": not out["counted"] or not free or per == 0}
    out["ok"] = all(k["ok"] for k in out["kinds"].values())
    return out


def benchmarks_phase(ctx) -> dict[str, Any]:
    from gpu_benchmarks import run_all

    only = tuple(ctx.args.benchmarks.split(",")) if ctx.args.benchmarks else None
    return run_all(ctx.device, quick=ctx.args.quick, deadline=ctx.deadline, note=ctx.note, only=only)


# ---------------------------------------------------------------- the run

class Check:
    """What the phases share: options, folders, the jobs, the CPU reference process, the time budget."""

    SYNC_FREE = {"tms", "functions", "addition", "lm"}  # their training loops read nothing back per step

    def __init__(self, args: argparse.Namespace, work: Path, report: Report):
        from gpu_check_jobs import JOBS, waves

        self.args, self.device, self.work, self.report = args, args.device, work, report
        self.kinds = args.kinds.split(",") if args.kinds else (QUICK_KINDS if args.quick else list(JOBS))
        unknown = [k for k in self.kinds if k not in JOBS]
        if unknown:
            raise SystemExit(f"gpu_check: no small job for {', '.join(unknown)} (scripts/gpu_check_jobs.py)")
        self.waves = waves(self.kinds)
        self.sync_free = self.SYNC_FREE
        self.reference: subprocess.Popen | None = None
        self.log = work / "sptui.log"
        self.timeout = max(60.0, args.budget)
        self.deadline = time.monotonic() + args.budget
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        print(f"   note: {text}", flush=True)
        self.notes.append(text)
        self.report.data["notes"] = self.notes

    def write_jobs(self, name: str, jobs, refs=None) -> Path:
        from gpu_check_jobs import job_file

        path = self.work / name
        path.write_text(job_file(jobs, refs))
        return path

    def demo_file(self) -> Path | None:
        if self.args.demo_steps == 0:
            return None
        text = (REPO / "jobs" / "demo.toml").read_text()
        if self.args.demo_steps > 0:
            import tomllib

            import tomli_w

            data = tomllib.loads(text)
            for job in data["job"]:
                job["steps"] = self.args.demo_steps
            text = tomli_w.dumps(data)
        path = self.work / "demo.toml"
        path.write_text(text)
        return path

    def batch_runs(self) -> dict[str, dict]:
        return self.report.data["phases"].get("batch", {}).get("jobs", {})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (the check) or cpu (a dry run)")
    ap.add_argument("--out", type=Path, default=REPO / "gpu-check-report", help="where the report goes")
    ap.add_argument("--work", type=Path, help="artifacts and job files (default: a temporary folder, removed)")
    ap.add_argument("--wheels", type=Path, help="install the missing packages from these wheels first, offline")
    ap.add_argument("--budget", type=float, default=360.0, help="seconds the whole check may take; benchmarks shrink to fit")
    ap.add_argument("--quick", action="store_true", help=f"the smallest run: kinds {', '.join(QUICK_KINDS)}, tiny benchmarks")
    ap.add_argument("--kinds", help="comma-separated kinds (default: every kind)")
    ap.add_argument("--benchmarks", help="comma-separated benchmarks (default: all; --quick: tms)")
    ap.add_argument("--demo-steps", type=int, default=-1, help="steps of the demo (-1: as in jobs/demo.toml; 0: skip it)")
    ap.add_argument("--skip", default="", help="comma-separated phases to leave out")
    ap.add_argument("--compare", action="store_true", default=True, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if sys.version_info < (3, 11):  # noqa: UP036  (the GPU image's python is not ours to choose)
        print(f"gpu_check: sptui needs Python >= 3.11, this is {platform.python_version()}", file=sys.stderr)
        return 2
    if args.wheels and not os.environ.get(INSTALLED_ENV):
        from gpu_wheels import install

        target = install(args.wheels, Path(tempfile.gettempdir()) / "sptui-site")
        env = dict(os.environ, **{INSTALLED_ENV: "1"})
        env["PYTHONPATH"] = os.pathsep.join([str(target), str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        os.execve(sys.executable, [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:])], env)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    if args.device == "cpu":
        os.environ.setdefault("SPTUI_TORCH_THREADS", "1")
    work = args.work or Path(tempfile.mkdtemp(prefix="sptui-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    report = Report(args.out, args)
    check = Check(args, work, report)
    report.data["kinds"] = check.kinds
    skip = set(filter(None, args.skip.split(",")))
    phases = [("environment", environment, args.device), ("batch", batch_phase, check), ("worker", worker_phase, check),
              ("compare", compare_phase, check), ("nvml", nvml_phase, check), ("syncs", syncs_phase, check),
              ("benchmarks", benchmarks_phase, check)]
    try:
        for name, fn, arg in phases:
            if name not in skip:
                report.phase(name, fn, arg)
    finally:
        if check.reference is not None and check.reference.poll() is None:
            check.reference.kill()
            check.reference.wait()
        report.write()
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"report: {args.out / 'gpu-check.md'} ({'ok' if report.ok else 'FAILED'}, {report.data['seconds']} s)")
    return 0 if report.ok else 1


# ---------------------------------------------------------------- the Markdown report

def markdown(data: dict[str, Any]) -> str:
    from gpu_benchmarks import markdown_tables

    phases = data["phases"]
    env = phases.get("environment", {})
    lines = [f"# sptui GPU check ({'ok' if data.get('ok') else 'FAILED'}, {data.get('seconds')} s, device {data['device']})", ""]
    if env:
        where = env.get("gpu") or "CPU (dry run)"
        lines += [f"{where}" + (f", {env.get('gpu_memory_gib')} GiB, driver {env.get('driver')}" if env.get("gpu") else "")
                  + f"; torch {env.get('torch')} (CUDA {env.get('cuda_build')}), Python {env.get('python')}, "
                  f"transformers {env.get('transformers')}, TransformerLens {env.get('transformer_lens')}; "
                  f"TF32 {'on' if env.get('tf32') else 'off'}; sptui {env.get('sptui_commit')}", ""]
    lines += ["| phase | ok | seconds |", "| --- | --- | --- |"]
    lines += [f"| {name} | {'yes' if p['ok'] else '**no**'} | {p['seconds']} |" for name, p in phases.items()]
    batch, worker = phases.get("batch", {}).get("jobs", {}), phases.get("worker", {}).get("jobs", {})
    if batch:
        lines += ["", "Jobs (`sptui batch`, then a worker with " + phases.get("worker", {}).get("slots", "?") + "):", "",
                  "| job | batch | s | worker | s | slot GPU = CUDA_VISIBLE_DEVICES |", "| --- | --- | --- | --- | --- | --- |"]
        for name, r in batch.items():
            w = worker.get(name, {})
            slot = "" if "slot_ok" not in w else f"{w.get('gpu')} = {w.get('cuda_visible_devices_seen')}"
            lines.append(f"| {name} | {r['state']} | {_num(r.get('seconds'))} | {w.get('state', '')} | "
                         f"{_num(w.get('seconds'))} | {slot} |")
        demo = phases["batch"].get("demo")
        if demo:
            lines.append(f"\nDemo (jobs/demo.toml): {'succeeded' if demo['ok'] else 'FAILED'} in {_num(demo['seconds'])} s.")
    compare = phases.get("compare", {}).get("kinds", {})
    if compare:
        lines += ["", "CPU against device:", "", "| kind | ok | rule | measured |", "| --- | --- | --- | --- |"]
        for kind, c in compare.items():
            measured = {k: v for k, v in c.items() if k not in ("ok", "rule")}
            lines.append(f"| {kind} | {'yes' if c['ok'] else '**no**'} | {c.get('rule', '')} | {_short(measured)} |")
    nvml = phases.get("nvml")
    if nvml:
        lines += ["", f"GPU strip (NVML): {_short(nvml['gpus']) if nvml.get('gpus') else nvml.get('reason')}"
                  + (f"; 1 GiB allocation seen as {nvml['one_gib_seen_mib']} MiB" if "one_gib_seen_mib" in nvml else "")]
    syncs = phases.get("syncs", {})
    if syncs.get("kinds"):
        lines += ["", "Host synchronisations per loop step" + ("" if syncs.get("counted") else
                  " (not counted on a CPU: the dry run only runs the probes)") + ":", "",
                  "| kind | per | syncs (n, 2n runs) | per step | expected |", "| --- | --- | --- | --- | --- |"]
        for kind, s in syncs["kinds"].items():
            lines.append(f"| {kind} | {s.get('per', '')} | {s.get('syncs', s.get('error'))} | {_num(s.get('syncs_per_step'))} "
                         f"| {'0' if s.get('expected_sync_free') else 'reported'} |")
    bench = phases.get("benchmarks", {})
    if bench:
        lines += [""] + markdown_tables(bench)
    for note in data.get("notes", []):
        lines.append(f"\nNote: {note}")
    return "\n".join(lines) + "\n"


def _num(v) -> str:
    return "" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)


def _short(v) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= 240 else text[:237] + "..."


if __name__ == "__main__":
    sys.exit(main())
