"""Computation in superposition (|x_i| and U-AND): metrics on constructed weights, data, trained-together == alone,
the kind's results and plots, and the published dense-vs-sparse reading at a small scale."""

import json

import pytest
import torch

from sptui import runs
from sptui.kinds import load_kind
from sptui.science import computation as C
from sptui.science import computation_metrics as M
from sptui.science.batched import TrainSettings
from tests.helpers import run_kind

# ---------------------------------------------------------------- metrics on constructed cases

def test_features_per_neuron_on_constructed_weights():
    W1 = torch.tensor([[1.0, 0.0, 0.0],     # dedicated ReLU(x_0)
                       [0.0, -2.0, 0.0],    # dedicated ReLU(-x_1): negative weights read the feature too
                       [1.0, 1.0, 0.0],     # dedicated AND(0, 1): two features
                       [1.0, 0.3, 0.0],     # 1 / 1.09 >= 0.9: monosemantic
                       [1.0, 0.5, 0.0],     # 1 / 1.25 < 0.9: two
                       [1.0, 1.0, 1.0],     # three
                       [0.0, 0.0, 0.0]])    # no input weight
    assert M.features_per_neuron(W1).tolist() == [1, 1, 2, 1, 2, 3, 0]
    alive = torch.tensor([True, True, True, True, True, False, True])  # neuron 5 never fires: dead
    assert M.neuron_counts(M.features_per_neuron(W1), alive) == {
        "monosemantic": 3, "two_features": 2, "three_or_more": 0, "dead": 2}


def dedicated_abs(n: int) -> dict[str, torch.Tensor]:
    """|x_i| = ReLU(x_i) + ReLU(-x_i): 2n neurons, exact."""
    W1 = torch.cat([torch.eye(n), -torch.eye(n)])[None]
    W2 = torch.cat([torch.eye(n), torch.eye(n)], dim=1)[None]
    return {"W1": W1, "b1": torch.zeros(1, 2 * n), "W2": W2, "b2": torch.zeros(1, n)}


def dedicated_uand(n: int) -> dict[str, torch.Tensor]:
    """AND(i, j) = ReLU(b_i + b_j - 1): one neuron per pair, exact."""
    ij = C.pairs(n)
    W1 = torch.zeros(1, len(ij), n)
    W1[0, torch.arange(len(ij)), ij[:, 0]] = 1
    W1[0, torch.arange(len(ij)), ij[:, 1]] = 1
    return {"W1": W1, "b1": -torch.ones(1, len(ij)), "W2": torch.eye(len(ij))[None], "b2": torch.zeros(1, len(ij))}


def evaluate(task, weights, n, p, batch=20000):
    u = torch.rand(1, batch, 2 * n if task == "abs" else n, generator=torch.Generator().manual_seed(0))
    x = C.inputs_from_uniforms(task, u, torch.tensor([[[p]]]))
    _, y = C.forward(weights, torch.ones(1, weights["W1"].shape[1]), x)
    return M.output_errors(y, C.targets(task, x), C.active(task, x)), x


@pytest.mark.parametrize("task,build", [("abs", dedicated_abs), ("uand", dedicated_uand)])
def test_dedicated_solutions_have_zero_error_and_their_known_neuron_counts(task, build):
    n = 5
    weights = build(n)
    errors, _ = evaluate(task, weights, n, p=0.3)
    assert errors["mse"].abs().max() < 1e-12 and errors["fvu"].abs().max() < 1e-10
    assert M.computed(errors["fvu"]).all()
    k = M.features_per_neuron(weights["W1"][0])
    assert k.tolist() == [1 if task == "abs" else 2] * weights["W1"].shape[1]


def test_half_of_abs_and_nothing_are_not_computed():
    n = 4
    half = dedicated_abs(n)
    half["W2"][0, :, n:] = 0  # only ReLU(x_i): the negative half of |x_i| is missing
    errors, x = evaluate("abs", half, n, p=0.05, batch=200000)
    # closed form: mse = p * E[x^2; x < 0] = p / 6, var(|x|) = p / 3 - p^2 / 4
    p = 0.05
    assert errors["fvu"][0] == pytest.approx(torch.full((n,), (p / 6) / (p / 3 - p * p / 4)), rel=0.05)
    assert errors["mse_on"][0] == pytest.approx(torch.full((n,), 1 / 6), rel=0.05)
    assert not M.computed(errors["fvu"]).any() and M.computed(errors["fvu"], M.PARTLY).all()
    constant = {k: torch.zeros_like(v) for k, v in half.items()}
    constant["b2"] += 0.4  # a bias alone computes nothing, whatever the constant
    errors, _ = evaluate("abs", constant, n, p=1.0)
    assert (errors["fvu"] >= 1.0).all() and not M.computed(errors["fvu"], M.PARTLY).any()


