"""A refused key says why once, in its screen's status line, at 80 columns: no toast over that line (sptui.tui.
feedback.Says). The result browsers' keys (a grid the run did not save), the worker panel's, and a browser's
export with nothing to draw, which writes no file."""

from __future__ import annotations

from pathlib import Path

from sptui.runs import RunDir, save_arrays
from sptui.tui.browsers.ablation import AblationBrowser
from sptui.tui.screens.worker import WorkerInfo, WorkerScreen

from .browser_host import Host, _open


def status_of(screen, line: str = "#browser-status") -> tuple[str, bool]:
    widget = screen.query_one(line)
    return str(widget.render()), widget.has_class("error")


async def test_ablation_keys_for_grids_the_run_did_not_save_say_so_in_the_status_line(tmp_path):
    import torch

    from sptui.science import addition as A
    from sptui.science import head_analysis as HA

    torch.manual_seed(0)
    model = A.build_model(A.model_config(n_digits=2, n_heads=2, d_head=2, d_model=8, seed=0))
    grids = {k: v for k, v in HA.ablation_grid(model, 2).items() if not k.startswith("full")}
    run = RunDir(tmp_path / "run-1")
    run.create('[[job]]\nkind = "addition"\nname = "tiny"\n')
    save_arrays(run.results / "ablation.safetensors", grids)  # an older run's file: no full-model grid
    app = Host(AblationBrowser(run.root))
    async with app.run_test(size=(80, 24)) as pilot:
        await _open(app, pilot)
        screen = app.browser
        assert screen.data is not None and screen.data.full is None
        await pilot.press("f")
        await pilot.pause()
        assert status_of(screen) == ("this run saved no full-model grid", True)
        await pilot.press("]")  # one model: information, not an error
        await pilot.pause()
        assert status_of(screen) == ("a single model: no other seeds in this run", False)
        assert list(app._notifications) == []


def worker_info(workers: list) -> WorkerInfo:
    return WorkerInfo(workers=workers, running={}, started_here=set(), log=Path("worker.log"), device="cpu")


async def test_the_worker_panel_says_a_refused_key_in_its_own_line():
    app = Host(WorkerScreen(worker_info([])))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("a")  # stop after jobs, with no worker running
        await pilot.pause()
        assert status_of(app.browser, "#status") == ("no worker is running", True)
        assert list(app._notifications) == [] and app.screen is app.browser  # refused: the panel stays
    alive = {"pid": 4242, "device": "cpu", "slots": 1, "started": 0.0, "responding": True, "silent_for": 0.0}
    app = Host(WorkerScreen(worker_info([alive])))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("s")  # start a second one
        await pilot.pause()
        assert status_of(app.browser, "#status") == ("a worker is already running", True)
        assert list(app._notifications) == []


async def test_exporting_the_training_tab_of_a_run_with_no_metrics_writes_nothing_and_says_so(tmp_path_factory):
    from sptui.tui.browsers.toy import ToyBrowser

    from .test_browsers_toy import _run

    run = _run(tmp_path_factory, '[[job]]\nkind = "tms"\nname = "quiet"\nn_features = 5\nn_hidden = 2\nsteps = 20\n'
               "batch_size = 32\neval_batch = 64\nlog_points = 2\n", "quiet")
    run.metrics.write_text("")  # a run that logged no metrics (an older one, or its file lost)
    before = sorted(p.name for p in run.plots.glob("*")) if run.plots.exists() else []
    app = Host(ToyBrowser(run.root))
    async with app.run_test(size=(80, 24)) as pilot:
        await _open(app, pilot)
        await pilot.press("4", "e")
        await _open(app, pilot)  # the export runs in a worker
        assert app.browser.tab == "training"
        assert status_of(app.browser) == ("nothing to export on this tab: this run logged no metrics", True)
        assert app.browser.last_export is None and list(app._notifications) == []
    assert (sorted(p.name for p in run.plots.glob("*")) if run.plots.exists() else []) == before
