"""The `sae` kind end to end on each source (tms, lm, addition): the results contract, recovery on toy models,
batching that changes nothing, resume == uninterrupted, and one clear line for bad input."""

import json

import pytest
import torch

from sptui import runs
from sptui.errors import SptuiError
from sptui.sae import saelens_format as F
from tests.helpers import CancelAfter, KindRunError, job_toml, run_kind
from tests.sae_helpers import fake_run, tiny_lm_run

TOY = dict(source="toy", architecture="topk", k=1, d_sae=10, lr=3e-3, steps=800, batch_size=512, log_points=4,
           eval_tokens=4096)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Artifacts with a finished tms run "toy" (5 features in 2 dims, dense and sparse), a small random LM as an
    `lm` run "tiny-lm", and an untrained 2-digit addition model as an `addition` run "add"."""
    from sptui.science import addition as A

    root = tmp_path_factory.mktemp("sae-artifacts")
    run_kind("tms", dict(n_features=5, n_hidden=2, steps=1500, batch_size=256), root,
             sweep={"feature_probability": [1.0, 0.05]}, name="toy")
    tiny_lm_run(root)
    add_params = {"n_digits": 2, "n_train": 300, "n_test": 60, "n_heads": 4, "d_model": 16}
    model = A.build_model(A.model_config(2, n_heads=4, d_head=2, d_model=16))

    def save_addition(results):
        runs.atomic_write_json(results / "config.json", A.portable_config(model))
        runs.save_arrays(results / "model.safetensors", {k: v.detach() for k, v in model.state_dict().items()})

    fake_run(root, "0101-add", job_toml("addition", add_params, name="add"), save_addition)

    def save_batched(results):  # a batched addition run: results/models/<k>/, each with its own data seed
        for k in range(2):
            save_addition(results / "models" / str(k))
        runs.atomic_write_json(results / "instances.json", [
            {"instance": k, "grid": {"data_seed": k}, "params": {"data_seed": k}, "model": f"results/models/{k}/"}
            for k in range(2)])

    fake_run(root, "0102-add-seeds", job_toml("addition", add_params, sweep={"data_seed": [0, 1]}, name="add-seeds"),
              save_batched)
    return root


def records(run):
    return json.loads((run.results / "instances.json").read_text())


# ---------------------------------------------------------------- toy sources

def test_toy_source_contract_and_recovery(root):
    run = run_kind("sae", TOY, root, sweep={"seed": [0, 1]}, name="sae-toy")
    recs = records(run)
    assert len(recs) == 4  # 2 SAE seeds x 2 toy models, sweep-point major
    assert [r["source_instance"] for r in recs] == [0, 1, 0, 1]
    assert [r["grid"]["seed"] for r in recs] == [0, 0, 1, 1]
    for r in recs:
        assert {"l0", "fvu", "dead_fraction", "mmcs", "f1"} <= set(r["metrics"])
        assert r["params"]["d_sae"] == 10 and r["params"]["k"] == 1
    sparse = [r for r in recs if r["source_grid"]["feature_probability"] == 0.05]
    dense = [r for r in recs if r["source_grid"]["feature_probability"] == 1.0]
    for r in sparse:  # the pentagon: every represented feature has its latent, firing when the feature is there
        assert r["metrics"]["mmcs"] > 0.99 and r["metrics"]["f1"] > 0.7 and r["metrics"]["corr"] > 0.9, r
    for r in dense:  # dense features: no latent tracks a feature
        assert r["metrics"]["f1"] < 0.4 and r["metrics"]["corr"] < 0.5, r
    toy = runs.load_arrays(run.results / "toy.safetensors")
    assert toy["cosines"].shape == (4, 5, 10) and toy["source_index"].tolist() == [0, 1, 0, 1]
    arrays = runs.load_arrays(run.results / "sae.safetensors")
    assert arrays["W_dec"].shape == (4, 10, 2) and arrays["frequency"].shape == (4, 10)
    # each instance is a SAELens folder that encodes like the batched weights
    saved = F.load(run.results / "saes" / "3")
    h = torch.randn(50, 2)
    from sptui.science.sae import encode

    batched = {k: torch.from_numpy(v) for k, v in arrays.items()}
    assert torch.allclose(saved.encode(h), encode(batched, h[None].expand(4, -1, -1), "topk")[3], atol=1e-5)
    assert saved.metadata["toy_instance"] == 1
    # recovery pooled by the shape each feature has in its toy model: the pentagon's five features are found
    for r in recs:
        assert r["source_geometry"] and len(r["source_shapes"]) == 5
    assert all(s == "pentagon" for s in sparse[0]["source_shapes"]), sparse[0]["source_geometry"]
    by_shape = json.loads((run.results / "summary.json").read_text())["recovery_by_shape"]
    assert [b["setting"] for b in by_shape] == [{"seed": 0}, {"seed": 1}]
    for b in by_shape:
        pentagon = b["shapes"]["pentagon"]
        assert pentagon["features"] == 5 and pentagon["best_cosine"] > 0.99 and pentagon["f1"] > 0.7, b
        dense_shapes = set(b["shapes"]) - {"pentagon"}
        assert all(b["shapes"][s]["f1"] < 0.4 for s in dense_shapes), b
        # the same pooling over only the toy models that hold several shapes (here: the dense one, if it does)
        mixed = [r for r in recs if r["grid"] == b["setting"] and len(set(r["source_shapes"]) - {"unrepresented"}) > 1]
        assert b["mixed_models"] == len(mixed) and "pentagon" not in b["shapes_in_mixed_models"]
        assert set(b["shapes_in_mixed_models"]) == {s for r in mixed for s in r["source_shapes"]} - {"unrepresented"}
    from sptui.plots.sae import shape_recovery  # recovery.png pools the saved per-feature results the same way

    drawn = shape_recovery(recs, None, runs.load_arrays(run.results / "toy.safetensors"), arrays)
    assert [point for point, _ in drawn] == [b["setting"] for b in by_shape]
    for (_, pooled), b in zip(drawn, by_shape):
        assert list(pooled) == list(b["shapes"]) and all(pooled[s] == pytest.approx(b["shapes"][s]) for s in pooled), b
    paths = run_kind_render(run)
    assert {p.name for p in paths} >= {"metrics.png", "latents.png", "recovery.png"}


def run_kind_render(run):
    from sptui.kinds import load_kind

    return load_kind("sae").render(run)


def test_an_instance_of_a_batch_equals_it_trained_alone(root):
    params = {k: v for k, v in TOY.items() if k != "lr"} | {"steps": 120, "log_points": 2}
    together = run_kind("sae", {**params, "source_instances": [0, 1]}, root, sweep={"seed": [0, 1], "lr": [3e-3, 1e-2]},
                        name="together")
    alone = run_kind("sae", {**params, "source_instances": [1], "seed": 1, "lr": 1e-2}, root, name="alone")
    a = runs.load_arrays(together.results / "sae.safetensors")
    b = runs.load_arrays(alone.results / "sae.safetensors")
    i = [r["instance"] for r in records(together)
         if r["source_instance"] == 1 and r["grid"] == {"seed": 1, "lr": 1e-2}][0]
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.allclose(torch.from_numpy(a[name][i]), torch.from_numpy(b[name][0]), atol=1e-5), name


def _resume_matches(root, params, name, cancel_at):
    whole = run_kind("sae", params, root, name=name, run_id=f"{name}-whole")
    with pytest.raises(KindRunError, match="cancelled") as cancelled:
        run_kind("sae", params, root, name=name, run_id=f"{name}-broken", hooks=CancelAfter(cancel_at))
    broken = cancelled.value.run
    assert list(broken.checkpoints.glob("step-*.safetensors"))
    run_kind("sae", params, root, name=name, run_id=f"{name}-broken")
    a = runs.load_arrays(whole.results / "sae.safetensors")
    b = runs.load_arrays(broken.results / "sae.safetensors")
    for key in a:
        assert (a[key] == b[key]).all(), key
    steps = [m["step"] for m in runs.read_metrics(broken.metrics) if m["split"] == "test"]
    assert steps == sorted(set(steps))
    assert not list(broken.checkpoints.glob("step-*.safetensors"))  # discarded once the results are whole


def test_toy_resume_equals_uninterrupted(root):
    _resume_matches(root, {**TOY, "steps": 90, "checkpoint_every": 40, "architecture": "batchtopk", "k": 2}, "r-toy", 60)


# ---------------------------------------------------------------- model sources

LM = dict(source="tiny-lm", hook="blocks.0.hook_resid_post", architecture="topk", k=4, expansion_factor=2.0, lr=1e-3,
          steps=24, batch_size=128, buffer_tokens=640, forward_batch=4, eval_tokens=512, eval_sequences=8,
          context_length=48, log_points=2, checkpoint_every=7)


def test_lm_source_streams_the_corpus_and_reports_ce_loss_recovered(root):
    run = run_kind("sae", LM, root, sweep={"seed": [0, 1]}, name="sae-lm")
    recs = records(run)
    assert len(recs) == 2
    for r in recs:
        m = r["metrics"]
        assert m["l0"] == pytest.approx(4.0) and 0 <= m["fvu"] < 1.5 and 0 <= m["dead_fraction"] <= 1
        # a random model: no ordering of the losses to expect, but the score is the one from those losses
        expected = (m["ce_zero_ablation"] - m["ce_sae"]) / (m["ce_zero_ablation"] - m["ce_clean"])
        assert m["ce_loss_recovered"] == pytest.approx(expected, rel=1e-5)
        expected = (m["ce_mean_ablation"] - m["ce_sae"]) / (m["ce_mean_ablation"] - m["ce_clean"])
        assert m["ce_loss_recovered_mean"] == pytest.approx(expected, rel=1e-5)
        assert 9 < m["ce_clean"] < 12  # ~ln(50257) = 10.8 for random logits
        assert "mmcs" not in m
    # over training: CE loss recovered at every log point; with ce_log_sequences = eval_sequences (8) the last
    # point is the final score on the same sequences and weights
    curve = [m for m in runs.read_metrics(run.metrics) if m["split"] == "test"]
    assert [m["step"] for m in curve] == [0, 12, 24] and all(len(m["ce_loss_recovered"]) == 2 for m in curve)
    for key in ("ce_loss_recovered", "ce_loss_recovered_mean"):
        assert curve[-1][key] == pytest.approx([r["metrics"][key] for r in recs], rel=1e-5)
        assert curve[0][key] != pytest.approx(curve[-1][key], rel=1e-3)  # it moves as the SAEs train
    summary = json.loads((run.results / "summary.json").read_text())
    assert summary["source"]["kind"] == "lm" and summary["d_in"] == 16
    saved = F.load(run.results / "saes" / "0")
    assert saved.metadata["hook_name"] == "blocks.0.hook_resid_post" and saved.d_sae == 32


def test_lm_resume_equals_uninterrupted(root):
    # 640-activation windows of 128-activation batches; checkpoints every 7 steps land inside windows, and
    # windows start part-way through forward batches
    _resume_matches(root, {**LM, "steps": 20}, "r-lm", 9)


def test_addition_source_reads_the_answer_positions(root):
    params = dict(source="add", architecture="relu", sparsity_coefficient=1.0, d_sae=32, lr=1e-3, steps=10,
                  batch_size=64, buffer_tokens=256, eval_tokens=128, eval_sequences=16, log_points=1)
    run = run_kind("sae", params, root, name="sae-add")
    summary = json.loads((run.results / "summary.json").read_text())
    assert summary["source"]["hook"] == "blocks.0.hook_attn_out" and summary["source"]["positions"] == "answer"
    assert summary["d_in"] == 16
    m = records(run)[0]["metrics"]
    assert 1.5 < m["ce_clean"] < 3.5 and m["ce_sae"] > 0  # untrained: about ln(10) per answer digit
    from sptui.sae.sources import AdditionSequences

    seqs = list(AdditionSequences(2, 300, 60, 0)("train"))
    assert len(seqs) == 300 and all(s.select == [4, 5, 6] for s in seqs)  # n=2: 2 + 2 operands, 3 answers


def test_addition_source_picks_one_model_of_a_batched_run(root):
    params = dict(source="add-seeds", source_instances=[1], architecture="relu", d_sae=16, steps=3, batch_size=32,
                  buffer_tokens=64, eval_tokens=32, eval_sequences=4, log_points=1)
    run = run_kind("sae", params, root, name="sae-add-seeds")
    summary = json.loads((run.results / "summary.json").read_text())
    assert summary["source"]["instance"] == 1
    with pytest.raises(KindRunError, match="one model"):
        run_kind("sae", {**params, "source_instances": [0, 1]}, root, name="bad-add")


@pytest.mark.parametrize("params, message", [
    (dict(source="nothing-here", hook="blocks.0.hook_resid_post"), "unknown model"),
    (dict(source="tiny-lm"), "hook: is required"),
    (dict(source="tiny-lm", hook="blocks.0.hook_resid_pots"), "did you mean blocks.0.hook_resid_post"),
    (dict(source="toy", hook="blocks.0.hook_resid_post"), "leave hook empty"),
    (dict(source="toy", source_instances=[7]), "toy instances 0..1, found 7"),
    (dict(source="toy", d_sae=4, k=8), "k: must be at most"),
    (dict(source="tiny-lm", hook="blocks.0.hook_resid_post", positions="answer"), "answer positions"),
])
def test_bad_input_is_one_clear_line(root, params, message):
    with pytest.raises((KindRunError, SptuiError)) as err:
        run_kind("sae", {"steps": 2, "batch_size": 16, **params}, root, name="bad")
    text = str(getattr(err.value, "error", None) or err.value)
    assert message in text
    assert "Traceback" not in text


def test_an_unfinished_tms_run_is_refused(root):
    fake_run(root, "0200-half", job_toml("tms", {}, name="half"), lambda results: None)
    with pytest.raises(KindRunError) as err:
        run_kind("sae", {"source": "half", "steps": 2}, root, name="bad2")
    assert "has no results yet" in str(err.value.error)


def test_a_job_name_reads_its_newest_finished_run(root):
    """A newer run of the same job that has not finished (queued, or crashed) does not hide the finished one."""
    import shutil

    finished = root / "runs" / "toy" / "results"
    fake_run(root, "0500-toy2", job_toml("tms", {"n_features": 5, "n_hidden": 2}, name="toy2"),
             lambda results: [shutil.copy(finished / f, results / f) for f in ("model.safetensors", "instances.json")])
    fake_run(root, "0501-toy2", job_toml("tms", {}, name="toy2"), lambda results: None)
    run = run_kind("sae", {**TOY, "source": "toy2", "steps": 5, "log_points": 1}, root, name="sae-newest")
    assert json.loads((run.results / "summary.json").read_text())["source"]["run"] == "0500-toy2"


def test_toy_recovery_is_stated_against_random_dictionaries(root):
    run = run_kind("sae", TOY, root, name="sae-toy-null")
    summary = json.loads((run.results / "summary.json").read_text())["mmcs_null"]
    recs = records(run)
    verdicts = {r["source_grid"]["feature_probability"]: r["null"]["mmcs"] for r in recs}
    for r in recs:  # the null is of the instance's own mmcs, as its metrics state it
        assert r["null"]["mmcs"]["observed"] == pytest.approx(r["metrics"]["mmcs"]) and r["null"]["mmcs"]["draws"] == 99
    # the pentagon's latents sit on its features: closer than 10 random directions in the plane come (mean ~0.93)
    sparse, dense = verdicts[0.05], verdicts[1.0]
    assert sparse["beats_null"] and sparse["p_value"] == 0.01 and sparse["margin"] > 0, sparse["text"]
    assert sparse["text"].startswith("mmcs 1 beats random dictionaries by ") and 0.85 < sparse["null_mean"] < 0.97
    # dense features (two dedicated, three dropped): the SAE's directions are no closer than random ones
    assert not dense["beats_null"] and dense["verdict"] == "does not beat null", dense["text"]
    assert summary["beat"] == 1 and summary["instances"] == 2 and summary["draws"] == 99
    assert f"instance 1: {sparse['text']}" in run.log.read_text()  # the log says it in the same words
