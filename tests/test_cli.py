"""Small CLI commands: kinds reference, show, priority, bulk requeue."""

import json
import os
import time

from sptui.cli import _fmt_seconds
from sptui.queue import Queue, own_identity
from sptui.spec import parse_text

from .helpers import sptui, tms_job


def test_kinds_lists_every_kind_and_documents_parameters(artifacts):
    listing = sptui("kinds", root=artifacts, check=True).stdout
    for kind in ("tms", "functions"):
        assert any(line.split()[0] == kind for line in listing.splitlines() if line.strip())
    tms = sptui("kinds", "tms", root=artifacts, check=True).stdout
    assert "dropout (number, default 0.0; >= 0, < 1)  [batched in sweeps]" in tms
    assert "steps (integer, default 10000; >= 1, <= 10,000,000)" in tms  # every size and count has a maximum
    assert "n_hidden (integer, default" in tms and "[batched in sweeps]" not in tms.split("n_hidden")[1].splitlines()[0]
    bad = sptui("kinds", "tmz", root=artifacts)
    assert bad.returncode == 2 and 'unknown kind "tmz"' in bad.stderr


def test_kind_summaries_read_as_one_list():
    """`sptui kinds` is one list: each summary says what the kind is, starting in lower case as a noun phrase,
    unless it starts with a name (Neuroscope)."""
    from sptui.kinds import kind_names, load_kind

    names = ("Neuroscope",)
    for kind in kind_names():
        summary = load_kind(kind).SUMMARY
        first = summary.split()[0].rstrip(":")
        assert summary[0].islower() or first in names, f"{kind}: {summary!r}"
        assert not summary.endswith("."), f"{kind}: {summary!r}"


def test_show_priority_and_requeue_failed(artifacts):
    with Queue(artifacts) as q:
        a, b, c = q.submit(parse_text(tms_job("a", seeds=(1,)) + tms_job("b", seeds=(2,)) + tms_job("c", seeds=(3,)), "t.toml"))
        pid, start = own_identity()
        for _ in range(2):
            q.claim(pid, start)
        q.finish(a.id, "failed", exit_code=1, error="ValueError: boom")
        q.finish(b.id, "cancelled")
    shown = json.loads(sptui("show", "--json", a.run_id, root=artifacts, check=True).stdout)
    assert shown["state"] == "failed" and shown["error"] == "ValueError: boom" and shown["spec"]["kind"] == "tms"
    assert "ValueError: boom" in sptui("show", str(a.id), root=artifacts, check=True).stdout

    assert sptui("priority", c.run_id, "7", root=artifacts, check=True).stdout.strip() == f"{c.run_id}: priority 7"
    out = sptui("requeue", "--failed", root=artifacts, check=True).stdout
    assert out.strip() == f"{a.run_id}: queued"  # the cancelled one is left alone
    with Queue(artifacts) as q:
        assert [(j.name, j.state, j.priority) for j in q.list()] == [("a", "queued", 0), ("b", "cancelled", 0), ("c", "queued", 7)]
    assert sptui("requeue", root=artifacts).returncode == 2


def test_ls_piped_prints_one_whole_line_per_run_and_commands_take_job_names(artifacts):
    long_name = "a-rather-long-job-name-that-would-not-fit-an-eighty-column-table"
    with Queue(artifacts) as q:
        (job,) = q.submit(parse_text(tms_job(long_name), "t.toml"))
    lines = sptui("ls", root=artifacts, check=True).stdout.splitlines()
    assert len(lines) == 2 and job.run_id in lines[1] and lines[1].split()[3] == "queued"
    assert json.loads(sptui("show", "--json", long_name, root=artifacts, check=True).stdout)["run_id"] == job.run_id
    missing = sptui("show", "no-such-job", root=artifacts)
    assert missing.returncode == 2 and 'no run "no-such-job"' in missing.stderr and "job name" in missing.stderr