def test_data_presence_targets_and_importance():
    p = torch.tensor([[[0.2]]])
    u = torch.rand(1, 50000, 8, generator=torch.Generator().manual_seed(1))
    x = C.inputs_from_uniforms("abs", u, p)
    assert x.shape == (1, 50000, 4)
    assert (x != 0).float().mean().item() == pytest.approx(0.2, abs=0.01)
    assert x.min() >= -1 and x.max() <= 1 and (x < -0.5).any()
    b = C.inputs_from_uniforms("uand", u, p)
    assert set(b.unique().tolist()) == {0.0, 1.0}
    t = C.targets("uand", torch.tensor([[1.0, 0.0, 1.0]]))
    assert C.pairs(3).tolist() == [[0, 1], [0, 2], [1, 2]] and t.tolist() == [[0.0, 1.0, 0.0]]
    assert C.importance("abs", 3, 0.5).tolist() == [1.0, 0.5, 0.25]
    assert C.importance("uand", 4, 0.5).tolist() == [1.0] * 6


# ---------------------------------------------------------------- batched training

SETTINGS = TrainSettings(steps=60, batch_size=64, lr_schedule="cosine", eval_batch=256)


@pytest.mark.parametrize("task", ["abs", "uand"])
def test_trained_together_equals_trained_alone(task):
    """Sparsity, width and seed swept as one model: each instance ends where it ends alone."""
    instances = [C.Instance(0.5, 6, seed=0), C.Instance(0.1, 3, seed=0), C.Instance(0.1, 6, seed=1, lr=1e-2)]
    together = C.ComputationTrainer(task, 5, 0.9, instances, SETTINGS)
    for _ in range(SETTINGS.steps):
        together.step()
    for k, inst in enumerate(instances):
        alone = C.ComputationTrainer(task, 5, 0.9, [inst], SETTINGS)
        for _ in range(SETTINGS.steps):
            alone.step()
        m = inst.n_hidden
        assert torch.allclose(together.weights["W1"][k, :m], alone.weights["W1"][0], atol=1e-5)
        assert torch.allclose(together.weights["W2"][k, :, :m], alone.weights["W2"][0], atol=1e-5)
        assert torch.allclose(together.evaluate()[k], alone.evaluate()[0], rtol=1e-4)
    # the masked neurons of the narrow instance stay out of its function
    assert together.weights["W2"][1, :, 3:].abs().max() == 0


def test_training_lowers_the_importance_weighted_loss():
    settings = TrainSettings(steps=300, batch_size=256, lr_schedule="cosine", eval_batch=2048)
    trainer = C.ComputationTrainer("abs", 4, 0.9, [C.Instance(0.5, 8, lr=1e-2)], settings)
    before = trainer.evaluate()
    for _ in range(settings.steps):
        trainer.step()
    assert trainer.evaluate() < before / 3


# ---------------------------------------------------------------- the kind

def test_computation_kind_writes_results_and_plots(tmp_path):
    run = run_kind("computation", dict(task="uand", n_features=4, steps=40, batch_size=64, eval_batch=512,
                                       log_points=2), tmp_path,
                   sweep={"n_hidden": [2, 6], "feature_probability": [0.5, 0.2]})
    model = runs.load_arrays(run.results / "model.safetensors")
    assert model["W1"].shape == (4, 6, 4) and model["W2"].shape == (4, 6, 6)
    widths = [r["params"]["n_hidden"] for r in json.loads((run.results / "instances.json").read_text())]
    assert model["mask"].sum(1).tolist() == widths and sorted(widths) == [2, 2, 6, 6]
    errors = runs.load_arrays(run.results / "errors.safetensors")
    assert errors["fvu"].shape == (4, 6) and errors["features_per_neuron"].shape == (4, 6)
    records = json.loads((run.results / "instances.json").read_text())
    for r in records:
        counts = sum(r["metrics"][k] for k in ("monosemantic", "two_features", "three_or_more", "dead"))
        assert counts == r["params"]["n_hidden"] and r["metrics"]["outputs"] == 6
        assert r["metrics"]["partly_computed"] >= r["metrics"]["computed"]
        v = r["null"]["monosemantic"]  # the count stated against random input rows of the same live neurons
        assert v["observed"] == r["metrics"]["monosemantic"] and v["draws"] == 99 and v["null"] == "random input rows"
    assert "monosemantic neurons against random input rows (99 draws each): " in run.log.read_text()
    names = {p.name for p in load_kind("computation").render(run)}
    assert names == {"neurons.png", "errors.png", "weights.png", "neurons_error.png"}


