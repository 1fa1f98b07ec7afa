"""The `neuron-geometry` kind on a model with planted neuron groups, saved as a sptui run."""

import numpy as np
import pytest
import torch

from sptui.kinds import load_kind
from sptui.models import save_model
from sptui.spec import parse_text
from tests.helpers import KindRunError, run_spec

GROUPS, GROUP_SIZE, D_MLP, D_MODEL = 6, 16, 192, 64


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    """A 2-layer TransformerLens model whose layer-1 W_out rows form 6 groups of 16 shared directions."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    root = tmp_path_factory.mktemp("artifacts")
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_layers=2, d_model=D_MODEL, n_heads=4, d_head=16, d_mlp=D_MLP, n_ctx=16,
                                  d_vocab=50, act_fn="gelu_new", normalization_type="LN", device="cpu")
    model = HookedTransformer(cfg)
    rng = np.random.default_rng(0)
    labels = np.full(D_MLP, -1)
    labels[: GROUPS * GROUP_SIZE] = np.repeat(np.arange(GROUPS), GROUP_SIZE)
    labels = labels[rng.permutation(D_MLP)]
    dirs = rng.standard_normal((GROUPS, D_MODEL))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    W = rng.standard_normal((D_MLP, D_MODEL))
    for g in range(GROUPS):
        W[labels == g] += 1.5 * np.sqrt(D_MODEL) * dirs[g]
    with torch.no_grad():
        model.blocks[1].mlp.W_out.copy_(torch.tensor(W * 0.02, dtype=torch.float32))
    save_model(model, root / "runs" / "0001-planted" / "results")
    return root, labels, W


def geometry(tmp_path, root, extra=""):
    """The kind on the planted model, named by its job name: found under `root`, the job's artifacts root
    (no $SPTUI_ARTIFACTS involved)."""
    layer = "" if "layer" in extra else "layer = 1"
    toml = f"""