def test_show_says_who_runs_a_job_and_when_it_last_reported(artifacts):
    with Queue(artifacts) as q:
        (job,) = q.submit(parse_text(tms_job("watched"), "t.toml"))
        pid, start = own_identity()
        q.claim(pid, start)
        q.db.execute("UPDATE jobs SET heartbeat = heartbeat - 125")  # its last progress, two minutes ago
    out = sptui("show", job.run_id, root=artifacts, check=True).stdout
    assert f" executor: worker (pid {pid} on " in out
    assert " reported: 2m0" in out  # 2m05s ago, or a second more on a slow machine
    assert "   silent: no report for 2m0" in out and out.count(": a long step, or a hang") == 1  # as the app says
    assert "phase:" not in out  # in its steps
    shown = json.loads(sptui("show", "--json", job.run_id, root=artifacts, check=True).stdout)
    assert shown["executor"] == "worker" and shown["quiet_for"] >= 125


def test_an_artifacts_folder_that_cannot_be_one_is_one_line(tmp_path):
    a_file = tmp_path / "hostname"
    a_file.write_text("not a folder\n")
    job_file = tmp_path / "job.toml"
    job_file.write_text(tms_job("x"))
    for root, expected in ((a_file, f"{a_file} is a file, not a folder"),
                           (a_file / "below", f"{a_file} is a file, not a folder"),
                           (tmp_path / "ro" / "artifacts", "cannot make it (Permission denied)")):
        if root.parent.name == "ro":
            root.parent.mkdir()
            root.parent.chmod(0o500)
            if os.access(root.parent, os.W_OK):  # root ignores permissions: nothing to check there
                continue
        # a folder that cannot be made is the writing commands' problem; the reading ones say it is not there
        reading = root.parent.name == "ro"
        commands = [["submit", str(job_file)], ["batch", str(job_file)], ["tui"]] + ([] if reading else [["ls"], ["show", "1"]])
        for command in commands:
            result = sptui("--artifacts", str(root), *command, root=tmp_path)
            assert result.returncode == 2, (command, result.stderr)
            assert result.stderr.count("\n") == 1 and expected in result.stderr and "Traceback" not in result.stderr
    if os.path.isdir("/proc"):  # the case: a path the system will not make
        result = sptui("--artifacts", "/proc/nope", "submit", str(job_file), root=tmp_path)
        assert result.returncode == 2 and result.stderr.strip() == (
            "sptui: error: artifacts folder /proc/nope: cannot make it (No such file or directory); give "
            "--artifacts DIR or set SPTUI_ARTIFACTS")


def test_reading_commands_on_an_artifacts_folder_that_is_not_there_say_so_and_make_nothing(tmp_path):
    typo = tmp_path / "artifcats"
    listed = sptui("--artifacts", str(typo), "ls", root=tmp_path, check=True)
    assert listed.stdout.startswith(f"no runs in {typo}: no such folder") and not typo.exists()
    assert json.loads(sptui("--artifacts", str(typo), "ls", "--json", root=tmp_path, check=True).stdout) == []
    for command in (["show", "1"], ["logs", "1"], ["cancel", "1"], ["requeue", "1"], ["priority", "1", "2"],
                    ["recover"], ["report", "toy-models", "--out", str(tmp_path / "report")]):
        result = sptui("--artifacts", str(typo), *command, root=tmp_path)
        assert result.returncode == 2 and result.stderr == (
            f"sptui: error: artifacts folder {typo} does not exist: nothing has run there (give --artifacts DIR or "
            "set SPTUI_ARTIFACTS)\n"), (command, result.stderr)
    assert not typo.exists() and not (tmp_path / "report").exists()


