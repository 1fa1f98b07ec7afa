"""Slurm options without a cluster: sources and precedence, checks with one clear line, the submitit
parameters they become, splitting a sweep, and the queue's schema migration for Slurm columns."""

import sqlite3

import pytest

from sptui.errors import SpecError
from sptui.queue import Queue
from sptui.slurm import options as O
from sptui.slurm.split import slice_specs
from sptui.spec import JobSpec, parse_text

from .helpers import REPO, tms_job


def sptui(*args: str, root, env_extra: dict | None = None, check: bool = False):
    """sptui in a subprocess with extra environment variables."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "SPTUI_ARTIFACTS": str(root), "SPTUI_TORCH_THREADS": "1", **(env_extra or {})}
    result = subprocess.run([sys.executable, "-m", "sptui", *args], capture_output=True, text=True, env=env, cwd=REPO,
                            timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"sptui {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result

FILE = """
[slurm]
partition = "gpu"
time = "1:30:00"
sbatch = { mail-type = "END" }

[[job]]
kind = "tms"
name = "a"
steps = 10
[job.slurm]
time = 20
mem_gb = 2.5
sbatch = { exclusive = true }

[[job]]
kind = "tms"
name = "b"
steps = 10
"""


def test_precedence_config_then_file_then_job_then_flags(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('[slurm]\npartition = "cpu"\naccount = "lab"\ncpus = 4\nsetup = ["module load x"]\n')
    monkeypatch.setenv("SPTUI_CONFIG", str(config))
    a, b = parse_text(FILE, "f.toml")
    assert a.slurm == {"partition": "gpu", "time": 20, "mem_gb": 2.5, "sbatch": {"mail-type": "END", "exclusive": True}}
    assert b.slurm == {"partition": "gpu", "time": "1:30:00", "sbatch": {"mail-type": "END"}}
    user = O.user_config()
    flags = {"cpus": 8, "sbatch": {"mail-type": "FAIL"}}
    ra, rb = O.resolve(user, a.slurm, flags), O.resolve(user, b.slurm, {})
    assert (ra.partition, ra.account, ra.cpus, ra.time, ra.mem_gb) == ("gpu", "lab", 8, 20, 2.5)
    assert ra.sbatch == {"mail-type": "FAIL", "exclusive": True}  # merged flag by flag, the command line last
    assert ra.setup == ["module load x"]
    assert (rb.cpus, rb.time) == (4, 90)  # "1:30:00" is 90 minutes
    params = O.submitit_parameters(ra, "0001-a")
    assert params["partition"] == "gpu" and params["account"] == "lab" and params["time"] == 20
    assert params["mem"] == "2560M" and params["cpus_per_task"] == 8
    assert params["additional_parameters"] == {"mail-type": "FAIL", "exclusive": True}


def test_slurm_options_are_not_part_of_the_experiment_identity():
    a = parse_text(tms_job("a"), "x.toml")[0]
    b = parse_text(tms_job("a") + '\n[job.slurm]\npartition = "gpu"\n', "x.toml")[0]
    assert a.digest() == b.digest()
    assert JobSpec.from_json(b.to_json()).slurm == {"partition": "gpu"}
    assert parse_text(b.to_toml(), "run/job.toml")[0].slurm == {"partition": "gpu"}  # the run folder keeps them


@pytest.mark.parametrize("text, message", [
    ('[slurm]\npartiton = "x"\n', 'f.toml: slurm.partiton: unknown Slurm option (did you mean "partition"?)'),
    ("[slurm]\ngpus = -1\n", "f.toml: slurm.gpus: expected a value >= 0, found -1"),
    ('[slurm]\ntime = "90 minutes"\n', 'f.toml: slurm.time: expected minutes or [D-]HH:MM[:SS], found "90 minutes"'),
    ('[slurm]\nsetup = "module load x"\n', "f.toml: slurm.setup: expected list of string"),
    ('[slurmm]\npartition = "x"\n', 'f.toml: slurmm: unknown top-level key (did you mean "slurm"?)'),
])
def test_bad_file_wide_options_name_the_key(text, message):
    with pytest.raises(SpecError) as e:
        parse_text(text + tms_job("a"), "f.toml")
    assert str(e.value).startswith(message)


def test_bad_per_job_option_names_the_job(tmp_path):
    with pytest.raises(SpecError, match=r'job 1 \("a"\): slurm.instances_per_tsk: unknown Slurm option '
                                        r'\(did you mean "instances_per_task"\?\)'):
        parse_text(tms_job("a") + "\n[job.slurm]\ninstances_per_tsk = 4\n", "f.toml")


def test_validate_exits_2_with_one_line_for_a_bad_slurm_table(tmp_path, artifacts):
    path = tmp_path / "bad.toml"
    path.write_text(tms_job("a") + "\n[job.slurm]\nmem = 4\n")
    result = sptui("validate", str(path), root=artifacts)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert 'slurm.mem: unknown Slurm option (did you mean "mem_gb"?)' in result.stderr
    path.write_text(tms_job("a") + '\n[job.slurm]\nmem_gb = 4\npartition = "gpu"\nsetup = ["module load cuda"]\n'
                    'sbatch = { mail-type = "END" }\n')
    result = sptui("validate", str(path), root=artifacts, check=True)
    # the options as the job file writes them, not as Python prints them
    assert ('slurm: mem_gb = 4.0, partition = "gpu", setup = ["module load cuda"], sbatch = { mail-type = "END" }'
            in result.stdout), result.stdout


def test_validate_checks_the_user_config_file(tmp_path, artifacts):
    config = tmp_path / "config.toml"
    config.write_text("[slurm]\nqso = \"high\"\n")
    path = tmp_path / "ok.toml"
    path.write_text(tms_job("a"))
    result = sptui("validate", str(path), root=artifacts, env_extra={"SPTUI_CONFIG": str(config)})
    assert result.returncode == 2
    assert f'{config}: slurm.qso: unknown Slurm option (did you mean "qos"?)' in result.stderr


def test_command_line_flags_are_checked_and_need_the_slurm_executor(tmp_path, artifacts):
    path = tmp_path / "ok.toml"
    path.write_text(tms_job("a"))
    result = sptui("submit", str(path), "--partition", "gpu", root=artifacts)
    assert result.returncode == 2 and "--partition: Slurm options need --executor slurm" in result.stderr
    result = sptui("batch", str(path), "--executor", "slurm", "--time", "soon", root=artifacts,
                   env_extra={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert '--time: expected minutes or [D-]HH:MM[:SS], found "soon"' in result.stderr
    with Queue(artifacts) as queue:
        assert queue.list() == []


@pytest.mark.parametrize("value, minutes", [(90, 90), ("90", 90), ("1:30:00", 90), ("2-00:00:00", 2880),
                                            ("1-12", 2160), ("1:30", 2), ("10:00", 10)])
def test_time_limits_in_slurm_formats(value, minutes):
    assert O.minutes(value) == minutes


def test_a_sweep_is_cut_into_slices_that_cover_it_in_order():
    spec = parse_text(tms_job("s", sweep="dropout = [0.0, 0.1, 0.2]\nl1_weight = [0.0, 0.01]"), "f.toml")[0]
    slices = slice_specs(spec, 4)
    assert [s.instance_range for s in slices] == [(0, 4), (4, 6)]
    assert [p for s in slices for p in s.grid()] == spec.grid()
    assert slice_specs(spec, 6) == [spec]
    again = parse_text(slices[1].to_toml(), "part/job.toml")[0]  # a slice's job.toml reads back as the slice
    assert again.grid() == slices[1].grid() and again.digest() == slices[1].digest() != spec.digest()
    with pytest.raises(SpecError, match=r"instance_range: expected 0 <= start < stop <= 6 .*found \[4, 9\]"):
        parse_text(tms_job("s", sweep="dropout = [0.0, 0.1, 0.2]\nl1_weight = [0.0, 0.01]").replace(
            "[job.sweep]", "instance_range = [4, 9]\n[job.sweep]"), "f.toml")


def test_an_older_queue_gains_the_slurm_columns_and_keeps_its_rows(artifacts):
    db = sqlite3.connect(artifacts / "queue.db")  # the schema before Slurm columns existed, with one row
    db.executescript("""
        CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT UNIQUE, name TEXT NOT NULL,
        kind TEXT NOT NULL, spec TEXT NOT NULL, spec_hash TEXT NOT NULL, source TEXT, priority INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL, executor TEXT NOT NULL DEFAULT 'worker', device_request TEXT, created REAL NOT NULL,
        started REAL, finished REAL, heartbeat REAL, host TEXT, owner_pid INTEGER, owner_start TEXT, pid INTEGER,
        pid_start TEXT, device TEXT, gpu TEXT, step INTEGER, total INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
        exit_code INTEGER, error TEXT, cancel_requested INTEGER NOT NULL DEFAULT 0);
    """)
    spec = parse_text(tms_job("old"), "f.toml")[0]
    db.execute("INSERT INTO jobs (run_id, name, kind, spec, spec_hash, state, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
               ("0001-old", "old", "tms", spec.to_json(), spec.digest(), "succeeded", 1.0))
    db.commit()
    db.close()
    with Queue(artifacts) as queue:
        (job,) = queue.list()
        assert (job.run_id, job.state, job.slurm_job_id, job.slurm_state) == ("0001-old", "succeeded", None, None)
    result = sptui("ls", "--json", root=artifacts, check=True)
    assert '"slurm_job_id": null' in result.stdout


def test_the_local_worker_never_claims_a_slurm_row(artifacts):
    spec = parse_text(tms_job("on-slurm"), "f.toml")[0]
    with Queue(artifacts) as queue:
        (job,) = queue.submit([spec], executor="slurm")
        assert queue.claim(1, None) is None
        local = queue.submit([spec], force=True)[0]
        assert queue.claim(1, None).id == local.id


@pytest.mark.parametrize("value", [0, "0:30", "1h", "-5"])
def test_time_limits_under_a_minute_or_malformed_are_refused(value):
    with pytest.raises(O.ParamError):
        O.minutes(value)


def test_only_kinds_that_say_so_can_be_split_into_slices(tmp_path, artifacts):
    path = tmp_path / "split.toml"
    path.write_text('[[job]]\nkind = "addition"\nname = "seeds"\n[job.sweep]\nseed = [0, 1, 2]\n'
                    "[job.slurm]\ninstances_per_task = 1\n")
    result = sptui("validate", str(path), root=artifacts)
    assert result.returncode == 2
    assert 'job "seeds": instances_per_task: kind addition cannot be split into slices' in result.stderr
    path.write_text(tms_job("grid", sweep="dropout = [0.0, 0.1, 0.2]") + "\n[job.slurm]\ninstances_per_task = 2\n")
    result = sptui("validate", str(path), root=artifacts, check=True)
    assert "on Slurm: an array of 2 tasks of at most 2 instances" in result.stdout


@pytest.mark.parametrize("text, seconds", [("4:50", 290), ("1:00:00", 3600), ("2-03:04:05", 183845), ("45", 45),
                                           ("UNLIMITED", None), ("INVALID", None), ("", None)])
def test_slurm_durations(text, seconds):
    from sptui.slurm.slurmctl import duration_seconds

    assert duration_seconds(text) == seconds


def test_help_names_what_each_slurm_flag_takes():
    """`--time` takes minutes or a Slurm duration: its help must not call it an INTEGER (the README's
    `--time 2:00:00` would look wrong); single-type options keep their type's name."""
    import argparse

    from sptui.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for verb in ("submit", "batch", "requeue"):
        text = " ".join(commands[verb].format_help().split())
        assert "--time TIME time limit of each job: minutes, or Slurm's [D-]HH:MM[:SS]" in text, verb
        assert "--gpus INTEGER" in text and "--mem-gb NUMBER" in text and "--partition STRING" in text
