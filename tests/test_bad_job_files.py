"""Hostile and broken job files: validate, submit and batch each answer with exactly one line on stderr,
exit status 2 and nothing queued, quickly (a table of files -> the line expected).

The commands run in this process through `sptui.cli.main` (the real parser and queue), except the files
that would hang a broken reader (a FIFO, /dev/zero), which run as subprocesses with a timeout.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from sptui import cli

from .helpers import REPO, tms_job

ESC = "\x1b"


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def queued(root) -> int:
    db = root / "queue.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        return con.execute("SELECT count(*) FROM jobs").fetchone()[0]


def nested(depth: int) -> str:
    return tms_job("deep") + "x = " + "[" * depth + "1" + "]" * depth + "\n"


def sweep_of(**lists: int) -> str:
    lines = "".join(f"{k} = [{', '.join(str(round(0.001 * (i + 1), 6)) for i in range(n))}]\n" for k, n in lists.items())
    return tms_job("huge", sweep=lines)


BAD_FILES = [
    # --- sizes: counted before anything is validated
    ("huge-sweep", sweep_of(lr=100, dropout=100, weight_decay=100),
     "job 1: sweep: the grid has 1,000,000 points (lr 100 x dropout 100 x weight_decay 100), over the limit of "
     "10,000 model instances a job file may make (SPTUI_MAX_GRID raises it)"),
    ("many-seeds", tms_job("seeds", sweep="seed = [" + ", ".join(map(str, range(20_001))) + "]"),
     "job 1: sweep: the grid has 20,001 points (seed 20,001), over the limit of 10,000"),
    ("two-jobs-over", sweep_of(lr=80, dropout=80) + tms_job("b", sweep="seed = [" + ", ".join(map(str, range(4000))) + "]"),
     "the sweeps of its 2 jobs make 10,400 model instances, over the limit of 10,000"),
    ("max-steps", tms_job(extra="steps = 9223372036854775807").replace("steps = 300\n", ""),
     'job 1 ("tiny"): steps: expected a value <= 10,000,000, found 9,223,372,036,854,775,807'),
    ("log-points", tms_job(log_points=1_000_000_000), 'log_points: expected a value <= 100,000, found 1,000,000,000'),
    ("snapshots", tms_job(extra="snapshots = 1000000000"), "snapshots: expected a value <= 1000, found 1,000,000,000"),
    ("n-features", tms_job().replace("n_features = 5", "n_features = 1000000000"),
     "n_features: expected a value <= 100,000, found 1,000,000,000"),
    ("batch-float", tms_job().replace("batch_size = 64", "batch_size = 1e11"),
     "batch_size: expected integer, found 100000000000.0 (number)"),
    ("eval-batch", tms_job().replace("eval_batch = 256", "eval_batch = 10000000000"),
     "eval_batch: expected a value <= 1,000,000, found 10,000,000,000"),
    ("epochs", '[[job]]\nkind = "addition"\nname = "a"\nepochs = 1000000\nn_train = 50000\nbatch_size = 1\n',
     'epochs: 1,000,000 epochs of 50,000 steps make 50,000,000,000 optimiser steps, more than 10,000,000'),
    ("prompts", '[[job]]\nkind = "lm"\nname = "l"\nsample_prompts = [' + ", ".join(['"a"'] * 101) + "]\n",
     "sample_prompts: expected at most 100 values, found 101"),
    # --- numbers that are not numbers
    ("lr-inf", tms_job(extra="lr = inf"), 'job 1 ("tiny"): lr: expected a finite number, found inf'),
    ("lr-huge", tms_job(extra="lr = 1e308"), "lr: expected a value <= 100, found 1e+308"),
    ("decay-inf", tms_job(extra="importance_decay = inf"), "importance_decay: expected a finite number, found inf"),
    ("l1-inf", tms_job(extra="l1_hidden = +inf"), "l1_hidden: expected a finite number, found inf"),
    ("nan-in-sweep", tms_job(sweep="dropout = [0.1, nan]"), "sweep.dropout[1]: expected a finite number, found nan"),
    ("inf-in-list", tms_job(probability=None, extra="feature_probability = [0.1, 0.1, -inf, 0.1, 0.1]"),
     "feature_probability: expected a finite number, found -inf"),
    # --- structure
    ("deep-5000", nested(5000), "arrays or tables nested more than 32 deep"),
    ("deep-100", nested(100), "arrays or tables nested more than 32 deep"),
    # --- names and strings that would act on the terminal or the file system
    ("name-escape", tms_job("\\u001b[31mred"),
     'job 1: name: "\\x1b[31mred" has U+001B (control character) at position 1; a name holds letters, digits'),
    ("name-rtl", tms_job("abc\\u202Egpj.exe"),
     'job 1: name: "abc\\u202egpj.exe" has U+202E (RIGHT-TO-LEFT OVERRIDE) at position 4'),
    ("name-nul", tms_job("a\\u0000b"), 'job 1: name: "a\\x00b" has U+0000 (control character) at position 2'),
    ("name-newline", tms_job("a\\nb"), 'job 1: name: "a\\nb" has U+000A (control character) at position 2'),
    ("name-dotdot", tms_job("../../tmp/x"), 'job 1: name: "../../tmp/x" has "." at position 1'),
    ("name-slash", tms_job("a/b"), 'job 1: name: "a/b" has "/" at position 2'),
    ("name-shell", tms_job("x$(rm -rf ~)"), 'job 1: name: "x$(rm -rf ~)" has "$" at position 2'),
    ("name-dash", tms_job("-rf"), 'job 1: name: "-rf" has "-" at position 1'),
    ("name-long", tms_job("n" * 101), "has 101 characters; a name holds"),
    ("param-escape", '[[job]]\nkind = "lm"\nname = "l"\ncorpus = "\\u001b]0;owned\\u0007"\n',
     'job 1 ("l"): corpus: a string holds U+001B (control character) at position 1; job files may not hold '
     "control characters or bidirectional overrides"),
    ("key-escape", tms_job(extra='"\\u001b[2J" = 1'), 'job 1 ("tiny"): \\x1b[2J: unknown parameter'),
    ("kind-escape", '[[job]]\nkind = "\\u001b[2J"\nname = "k"\n', 'kind: unknown kind "\\x1b[2J";'),
]


@pytest.mark.parametrize("command", ["validate", "submit", "batch"])
@pytest.mark.parametrize("case, text, expected", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_a_bad_job_file_is_one_line_exit_2_and_nothing_queued(capsys, tmp_path, command, case, text, expected):
    path = tmp_path / f"{case}.toml"
    path.write_text(text)
    root = tmp_path / "artifacts"
    code, out, err = run_cli(capsys, "--artifacts", str(root), command, str(path))
    assert code == 2, (out, err)
    assert err.startswith(f"sptui: {path}: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert expected in err, err
    assert ESC not in err and "\x00" not in err and "\u202e" not in err.lower()
    assert queued(root) == 0


def test_the_name_rule_accepts_what_sweeps_and_people_write(capsys, tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(tms_job("grid[n_hidden=3] v2, run #1 (dropout=0.1) @home: 50% + é") + tms_job("模型-1"))
    code, out, err = run_cli(capsys, "validate", str(path))
    assert code == 0, err
    assert "grid[n_hidden=3] v2, run #1" in out and "模型-1" in out


def test_limits_are_configurable(capsys, tmp_path, monkeypatch):
    path = tmp_path / "grid.toml"
    path.write_text(sweep_of(dropout=20))
    monkeypatch.setenv("SPTUI_MAX_GRID", "19")
    code, _, err = run_cli(capsys, "validate", str(path))
    assert code == 2 and "the grid has 20 points (dropout 20), over the limit of 19" in err
    monkeypatch.setenv("SPTUI_MAX_GRID", "20")
    assert run_cli(capsys, "validate", str(path))[0] == 0
    monkeypatch.setenv("SPTUI_MAX_JOB_FILE_BYTES", str(path.stat().st_size - 1))
    code, _, err = run_cli(capsys, "validate", str(path))
    assert code == 2 and f"larger than the job-file limit of {path.stat().st_size - 1:,} bytes" in err
    monkeypatch.setenv("SPTUI_MAX_JOB_FILE_BYTES", "lots")
    code, _, err = run_cli(capsys, "validate", str(path))
    assert code == 2 and err == "sptui: error: SPTUI_MAX_JOB_FILE_BYTES='lots': expected a whole number (the largest job file read, in bytes)\n"


def test_a_big_grid_within_the_limit_is_accepted(capsys, tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(sweep_of(lr=10, dropout=10, weight_decay=10, l1_weight=10))
    code, out, err = run_cli(capsys, "validate", str(path))
    assert code == 0, err
    assert "10,000 model instances" in out


def sptui_cli(*args: str, root, timeout: float = 60) -> subprocess.CompletedProcess:
    """The real command in a subprocess: a reader that hangs fails the test by its timeout."""
    env = {**os.environ, "SPTUI_ARTIFACTS": str(root)}
    return subprocess.run([sys.executable, "-m", "sptui", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=REPO)


@pytest.mark.parametrize("command", ["validate", "submit", "batch"])
def test_files_that_never_end_are_refused_before_reading(tmp_path, command):
    fifo = tmp_path / "job.toml"
    os.mkfifo(fifo)
    big = tmp_path / "big.toml"
    big.write_text(tms_job() + "# " + "x" * (2 << 20) + "\n")
    root = tmp_path / "artifacts"
    regular = "not a regular file; a job file is a TOML text file"
    for path, expected in ((fifo, f"a FIFO, {regular}"), ("/dev/zero", f"a device, {regular}"),
                           (tmp_path, f"a folder, {regular}"),
                           (big, "larger than the job-file limit of 1,048,576 bytes (job files are a few KB; "
                                 "SPTUI_MAX_JOB_FILE_BYTES raises it)")):
        result = sptui_cli(command, str(path), root=root)
        assert result.returncode == 2, result.stderr
        assert result.stderr == f"sptui: {path}: {expected}\n"
    assert queued(root) == 0


def test_run_folder_names_are_safe_by_construction():
    """Whatever a name holds (a name from an old queue, a sweep over a path), its run folder is one plain
    component under runs/: ASCII letters, digits, _ - and single dots, never "..", hidden or an option."""
    import re

    from sptui.queue import make_run_id

    names = ["../../tmp/x", "a/b", "$(rm -rf ~)", ESC + "[31mred", "模型", "...", "-rf", "", "x" * 300,
             "grid[corpus=/data/../stories.txt]", "grid[n_hidden=3]", "v1.2..3", ". .", "a\0b\nc"]
    ids = [make_run_id(7, name) for name in names]
    for run_id in ids:
        assert re.fullmatch(r"0007-[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?", run_id), run_id
        assert ".." not in run_id and len(run_id) <= 65
    assert ids[0] == "0007-tmp-x" and ids[10] == "0007-grid-n_hidden-3" and ids[4] == "0007-job"


def test_every_size_and_count_of_every_kind_has_a_maximum():
    """A new parameter without an upper bound would let `steps = 9223372036854775807` run forever again.
    Seeds are neither sizes nor counts; tms-theory's n_features is bounded by its check (with its reason)."""
    import dataclasses
    import typing

    from sptui.kinds import kind_names, load_kind

    exempt = {("tms-theory", "n_features")}
    unbounded = []
    for kind in kind_names():
        cls = load_kind(kind).Params
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            args = {hints[f.name], *typing.get_args(hints[f.name])}
            args |= {a for arg in list(args) for a in typing.get_args(arg)}  # list[int], int | None
            numeric = bool(args & {int, float})
            bounded = f.metadata.get("le") is not None or f.metadata.get("lt") is not None
            if numeric and not bounded and "seed" not in f.name and (kind, f.name) not in exempt:
                unbounded.append(f"{kind}.{f.name}")
    assert unbounded == []