def test_computation_weights_draw_every_instance_on_sheets_or_say_which_they_leave_out(tmp_path, monkeypatch):
    """15 instances (3 sparsities x 5 seeds): weights.png holds 6 a sheet, the next sheets named by the instances
    they hold, each instance's panel on exactly one sheet, each sheet's title saying which of the 15 it holds (it
    drew 6 of them, silently). With room for only 2 sheets (the limit lowered), the titles and the run log say which
    instances are not drawn and where they are."""
    from sptui.plots import computation as P
    from tests.figure_checks import checking_saves

    def sheets(render):
        with checking_saves() as seen:
            run = render()
        shown = {p.name: " ".join(" ".join(texts).split()) for p, texts in seen.texts.items()}
        assert not any(seen.by_path.values()), seen.report()
        return run, {name: text for name, text in shown.items() if name.startswith("weights")}

    monkeypatch.setattr(P, "MAX_SHEETS", 2)
    run, shown = sheets(lambda: run_kind("computation", dict(task="abs", n_features=4, n_hidden=3, steps=20,
                                                             batch_size=32, eval_batch=256, log_points=2), tmp_path,
                                         sweep={"feature_probability": [0.5, 0.2, 0.1], "seed": list(range(5))},
                                         render=True))
    assert set(shown) == {"weights.png", "weights_instances6-11.png"}
    for name in shown:
        assert "of 15; 12 drawn on 2 sheets, 12-14 only in results/)" in shown[name], shown[name]
    assert "(instances 6-11 of 15;" in shown["weights_instances6-11.png"]
    assert "instances 0-11 of 15 drawn" in run.log.read_text()
    assert "instances 12-14 are in results/model.safetensors only" in run.log.read_text()

    monkeypatch.undo()
    _, shown = sheets(lambda: load_kind("computation").render(run))
    assert set(shown) == {"weights.png", "weights_instances6-11.png", "weights_instances12-14.png"}
    assert "(instances 12-14 of 15)" in shown["weights_instances12-14.png"]
    assert not any("only in results" in text for text in shown.values())
    records = json.loads((run.results / "instances.json").read_text())
    for r in records:  # every instance's panel title (its sparsity and seed) on exactly one sheet
        p = r["params"]
        panel = f"S={1 - p['feature_probability']:.3g} m=3 seed {p['seed']} "
        assert len([name for name, text in shown.items() if panel in text]) == 1, (panel, shown)


def test_params_refuse_too_many_outputs():
    from sptui.params import ParamError

    with pytest.raises(ParamError, match="outputs"):
        load_kind("computation").Params(task="uand", n_features=1000).check()
    load_kind("computation").Params(task="abs", n_features=1000).check()


def test_dense_neurons_are_monosemantic_and_sparse_ones_polysemantic():
    """Elhage et al. 2022's reading at a small CPU scale (|x_i| of 6 features, 4 neurons < 2n): dense features get
    monosemantic neurons that compute at most m/2 features (2 neurons each); sparse features share neurons. (The
    paper's other half, more features computed when sparse, is not reliable at this scale: see the README.)"""
    settings = TrainSettings(steps=1000, batch_size=512, lr_schedule="cosine", eval_batch=4096)
    instances = [C.Instance(p, 4, seed, lr=1e-2) for p in (1.0, 0.05) for seed in (0, 1)]
    trainer = C.ComputationTrainer("abs", 6, 0.9, instances, settings)
    for _ in range(settings.steps):
        trainer.step()
    h, y, t, on = trainer.eval_outputs()
    k = M.features_per_neuron(trainer.weights["W1"].detach())
    alive = (h > 0).any(1)
    counts = [M.neuron_counts(k[i], alive[i]) for i in range(len(instances))]
    done = M.computed(M.output_errors(y, t, on)["fvu"]).sum(-1)
    from sptui.kinds.computation import monosemantic_against_null

    margins = {1.0: [], 0.05: []}
    for i, inst in enumerate(instances):
        poly = counts[i]["two_features"] + counts[i]["three_or_more"]
        versus = monosemantic_against_null(trainer.weights["W1"][i].detach(), alive[i], counts[i], seed=i)
        margins[inst.feature_probability].append(versus.margin)
        if inst.feature_probability == 1.0:
            assert counts[i]["monosemantic"] == 4 and poly == 0, counts[i]
            assert 1 <= done[i] <= 2
            assert versus.beats, versus.text()  # 4 of 4 neurons reading one of 6 features: not chance
        else:
            assert poly >= 2 and poly > counts[i]["monosemantic"], counts[i]
    # random rows of 6 features are rarely monosemantic (~3%), so even one such neuron may beat the null; the
    # sparse models' few beat it by less than the dense models' four
    assert max(margins[0.05]) < min(margins[1.0]), margins
