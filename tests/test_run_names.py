"""One way to name a run: the queue's commands (`Queue.get`: show, logs, cancel, ...) and the folder's
(`find_run`: export, neuroscope, analysis kinds, model references) pick the same run for the same word,
by the order README "Commands" documents (sptui.runs.RUN_REFERENCE_ORDER)."""

from __future__ import annotations

import json

import pytest

from sptui.errors import SptuiError
from sptui.queue import Queue
from sptui.runs import RunDir, find_run, resolve_run_id
from sptui.spec import parse_text

from .helpers import sptui, tms_job


def queue_jobs(root, *names: str, started: bool = True) -> list:
    """Jobs queued by name; `started` gives each its run folder, as a worker does when it starts one."""
    with Queue(root) as q:
        jobs = q.submit(parse_text("".join(tms_job(n) for n in names), "t.toml"), force=True)
    if started:
        for job in jobs:
            RunDir(job.run_dir(root)).create(job.job_spec().to_toml())
    return jobs


def both(root, word: str) -> str:
    """The run id each path picks for `word` (the queue's, the folders', and a running kind's through its
    Context); the test fails here if they differ."""
    from sptui.context import Context

    with Queue(root) as q:
        job = q.get(word)
    from_queue = job.run_id
    from_folders = find_run(word, root).run_id
    assert from_queue == from_folders, f'"{word}": the queue picks {from_queue}, the folders {from_folders}'
    ctx = Context(job.job_spec(), RunDir(job.run_dir(root)), artifacts_root=root)  # a kind running in that run
    try:
        assert ctx.find_run(word).run_id == from_queue
    finally:
        ctx.close()
    return from_queue


@pytest.fixture
def runs(artifacts):
    """0001-ab, 0002-b, 0003-0001-a (a job NAMED like a run-id prefix), 0004-7 (a job named 7),
    0005-b (b again), 0006-grid-n-3 (named "grid[n=3]"), 0007-c."""
    queue_jobs(artifacts, "ab", "b", "0001-a", "7")
    queue_jobs(artifacts, "b", "grid[n=3]", "c")
    return artifacts


def test_a_job_name_that_is_also_a_run_id_prefix_names_that_job(runs):
    # "0001-a" is a prefix of 0001-ab and the name of job 3: a whole name beats part of a run id
    assert both(runs, "0001-a") == "0003-0001-a"
    assert both(runs, "0001-") == "0001-ab"  # a prefix of exactly one run id, and nobody's name


def test_digits_are_a_job_id_before_a_job_name_or_a_prefix(runs):
    assert both(runs, "7") == "0007-c"  # job id 7, though a job is named "7"
    assert both(runs, "0007") == "0007-c"
    assert both(runs, "1") == "0001-ab"  # the old folder lookup refused this (no run id starts with "1")
    assert both(runs, "0004-7") == "0004-7"  # the named job by its run id


def test_job_names_as_submitted_or_as_slugs_pick_the_newest_run(runs):
    assert both(runs, "b") == "0005-b"
    assert both(runs, "grid[n=3]") == "0006-grid-n-3"
    assert both(runs, "grid-n-3") == "0006-grid-n-3"  # the name as the run id shows it


def test_a_run_folder_path_names_its_run_in_both(runs):
    folder = runs / "runs" / "0002-b"
    assert both(runs, str(folder)) == both(runs, str(folder / "results")) == "0002-b"


def test_several_prefix_matches_and_unknown_words_are_one_line_errors(runs):
    with Queue(runs) as q:
        for word, message in (("000", "matches several runs"), ("nope", 'no run "nope"')):
            with pytest.raises(SptuiError, match=message):
                q.get(word)
            with pytest.raises(SptuiError, match=message):
                find_run(word, runs)


def test_the_newest_run_of_a_name_still_queued_is_not_silently_swapped_for_an_older_one(artifacts):
    (old,) = queue_jobs(artifacts, "lm")
    (new,) = queue_jobs(artifacts, "lm", started=False)  # queued again: no folder yet
    (RunDir(old.run_dir(artifacts)).results / "model.safetensors").write_bytes(b"")
    with Queue(artifacts) as q:
        assert q.get("lm").id == new.id
    with pytest.raises(SptuiError, match=f"{new.run_id}, which is still queued: it has no run folder yet"):
        find_run("lm", artifacts)
    # a command that asks for a run with a saved model takes the newest one that has it
    assert find_run("lm", artifacts, prefer="results/model.safetensors").run_id == old.run_id


def test_folders_without_a_queue_entry_resolve_the_same_way(artifacts):
    for run_id in ("0001-lm", "0002-lm", "0010-other"):
        RunDir(artifacts / "runs" / run_id).create('[[job]]\nkind = "tms"\nname = "x"\n')
    assert find_run("lm", artifacts).run_id == "0002-lm"
    assert find_run("10", artifacts).run_id == "0010-other"
    with Queue(artifacts) as q, pytest.raises(SptuiError, match="not in the queue"):
        q.get("lm")


def test_the_cli_commands_agree(runs):
    """`sptui show` (queue) and `sptui export` (folder) name the same run for an ambiguous word."""
    shown = json.loads(sptui("show", "--json", "0001-a", root=runs, check=True).stdout)
    exported = sptui("export", "0001-a", root=runs)  # that run has no results: the error names its folder
    assert shown["run_id"] == "0003-0001-a"
    assert exported.returncode == 2 and "0003-0001-a: no results yet" in exported.stderr


def test_resolver_order_on_plain_names():
    from sptui.runs import KnownRun

    known = [KnownRun("0001-ab", "ab"), KnownRun("0003-0001-a", "0001-a"), KnownRun("0012-x", "x")]
    assert resolve_run_id("0001-a", known) == "0003-0001-a"
    assert resolve_run_id("12", known) == "0012-x"
    assert resolve_run_id("x", known, has=lambda run_id: False) == "0012-x"
