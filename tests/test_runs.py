"""The run folder's shared pieces: atomic writes, incremental metrics reading, run references."""

import json

import numpy as np
import pytest

from sptui.errors import SptuiError
from sptui.runs import MetricsTail, MetricsWriter, RunDir, atomic_write_text, find_run, load_arrays, save_arrays


def test_atomic_write_replaces_whole_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "a" / "facts.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["facts.json"]


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


def test_metrics_nan_is_written_as_null(tmp_path):
    writer = MetricsWriter(tmp_path / "m.jsonl")
    writer.write(1, "test", {"loss": [0.5, float("nan")], "acc": float("inf")})
    record = json.loads((tmp_path / "m.jsonl").read_text())
    assert record["loss"] == [0.5, None] and record["acc"] is None


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
