"""The run folder's shared pieces: atomic writes, incremental metrics reading, run references."""

import json
from pathlib import Path

import numpy as np
import pytest

from sptui.errors import SptuiError
from sptui.runs import (
    FileTail,
    MetricsTail,
    MetricsWriter,
    RunDir,
    atomic_write_bytes,
    atomic_write_text,
    find_run,
    load_arrays,
    save_arrays,
)


def test_atomic_write_replaces_whole_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "a" / "facts.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["facts.json"]


KILLED_BEFORE_THE_RENAME = """
import os, signal, sys
from sptui.runs import atomic_write_bytes

os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # kill -9 once the new bytes are written, not yet in place
atomic_write_bytes(sys.argv[1], b"new " * 250_000)
"""


def test_a_writer_killed_mid_write_leaves_the_old_file_whole(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "facts.json"
    atomic_write_text(target, "old")
    done = subprocess.run([sys.executable, "-c", KILLED_BEFORE_THE_RENAME, str(target)], capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr
    assert target.read_text() == "old"  # what a reader finds under the name is the old file, whole
    leftovers = [p.name for p in tmp_path.iterdir() if p != target]
    assert all(name.startswith(".facts.") for name in leftovers)  # only a hidden temp file, never the name


def test_a_write_that_fails_before_the_rename_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "facts.json"
    atomic_write_text(target, "old")

    def no_space(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", no_space)
    with pytest.raises(OSError, match="No space left on device") as failed:
        atomic_write_text(target, "new" * 1000)
    assert failed.value.filename == str(target)  # the error names the file being written
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["facts.json"]


def test_a_reader_never_sees_a_partial_file(tmp_path):
    import threading

    target = tmp_path / "model.safetensors"
    versions = [bytes([65 + i]) * (2 << 20) for i in range(2)]
    atomic_write_bytes(target, versions[0])
    stop, reads, bad = threading.Event(), [0], []

    def read_all_the_time():
        while not stop.is_set():
            data = target.read_bytes()
            reads[0] += 1
            if data not in versions:
                bad.append(len(data))

    reader = threading.Thread(target=read_all_the_time)
    reader.start()
    try:
        for i in range(30):
            atomic_write_bytes(target, versions[i % 2])
    finally:
        stop.set()
        reader.join()
    assert reads[0] > 0 and bad == []  # never empty, short or mixed


def test_metrics_tail_reads_only_new_complete_lines_and_restarts_after_a_rewrite(tmp_path):
    path = tmp_path / "metrics.jsonl"
    writer = MetricsWriter(path)
    tail = MetricsTail(path)
    writer.write(1, "train", {"loss": 1.0})
    writer.write(2, "train", {"loss": [0.5, float("nan")]})
    assert [r["step"] for r in tail.poll()] == [1, 2]
    assert tail.poll() == []
    with open(path, "a") as f:
        f.write('{"step": 3, "split": "train", "lo')  # a line being written: not returned yet
    assert tail.poll() == []
    with open(path, "a") as f:
        f.write('ss": 0.25}\n')
    (record,) = tail.poll()
    assert record["loss"] == 0.25
    offset = tail.offset
    path.write_text(json.dumps({"step": 1, "split": "train", "loss": 9.0}) + "\n")  # resume rewrote the file
    assert [r["loss"] for r in tail.poll()] == [9.0] and tail.reset and tail.offset < offset
    assert json.loads(path.read_text().splitlines()[0])["loss"] == 9.0


def test_file_tail_returns_whole_lines_once_and_the_rest_at_the_end(tmp_path):
    path = tmp_path / "log.txt"
    tail = FileTail(path)
    assert tail.poll() == ""  # no file yet
    path.write_bytes("one\ntwo é\nthr".encode())
    assert tail.poll_lines() == ["one", "two é"]
    assert tail.poll() == ""  # the unfinished line waits for its newline
    with open(path, "ab") as f:
        f.write(b"ee\nfour")
    assert tail.poll() == "three\n"
    assert tail.rest() == "four" and tail.poll() == "" and tail.rest() == ""
    path.write_text("new\n")  # rewritten, shorter: read again from the start
    assert tail.poll() == "new\n" and tail.reset
    assert tail.poll() == "" and not tail.reset


def test_file_tail_from_the_end_starts_at_a_line_boundary(tmp_path):
    path = tmp_path / "log.txt"
    path.write_text("".join(f"line {i:03d}\n" for i in range(100)))  # 9 bytes a line
    assert FileTail(path, last_bytes=30).poll_lines() == ["line 097", "line 098", "line 099"]
    assert FileTail(path, last_bytes=27).poll_lines() == ["line 097", "line 098", "line 099"]  # exactly on a line
    assert FileTail(path, last_bytes=10_000).poll_lines()[0] == "line 000"
    cut = FileTail(path, last_bytes=5)  # inside the last line: nothing whole to show yet
    assert cut.poll() == ""
    with open(path, "a") as f:
        f.write("line 100 goes on")
    assert cut.poll() == ""
    inside = FileTail(path, last_bytes=3)  # starts inside a line that grows without a newline: not shown
    assert inside.poll() == "" and inside.poll() == ""
    with open(path, "a") as f:
        f.write("\nline 100\n")
    assert cut.poll_lines() == ["line 100 goes on", "line 100"]
    assert inside.poll_lines() == ["line 100"]


def test_metrics_nan_is_written_as_null(tmp_path):
    writer = MetricsWriter(tmp_path / "m.jsonl")
    writer.write(1, "test", {"loss": [0.5, float("nan")], "acc": float("inf")})
    record = json.loads((tmp_path / "m.jsonl").read_text())
    assert record["loss"] == [0.5, None] and record["acc"] is None


def test_dumps_writes_numpy_torch_and_non_finite_values_as_plain_json():
    import torch

    from sptui.runs import dumps

    obj = {"a": np.float32(0.5), "b": np.array([1.0, np.nan, -np.inf]), "c": torch.tensor([[1, 2]]),
           "d": (np.int64(3), np.bool_(True), None, "x"), "e": {"f": [float("inf"), 2]}, "g": Path("/tmp/x")}
    text = dumps(obj)
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": 0.5, "b": [1.0, None, None], "c": [[1, 2]], "d": [3, True, None, "x"],
                                "e": {"f": [None, 2]}, "g": "/tmp/x"}
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        dumps({"x": object()})


def test_arrays_round_trip_and_corruption_is_a_clear_error(tmp_path):
    path = tmp_path / "x.safetensors"
    save_arrays(path, {"W": np.arange(6, dtype=np.float32).reshape(2, 3)})
    assert load_arrays(path)["W"].tolist() == [[0, 1, 2], [3, 4, 5]]
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(SptuiError, match="corrupt safetensors file"):
        load_arrays(path)
    with pytest.raises(SptuiError, match="missing"):
        load_arrays(tmp_path / "nope.safetensors")


def make_run(root, run_id, kind="tms", model=False):
    run = RunDir(root / "runs" / run_id)
    run.create(f'[[job]]\nkind = "{kind}"\nname = "{run_id.split("-", 1)[1]}"\npriority = 0\n')
    if model:
        (run.results / "model.safetensors").write_bytes(b"")
    return run


def test_find_run_by_folder_id_prefix_or_job_name(tmp_path):
    a = make_run(tmp_path, "0001-lm-tiny", model=True)
    make_run(tmp_path, "0002-lm-tiny")  # newer, still training: no model
    c = make_run(tmp_path, "0013-grid")
    assert find_run(str(c.root), tmp_path).root == c.root.resolve()
    assert find_run(str(c.results), tmp_path).root == c.root.resolve()
    assert find_run("0013-grid", tmp_path).root == c.root.resolve()
    assert find_run("0013", tmp_path).root == c.root.resolve()
    assert find_run("lm-tiny", tmp_path).run_id == "0002-lm-tiny"  # newest of that job
    assert find_run("lm-tiny", tmp_path, prefer="results/model.safetensors").root == a.root.resolve()
    with pytest.raises(SptuiError, match="matches several runs"):
        find_run("000", tmp_path)
    with pytest.raises(SptuiError, match='no run "zzz"'):
        find_run("zzz", tmp_path)
    with pytest.raises(SptuiError, match="is a tms run, not addition"):
        find_run("0013", tmp_path, kind="addition")