def test_ls_lists_newest_first_with_filters_states_and_a_limit(artifacts):
    text = tms_job("grid-a", seeds=(1,)) + tms_job("grid-b", seeds=(2,)) + tms_job("other", seeds=(3,))
    with Queue(artifacts) as q:
        a, b, other = q.submit(parse_text(text, "t.toml"))
        (waits,) = q.submit(parse_text(tms_job("after-b", seeds=(4,)) + f'after = ["{b.run_id}"]\n', "t.toml"))
        q.claim(*own_identity())
        q.finish(a.id, "failed", error="boom")

    def ids(*args: str) -> list[str]:
        out = sptui("ls", *args, root=artifacts, check=True).stdout.splitlines()
        return [line.split()[1] for line in out[1:]]

    assert ids() == [waits.run_id, other.run_id, b.run_id, a.run_id]  # newest first
    assert ids("--limit", "2") == [waits.run_id, other.run_id]  # the newest two
    assert ids("GRID") == [b.run_id, a.run_id]  # a word: in the run id, name, kind or job file, any case
    assert ids("grid", "b") == [b.run_id]  # every word must match
    assert ids("--state", "failed", "--state", "waiting") == [waits.run_id, a.run_id]
    assert ids("--state", "queued", "--limit", "1") == [waits.run_id]  # a waiting job is queued too
    listed = sptui("ls", "--json", root=artifacts, check=True).stdout
    assert len(listed.splitlines()) == 6  # "[", one run a line, "]": grep finds a run's whole record
    rows = json.loads(listed)
    assert [r["run_id"] for r in rows] == ids() and rows[0]["waiting"] == f"waiting for {b.run_id}"
    assert sptui("ls", "nothing-like-this", root=artifacts, check=True).stdout.startswith("no runs match")
    assert json.loads(sptui("ls", "--json", "--state", "running", root=artifacts, check=True).stdout) == []
    bad = sptui("ls", "--state", "done", root=artifacts)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no state 'done'; states are queued" in bad.stderr
    assert sptui("ls", "--limit", "0", root=artifacts).returncode == 2


def test_listings_fit_a_terminal_and_stay_whole_in_a_pipe():
    from sptui.listing import Column, table_lines

    columns = [Column("id", right=True), Column("run id", shrink=True), Column("state")]
    rows = [["7", "0007-a-rather-long-run-id", ("failed", "red")], ["12", "0012-b", "queued"]]
    assert list(table_lines(columns, rows)) == [
        "id  run id                     state", " 7  0007-a-rather-long-run-id  failed", "12  0012-b                     queued"]
    narrow = list(table_lines(columns, rows, width=24))  # a terminal: the shrinkable column gives way
    assert narrow == ["id  run id        state", " 7  0007-a-rath…  failed", "12  0012-b        queued"]
    assert all(len(line) <= 24 for line in narrow)
    with_empty = [Column("id", right=True), Column("device"), Column("run id", shrink=True)]
    empty_rows = [["7", "", "0007-a-rather-long-run-id"]]
    assert list(table_lines(with_empty, empty_rows, width=29)) == ["id  run id", " 7  0007-a-rather-long-run-id"]
    assert list(table_lines(with_empty, empty_rows))[1] == " 7          0007-a-rather-long-run-id"  # a pipe keeps it
    coloured = list(table_lines(columns, rows, width=None, colour=True))
    assert coloured[1] == " 7  0007-a-rather-long-run-id  \x1b[31mfailed\x1b[0m"  # padding outside the colour


def test_commands_that_list_things_speak_json(artifacts, tmp_path):
    kinds = json.loads(sptui("kinds", "--json", root=artifacts, check=True).stdout)
    assert {"tms", "sae", "lm"} <= {k["kind"] for k in kinds}
    tms = json.loads(sptui("kinds", "tms", "--json", root=artifacts, check=True).stdout)
    dropout = [p for p in tms["params"] if p["name"] == "dropout"][0]
    assert dropout["default"] == 0.0 and dropout["batched_in_sweeps"] is True
    assert dropout["limits"] == {"ge": 0, "lt": 1} and dropout["range"] == ">= 0, < 1"
    steps = [p for p in tms["params"] if p["name"] == "steps"][0]
    assert steps["limits"] == {"ge": 1, "le": 10_000_000} and steps["range"] == ">= 1, <= 10,000,000"
    with Queue(artifacts) as q:
        a, b = q.submit(parse_text(tms_job("a", seeds=(1,)) + tms_job("b", seeds=(2,)) + 'after = ["a"]\n', "t.toml"))
    cancelled = json.loads(sptui("cancel", "--json", a.run_id, root=artifacts, check=True).stdout)
    assert cancelled == [{"run_id": a.run_id, "state": "cancelled", "what": "cancelled", "because_of": None},
                         {"run_id": b.run_id, "state": "cancelled", "what": "cancelled with it", "because_of": a.run_id}]
    requeued = json.loads(sptui("requeue", "--json", a.run_id, root=artifacts, check=True).stdout)
    assert [(r["run_id"], r["state"], r["waiting"]) for r in requeued] == [
        (a.run_id, "queued", None), (b.run_id, "queued", f"waiting for {a.run_id}")]