[[job]]
kind = "neuron-geometry"
name = "g"
model = "planted"
processing = false
two_opt_seconds = 5.0
{layer}
{extra}
"""
    spec = parse_text(toml, "t.toml")[0]
    return run_spec(spec, tmp_path / "geo", artifacts_root=root), load_kind("neuron-geometry")


def test_planted_groups_found_as_significant_blocks(planted_run, tmp_path):
    root, labels, W = planted_run
    run, kind = geometry(tmp_path, root, 'null_draws = 19\nmethods = ["greedy", "spectral"]')
    summary = run.load_json("summary.json")
    best = summary["model_scores"]["best_score"]
    assert best > 3 * summary["identity_order_score"]
    assert set(summary["null"]) == {"covariance", "rotation", "gaussian", "shuffled"}
    for null in summary["null"].values():
        assert null["draws"] == 19 and len(null["scores"]) == 19 and len(null["block_counts"]) == 19
        assert best > max(null["scores"]) and null["p_value"] == pytest.approx(1 / 20)
    assert summary["p_value"] == pytest.approx(1 / 20)

    found = run.load_json("blocks.json")
    blocks = found["blocks"]
    assert len(blocks) == GROUPS == summary["blocks"]["count"]
    for b in blocks:
        members = labels[b["neurons"]]
        assert members[0] >= 0 and (members == members[0]).all()
        assert b["size"] == GROUP_SIZE and b["mean_cos2"] > found["tau"]
        assert b["p_value"] <= 0.05 and set(b["p_values"]) == set(summary["null"])
    assert len(found["candidates"]) >= len(blocks)

    arrays = run.load_arrays("geometry.safetensors")
    order = arrays["order"]
    assert sorted(order.tolist()) == list(range(D_MLP))
    Wn = W / np.linalg.norm(W, axis=1, keepdims=True)
    expected = (Wn @ Wn.T)[np.ix_(order, order)]
    assert arrays["gram_permuted"].dtype == np.float16
    np.testing.assert_allclose(arrays["gram_permuted"].astype(np.float32), expected, atol=2e-3)
    for name in summary["null"]:
        assert arrays[f"null.{name}.gram_permuted"].shape == (D_MLP, D_MLP)

    files = kind.render(run)
    assert sorted(f.name for f in files) == ["compare.png", "null.png", "permuted.png", "tiles.png"]
    assert all(f.stat().st_size > 10_000 and f.read_bytes()[:4] == b"\x89PNG" for f in files)


def test_every_method_is_scored_and_timed(planted_run, tmp_path):
    root, _, _ = planted_run
    run, _ = geometry(tmp_path, root, 'null_draws = 1\nnulls = ["gaussian"]')
    scores = run.load_json("summary.json")["model_scores"]
    assert set(scores["scores"]) == {"greedy", "greedy+2opt", "spectral", "hclust", "olo"}
    assert all(s >= 0 for s in scores["seconds"].values())
    assert scores["best_score"] == max(scores["scores"].values())


def test_w_in_of_the_same_layer_shows_no_significant_structure(planted_run, tmp_path):
    root, _, _ = planted_run
    run, _ = geometry(tmp_path, root, 'weights = "W_in"\nmethods = ["greedy"]\n'
                   'null_draws = 19\nnulls = ["covariance", "rotation"]')
    summary = run.load_json("summary.json")
    assert summary["p_value"] > 0.05
    assert summary["blocks"]["count"] == 0 and run.load_json("blocks.json")["blocks"] == []


def test_bad_layer_is_a_clear_error(planted_run, tmp_path):
    root, _, _ = planted_run
    with pytest.raises(KindRunError, match="failed: layer 5 out of range: the model has 2 layers"):
        geometry(tmp_path, root, "layer = 5")


def test_unknown_method_or_null_refused_at_validation():
    from sptui.errors import SpecError

    with pytest.raises(SpecError, match="unknown method"):
        parse_text('[[job]]\nkind = "neuron-geometry"\nname = "x"\nmethods = ["anneal"]\n', "t.toml")
    with pytest.raises(SpecError, match="unknown null model"):
        parse_text('[[job]]\nkind = "neuron-geometry"\nname = "x"\nnulls = ["bootstrap"]\n', "t.toml")


def test_pooled_controls_average_cells_and_keep_small_matrices_whole():
    from sptui.kinds.neuron_geometry import pooled

    M = np.arange(25, dtype=np.float32).reshape(5, 5)
    P = pooled(M, max_side=3)  # 2 x 2 cells, the last row/column of cells holds what is left
    assert P.shape == (3, 3)
    assert P[0, 0] == np.mean([0, 1, 5, 6]) and P[2, 2] == 24 and P[0, 2] == np.mean([4, 9])
    np.testing.assert_array_equal(pooled(M, max_side=5), M)


def test_batch_finds_the_model_run_under_its_artifacts_flag_not_the_environment(planted_run, tmp_path):
    """`sptui --artifacts ROOT batch` hands ROOT to the job itself: "planted" resolves there although
    $SPTUI_ARTIFACTS names another folder."""
    import json
    import os
    import subprocess
    import sys

    from tests.helpers import REPO

    root, _, _ = planted_run
    job = tmp_path / "geo.toml"
    job.write_text('[[job]]\nkind = "neuron-geometry"\nname = "geo-cli"\nmodel = "planted"\nprocessing = false\n'
                   'layer = 1\nmethods = ["greedy"]\nnull_draws = 1\nnulls = ["gaussian"]\n')
    env = {**os.environ, "SPTUI_ARTIFACTS": str(tmp_path / "elsewhere"), "SPTUI_TORCH_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "sptui", "--artifacts", str(root), "batch", str(job), "--json"],
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (outcome,) = json.loads(result.stdout)
    assert outcome["state"] == "succeeded" and outcome["run_dir"].startswith(str(root))
    assert not (tmp_path / "elsewhere").exists()


@pytest.fixture(scope="module")
def coactive_run(tmp_path_factory):
    """A model whose layer-0 neurons hold two planted groups of 12: group A shares its output direction AND
    its input direction (so its neurons fire together), group B shares only its output direction."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from sptui.tokenizer import gpt2_tokenizer

    root = tmp_path_factory.mktemp("artifacts")
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_layers=1, d_model=32, n_heads=2, d_head=16, d_mlp=128, n_ctx=64, d_vocab=50257,
                                  act_fn="gelu_new", normalization_type="LN", device="cpu")
    model = HookedTransformer(cfg, tokenizer=gpt2_tokenizer(add_bos=True))
    rng = np.random.default_rng(1)
    perm = rng.permutation(128)
    a, b = perm[:12], perm[12:24]
    W_out = rng.standard_normal((128, 32))
    W_in = model.blocks[0].mlp.W_in.detach().numpy().copy()
    for group in (a, b):
        direction = rng.standard_normal(32)
        W_out[group] += 1.5 * np.sqrt(32) * direction / np.linalg.norm(direction)  # within a group: cos ~ 0.7
    W_in[:, a] = 3 * rng.standard_normal((32, 1)) + 0.3 * rng.standard_normal((32, 12))
    with torch.no_grad():
        model.blocks[0].mlp.W_out.copy_(torch.tensor(0.02 * W_out, dtype=torch.float32))
        model.blocks[0].mlp.W_in.copy_(torch.tensor(W_in, dtype=torch.float32))
    save_model(model, root / "runs" / "0001-planted" / "results")
    return root, set(a.tolist()), set(b.tolist())


