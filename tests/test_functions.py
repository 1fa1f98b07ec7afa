"""MLPs learning target functions: exact ReLU solutions, training to low loss, the kind's results."""

import json

import pytest
import torch

from sptui import runs
from sptui.context import Hooks
from sptui.kinds import load_kind
from sptui.science import functions as F
from sptui.science.batched import TrainSettings
from tests.helpers import KindRunError, run_kind


def sample(name, n=4096, seed=0):
    target = F.TARGETS[name]
    u = torch.rand(1, n, target.inputs, generator=torch.Generator().manual_seed(seed))
    return F.inputs_from_uniforms(u, target)


@pytest.mark.parametrize("name", ["abs", "and", "or", "max_abs"])
def test_exact_relu_solutions_have_zero_error(name):
    weights = F.exact_relu_solution(name, width=6)
    x = sample(name)
    assert F.mse(weights, x, F.TARGETS[name], "relu").item() < 1e-12
    # and they are not exact with GeLU units, so the test distinguishes the activations
    assert F.mse(weights, x, F.TARGETS[name], "gelu").item() > 1e-4


def test_targets_compute_the_named_functions():
    corners = torch.tensor([[[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]])
    assert F.TARGETS["and"].fn(corners).tolist() == [[0, 0, 0, 1]]
    assert F.TARGETS["or"].fn(corners).tolist() == [[0, 1, 1, 1]]
    pts = torch.tensor([[[-0.5, 0.2], [0.1, -0.9]]])
    assert F.TARGETS["max_abs"].fn(pts)[0].tolist() == pytest.approx([0.5, 0.9])
    assert set(sample("and").unique().tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("name", ["abs", "or"])
def test_relu_mlp_learns_piecewise_linear_targets(name):
    settings = TrainSettings(steps=1500, batch_size=256, lr_schedule="cosine", eval_batch=2048)
    trainer = F.FunctionTrainer(name, "relu", 8, seeds=[0, 1], lr=[1e-2, 1e-2], weight_decay=[0.0, 0.0], settings=settings)
    before = trainer.evaluate()
    for _ in range(settings.steps):
        trainer.step()
    after = trainer.evaluate()
    assert (after < 2e-3).all() and (after < before / 20).all()


def test_functions_kind_writes_weights_function_grid_and_plots(tmp_path):
    run = run_kind("functions", dict(target="max_abs", activation="gelu", width=6, steps=60, batch_size=64,
                                     log_points=3), tmp_path, sweep={"seed": [0, 1]})
    model = runs.load_arrays(run.results / "model.safetensors")
    assert model["W1"].shape == (2, 6, 2) and model["W2"].shape == (2, 1, 6)
    assert torch.allclose(torch.from_numpy(model["combined"]), torch.from_numpy(model["W2"] @ model["W1"]))
    assert not torch.equal(torch.from_numpy(model["W1"][0]), torch.from_numpy(model["W1"][1]))  # own init per seed
    grid = runs.load_arrays(run.results / "function.safetensors")
    assert grid["learned"].shape == (2, 101, 101) and grid["target"].shape == (101, 101)
    assert len(json.loads((run.results / "instances.json").read_text())) == 2
    names = {p.name for p in load_kind("functions").render(run)}
    assert names == {"weights.png", "function.png"}


def test_functions_plots_draw_every_instance_on_sheets_or_say_which_they_leave_out(tmp_path, monkeypatch):
    """15 seeds: weights.png and function.png hold 6 instances a sheet, the next sheets named by the instances
    they hold, each instance on exactly one sheet, each sheet's title saying which of the 15 it holds. With room
    for only 2 sheets (the limit lowered), the titles and the run log say which instances are not drawn and
    where they are."""
    from sptui.plots import functions as P
    from tests.figure_checks import checking_saves

    def sheets(render):
        with checking_saves() as seen:
            run = render()
        shown = {p.name: " ".join(" ".join(texts).split()) for p, texts in seen.texts.items()}
        assert not any(seen.by_path.values()), seen.report()
        return run, shown

    monkeypatch.setattr(P, "MAX_SHEETS", 2)
    run, shown = sheets(lambda: run_kind("functions", dict(target="max_abs", activation="relu", width=4, steps=20,
                                                           batch_size=32, log_points=2), tmp_path,
                                         sweep={"seed": list(range(15))}, render=True))
    assert set(shown) == {"weights.png", "weights_instances6-11.png", "function.png", "function_instances6-11.png"}
    for name in shown:
        assert "of 15; 12 drawn on 2 sheets, 12-14 only in results/)" in shown[name], shown[name]
    assert "(instances 6-11 of 15;" in shown["weights_instances6-11.png"]
    assert "instances 0-11 of 15 drawn" in run.log.read_text()
    assert "instances 12-14 are in results/model.safetensors" in run.log.read_text()

    monkeypatch.undo()
    _, shown = sheets(lambda: load_kind("functions").render(run))
    assert set(shown) == {f"{what}{suffix}.png" for what in ("weights", "function")
                          for suffix in ("", "_instances6-11", "_instances12-14")}
    assert "(instances 12-14 of 15)" in shown["weights_instances12-14.png"]
    assert not any("only in results" in text for text in shown.values())
    for what in ("weights", "function"):  # every seed's panel title on exactly one sheet
        holding = [[name for name, text in shown.items() if name.startswith(what) and f"seed {k}, lr" in text]
                   for k in range(15)]
        assert all(len(names) == 1 for names in holding), holding


def test_functions_kind_resumes_to_the_same_weights(tmp_path):
    params = dict(steps=120, batch_size=32, log_points=12, checkpoint_every=40)

    class CancelAt60(Hooks):
        seen = 0

        def progress(self, step, total, values):
            self.seen = max(self.seen, step)

        def cancel_requested(self):
            return self.seen >= 60

    whole = run_kind("functions", params, tmp_path, run_id="whole")
    with pytest.raises(KindRunError, match="cancelled"):
        run_kind("functions", params, tmp_path, run_id="broken", hooks=CancelAt60())
    broken = run_kind("functions", params, tmp_path, run_id="broken")
    steps = [r["step"] for r in broken.read_metrics() if r["split"] == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == 120  # resumed at the checkpoint, not retrained from step 0
    a = runs.load_arrays(whole.results / "model.safetensors")["W1"]
    b = runs.load_arrays(broken.results / "model.safetensors")["W1"]
    assert torch.allclose(torch.from_numpy(a), torch.from_numpy(b), atol=1e-6)