def test_one_duplicate_rule_for_submit_and_batch(artifacts, tmp_path):
    job_file = tmp_path / "dup.toml"
    job_file.write_text(tms_job("dup", seeds=(11,)))
    first = sptui("submit", str(job_file), root=artifacts, check=True).stdout.split()[0]
    for command in ("submit", "batch"):  # identical to a queued run: refused by both, in one line, nothing queued
        refused = sptui(command, str(job_file), root=artifacts)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, (command, refused.stderr)
        assert f'job "dup" is already in the queue as {first} (queued)' in refused.stderr and "--force" in refused.stderr
    with Queue(artifacts) as q:
        assert len(q.list()) == 1
        q.claim(*own_identity())
        q.finish(1, "succeeded")
    again = sptui("submit", str(job_file), root=artifacts, check=True)  # identical to an ended run: a new run, said
    assert f'note: job "dup" ran before as {first} (succeeded); queued again as a new run' in again.stderr
    assert sptui("submit", str(job_file), root=artifacts).returncode == 2  # and that one is queued now
    assert sptui("submit", "--force", str(job_file), root=artifacts).returncode == 0


def test_kinds_prints_defaults_as_a_job_file_writes_them_and_names_the_kind_meant(artifacts):
    lm = sptui("kinds", "lm", root=artifacts, check=True).stdout
    assert 'act_fn (one of "gelu_new", "gelu", "relu", "silu", default "gelu_new")' in lm  # TOML, not Python's 'x'
    assert "restrict_vocab (true/false, default true)" in lm and "max_stories (integer, default unset;" in lm
    assert 'sample_prompts (list of string, default ["Once upon a time, there was",' in lm
    assert "default '" not in lm and "default True" not in lm and "default None" not in lm
    bad = sptui("kinds", "tmz", root=artifacts)
    assert bad.returncode == 2 and bad.stderr.startswith('sptui: error: unknown kind "tmz" (did you mean "tms"?)')