def test_activation_blocks_beside_weight_blocks(coactive_run, tmp_path):
    root, a, b = coactive_run
    run, kind = geometry(tmp_path, root, 'layer = 0\nmethods = ["greedy", "spectral"]\n'
                         'null_draws = 19\nnulls = ["covariance", "rotation"]\nactivations = true\n'
                         'token_budget = 3000\ncontext_length = 64\nwindow_overlap = 16')
    summary, found = run.load_json("summary.json"), run.load_json("blocks.json")
    act = summary["activations"]
    assert act["tokens"] >= 3000 and act["corpus"] == "builtin"
    weight_blocks = {frozenset(x["neurons"]): x for x in found["blocks"]}
    assert set(weight_blocks) == {frozenset(a), frozenset(b)}
    # group A fires together: an activation block, and its weight block co-activates; group B does not
    assert any(set(x["neurons"]) >= a for x in found["activations"]["blocks"])
    assert not any(len(set(x["neurons"]) & b) >= 3 for x in found["activations"]["blocks"])
    assert weight_blocks[frozenset(a)]["activation_p_value"] <= 0.01
    assert weight_blocks[frozenset(b)]["activation_p_value"] > 0.05
    assert act["agreement"]["weight_blocks_coactivating"] == 1 and act["p_value"] <= 0.1

    arrays = run.load_arrays("geometry.safetensors")
    order = arrays["order"]
    in_weight_order = arrays["activations.gram_in_weight_order"].astype(np.float32)
    assert in_weight_order.shape == (128, 128) and np.allclose(np.diag(in_weight_order), 1, atol=1e-3)
    own = arrays["activations.gram_permuted"].astype(np.float32)
    a_order = arrays["activations.order"]
    # the same matrix, two orders
    back = np.empty_like(own)
    back[np.ix_(a_order, a_order)] = own
    np.testing.assert_allclose(back[np.ix_(order, order)], in_weight_order, atol=2e-3)
    names = sorted(f.name for f in kind.render(run))
    assert names == ["activations-null.png", "activations.png", "compare.png", "null.png", "permuted.png", "tiles.png"]


def test_activations_of_an_lm_run_are_read_on_the_text_it_was_trained_on(tmp_path):
    """Left without `corpus`, neuron-geometry reads an sptui lm run's activations over that run's corpus and text
    column (its job.toml), not the built-in stories; an explicit corpus still wins."""
    import json
    import random

    from tests.helpers import run_kind
    from tests.test_neuroscope import LM, WORDS

    rng = random.Random(1)
    lines = [json.dumps({"story": " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30))) + "."}) for _ in range(80)]
    (tmp_path / "lm.jsonl").write_text("\n".join(lines) + "\n")
    run_kind("lm", {**LM, "corpus": str(tmp_path / "lm.jsonl"), "text_column": "story"}, tmp_path, name="lm-own")
    scope = dict(model="lm-own", layer=0, activations=True, null_draws=3, split="all", token_budget=300,
                 context_length=24, window_overlap=4, batch_size=4)
    own = run_kind("neuron-geometry", scope, tmp_path, name="geometry-own", render=False)
    act = own.load_json("summary.json")["activations"]
    assert (act["corpus"], act["text_column"]) == (str(tmp_path / "lm.jsonl"), "story") and act["tokens"] >= 300
    assert "the corpus lm run lm-own was trained on" in own.log.read_text()
    told = run_kind("neuron-geometry", {**scope, "corpus": "builtin"}, tmp_path, name="geometry-told", render=False)
    assert told.load_json("summary.json")["activations"]["corpus"] == "builtin"
    assert "given in the job" in told.log.read_text()
