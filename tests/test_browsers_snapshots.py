"""Snapshots of each result browser at a fixed size, on small results written from fixed numpy arrays (and,
for the Neuroscope, a tiny scan of a seeded random model) so the pictures do not depend on training noise.

Update after an intended change: python -m pytest tests/test_browsers_snapshots.py --snapshot-update
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from textual.app import App

from sptui.runs import RunDir, atomic_write_json, atomic_write_text, save_arrays
from sptui.tui.browsers import browser_for
from sptui.tui.browsers.projections import ProjectionsBrowser

SIZE = (120, 36)


class Host(App):
    def __init__(self, make_screen):
        super().__init__()
        self.make_screen = make_screen

    def on_mount(self) -> None:
        self.push_screen(self.make_screen())


def keys(*presses):
    async def run_before(pilot):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        for key in presses:
            await pilot.press(key)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    return run_before


def new_run(tmp_path, kind: str, extra: str = "") -> RunDir:
    run = RunDir(tmp_path / "runs" / "0007-snap")
    run.create(f'[[job]]\nkind = "{kind}"\nname = "snap"\n{extra}')
    return run


@pytest.fixture
def addition_run(tmp_path):
    rng = np.random.default_rng(0)
    a, b = np.meshgrid(np.arange(10), np.arange(10), indexing="ij")
    per_head = np.stack([np.cos((a * (h % 5 + 1) + b * (h % 3 + 1)) / 3.0) * (1 + h / 8) for h in range(32)])
    baseline = 0.3 * np.sin(a / 2.0) - 0.2
    run = new_run(tmp_path, "addition")
    save_arrays(run.results / "ablation.safetensors", {
        "per_head": per_head.astype(np.float32), "baseline": baseline.astype(np.float32),
        "full": (per_head.sum(0) / 4).astype(np.float32),
        "contribution": (per_head - baseline).astype(np.float32),
        "heads_needed": ((a + b) % 7).astype(np.int32)})
    angles = 2 * np.pi * np.arange(12) / 10
    base = np.stack([np.cos(angles), np.sin(angles)], -1)  # [12 tokens, 2]
    qkv = {name: np.stack([np.stack([base * (1 + p / 19) + rng.normal(0, 0.05, base.shape) for p in range(19)])
                           for _ in range(32)]).astype(np.float32) for name in ("q", "k", "v")}
    save_arrays(run.results / "projections.safetensors", {**qkv, "o": qkv["q"][:, 0, :10].copy(),
                                                          "o_bias": np.zeros(10, np.float32)})
    return run


@pytest.fixture
def toy_run(tmp_path):
    rng = np.random.default_rng(1)
    run = new_run(tmp_path, "tms")
    grid = [{"feature_probability": p, "dropout": d} for p in (1.0, 0.1) for d in (0.0, 0.3)]
    angles = 2 * np.pi * np.arange(5) / 5
    W = np.stack([np.stack([np.cos(angles + i), np.sin(angles + i)], -1) * (0.5 + 0.2 * i) for i in range(4)])
    save_arrays(run.results / "model.safetensors", {"W": W.astype(np.float32),
                                                     "b": rng.normal(0, 0.2, (4, 5)).astype(np.float32)})
    records = [{"instance": i, "grid": g, "params": g,
                "metrics": {"dims_per_feature": 0.4 + 0.1 * i, "represented": 5 - i, "loss": 0.1 / (i + 1),
                            "feature_norm": np.linalg.norm(W[i], axis=-1).tolist(),
                            "feature_interference": np.linspace(0, 1.2, 5).tolist()}} for i, g in enumerate(grid)]
    atomic_write_json(run.results / "instances.json", records)
    lines = [json.dumps({"step": s, "time": 0, "split": "test", "loss": [0.2 / (1 + s / 50 * (i + 1)) for i in range(4)]})
             for s in range(0, 201, 20)]
    atomic_write_text(run.metrics, "\n".join(lines) + "\n")
    return run


@pytest.fixture
def geometry_run(tmp_path):
    from tests.test_browsers_cosine import write_geometry

    run = new_run(tmp_path, "neuron-geometry", 'model = "m"\nlayer = 1\n')
    write_geometry(run)
    return run


@pytest.fixture
def neuroscope_run(tmp_path):
    from tests.test_neuroscope import job, make_corpus, make_model, run_job

    model_dir = make_model(tmp_path / "model")
    corpus = make_corpus(tmp_path / "stories.txt", n=30)
    run = run_job(job(model_dir, corpus, token_budget=2000), tmp_path / "runs" / "0008-snap")
    summary = json.loads((run.results / "summary.json").read_text())
    atomic_write_json(run.results / "summary.json", {**summary, "model": "tiny-random-2L"})  # no tmp path on screen
    return run


def test_ablation_head(addition_run, snap_compare):
    app = Host(lambda: browser_for("addition", addition_run.root))
    assert snap_compare(app, terminal_size=SIZE, run_before=keys("right", "right", "down", "j", "l"))


def test_ablation_all_heads(addition_run, snap_compare):
    app = Host(lambda: browser_for("addition", addition_run.root))
    assert snap_compare(app, terminal_size=SIZE, run_before=keys("a"))


def test_projections(addition_run, snap_compare):
    app = Host(lambda: ProjectionsBrowser(addition_run.root, head=3))
    assert snap_compare(app, terminal_size=SIZE, run_before=keys("down"))


def test_toy_weights(toy_run, snap_compare):
    app = Host(lambda: browser_for("tms", toy_run.root))
    assert snap_compare(app, terminal_size=SIZE, run_before=keys("]"))


def test_toy_geometry(toy_run, snap_compare):
    app = Host(lambda: browser_for("tms", toy_run.root))
    assert snap_compare(app, terminal_size=SIZE, run_before=keys("2"))


def test_toy_sweep(toy_run, snap_compare):
    app = Host(lambda: browser_for("tms", toy_run.root))
    assert snap_compare(app, terminal_size=SIZE, run_before=keys("3"))


def test_toy_sweep_80x24(toy_run, snap_compare):
    """At 80x24 the sweep tab shows one view at full height (v: the other): here the D* plot."""
    app = Host(lambda: browser_for("tms", toy_run.root))
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys("3", "v"))


def test_cosine_blocks(geometry_run, snap_compare):
    app = Host(lambda: browser_for("neuron-geometry", geometry_run.root))
    assert snap_compare(app, terminal_size=SIZE, run_before=keys("n", "b"))


def test_neuroscope(neuroscope_run, snap_compare):
    app = Host(lambda: browser_for("neuroscope", neuroscope_run.root))
    assert snap_compare(app, terminal_size=SIZE, run_before=keys("s"))