def test_a_first_hours_mistakes_each_get_one_line_that_says_what_is_wrong(artifacts, tmp_path):
    """What a new user types wrong: a run whose folder was deleted, a queued run where a folder is needed, a
    typo'd or empty run name, a priority on a finished run, a command without its argument."""
    with Queue(artifacts) as q:
        done, waiting, dropped = q.submit(parse_text(tms_job("alpha", seeds=(1,)) + tms_job("beta", seeds=(2,))
                                                     + tms_job("gamma", seeds=(3,)), "t.toml"))
        q.claim(*own_identity())
        q.finish(done.id, "succeeded")  # its folder was never made: as if deleted
        q.cancel(dropped.id)  # cancelled before it ran: it never had a folder
    lines = {
        "deleted": sptui("export", "alpha", root=artifacts),
        "queued": sptui("export", "beta", root=artifacts),
        "never ran": sptui("export", "gamma", root=artifacts),
        "no log": sptui("logs", "gamma", root=artifacts),
        "typo": sptui("show", "alpah", root=artifacts),
        "empty": sptui("show", "", root=artifacts),
        "priority": sptui("priority", "alpha", "3", root=artifacts),
        "usage": sptui("batch", root=artifacts),
    }
    for what, result in lines.items():
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and not result.stdout, (what, result.stderr)
    assert f"is {done.run_id}, which is succeeded, but its run folder is missing (deleted or moved)" in lines["deleted"].stderr
    assert f"is {waiting.run_id}, which is still queued: it has no run folder yet" in lines["queued"].stderr
    assert f"is {dropped.run_id}, which is cancelled and never started, so it has no run folder" in lines["never ran"].stderr
    assert 'no run "alpah"' in lines["typo"].stderr and '(did you mean "alpha"?)' in lines["typo"].stderr
    assert f"run {dropped.run_id} (cancelled) never started, so it has no log" in lines["no log"].stderr
    assert "empty run reference" in lines["empty"].stderr
    assert f"run {done.run_id} has succeeded and will not run again" in lines["priority"].stderr
    assert lines["usage"].stderr == ("sptui batch: error: the following arguments are required: file "
                                     "(see sptui batch --help)\n")
    shown = sptui("show", "alpha", root=artifacts, check=True).stdout
    assert "needs:" not in shown and "[]" not in shown  # a run that waits for nothing has no needs line
    with Queue(artifacts) as q:  # when it was queued, started and ended, and how long it ran, as `ls` counts it
        job = q.get(done.id)
    for key, when in (("queued", job.created), ("started", job.started), ("ended", job.finished)):
        assert f"{key:>12}: {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(when))}\n" in shown, shown
    assert f"     elapsed: {_fmt_seconds(job.elapsed())}\n" in shown
    assert "started:" not in sptui("show", "beta", root=artifacts, check=True).stdout  # queued: not started
    queued_log = sptui("logs", "beta", root=artifacts, check=True)  # nothing to print yet, and it says so
    assert not queued_log.stdout and f"note: {waiting.run_id} is queued and has no log yet" in queued_log.stderr
    assert sptui("priority", "beta", "3", root=artifacts, check=True).stdout.strip() == f"{waiting.run_id}: priority 3"


def test_submit_refuses_a_device_its_jobs_could_never_run_on(artifacts, tmp_path):
    """As batch does: not a queued job that fails later with torch's own error in the worker."""
    import torch

    job_file = tmp_path / "dev.toml"
    job_file.write_text(tms_job("dev"))
    typo = sptui("submit", "--device", "gpu", str(job_file), root=artifacts)
    assert typo.returncode == 2 and typo.stderr == (
        'sptui: error: --device gpu: expected "cpu", "cuda", "cuda:N" or "auto"\n')
    if not torch.cuda.is_available():
        no_gpu = sptui("submit", "--device", "cuda", str(job_file), root=artifacts)
        assert no_gpu.returncode == 2 and "no CUDA GPU is visible" in no_gpu.stderr and no_gpu.stderr.count("\n") == 1
    with Queue(artifacts) as q:
        assert q.list() == []
    assert sptui("submit", "--device", "cpu", str(job_file), root=artifacts, check=True).stdout.strip() == "0001-dev"


def test_validate_gives_each_jobs_memory_estimate_and_says_what_is_not_known_yet(tmp_path):
    from sptui.kinds import tms

    grid = tms_job("grid", seeds=(0, 1, 2), probability=None, sweep="feature_probability = [1.0, 0.1]")
    sae = '\n[[job]]\nkind = "sae"\nname = "sae-of-grid"\nsource = "grid"\nd_sae = 8\nsteps = 10\n'
    path = tmp_path / "jobs.toml"
    path.write_text(grid + sae)
    root = tmp_path / "artifacts"
    (planned_grid, planned_sae) = json.loads(sptui("validate", "--json", str(path), root=root, check=True).stdout)
    spec = parse_text(grid, "g.toml")[0]
    expected = tms.memory_estimate(spec.instances())
    assert planned_grid["memory"]["bytes"] == expected.bytes > 0 and planned_grid["memory"]["unknown"] == ""
    assert planned_sae["memory"]["unknown"]  # the source's sizes are read from its files, once it has run
    text = sptui("validate", str(path), root=root, check=True).stdout
    assert f"memory: {expected.describe()}\n" in text
    assert "memory: " + planned_sae["memory"]["text"] in text and "not known before the run starts" in text
    assert not root.exists()
