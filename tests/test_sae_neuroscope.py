"""The Neuroscope over SAE latents: the scan records the SAE's encodings of the model's hook activations, the
logit effect goes through the decoder, neighbours are decoder cosines; site and terminal view say "latent"."""

import io

import pytest
import torch
from rich.console import Console

from sptui.neuroscope.store import NeuroscopeResults
from sptui.neuroscope.units import SAELatents
from sptui.sae.results import SAEResults
from tests.helpers import KindRunError, run_kind
from tests.sae_helpers import tiny_lm_run

SAE = dict(source="tiny-lm", hook="blocks.0.hook_resid_post", architecture="topk", k=4, d_sae=24, lr=1e-3, steps=6,
           batch_size=128, buffer_tokens=256, forward_batch=4, eval_tokens=256, eval_sequences=4, context_length=48,
           log_points=1)
SCOPE = dict(corpus="builtin", split="validation", token_budget=2500, context_length=48, window_overlap=8, top_k=4,
             sample_size=6, sample_quantiles=[0.5, 0.9], batch_size=4, histogram_bins=16, logit_tokens=5, neighbours=3)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("sae-scope")
    tiny_lm_run(root)
    run_kind("sae", SAE, root, name="sae-resid", sweep={"seed": [0, 1]})
    run_kind("sae", {**SAE, "hook": "blocks.0.mlp.hook_pre"}, root, name="sae-pre")
    return root


def test_the_scan_records_sae_latents(root):
    scope = run_kind("neuroscope", {**SCOPE, "sae": "sae-resid", "sae_instance": 1}, root, name="scope-latents")
    results = NeuroscopeResults(scope.root)
    assert results.unit == "latent" and results.d_mlp == 24 and results.layers == [0]
    assert results.summary["units"]["sae_instance"] == 1 and results.summary["units"]["hook"] == "blocks.0.hook_resid_post"
    sae = SAEResults(root / "runs" / results.summary["units"]["sae_run"])
    model = sae.open_model()
    saved = sae.saved(1)
    # a latent's recorded activations on its top text are the SAE's encoding of the model's activations there
    latent = next(i for i in range(24) if results.neuron(0, i).top)
    record = results.neuron(0, latent)
    example = record.top[0]
    _, cache = model.run_with_cache(torch.as_tensor(example.token_ids[None].astype("int64")),
                                    names_filter="blocks.0.hook_resid_post")
    expected = saved.encode(cache["blocks.0.hook_resid_post"][0])[:, latent]
    assert torch.allclose(torch.from_numpy(example.acts), expected, atol=2e-2, rtol=2e-2)
    assert example.max_value == pytest.approx(float(expected.max()), rel=1e-3, abs=1e-3)
    # logit effect through the decoder: a residual hook writes W_dec rows straight into the stream
    effect = saved.W_dec[latent] @ model.W_U.detach()
    assert [t for t, _ in record.logit_top] == effect.topk(5).indices.tolist()
    # neighbours: the latents with the most similar decoder rows
    unit = saved.W_dec / saved.W_dec.norm(dim=1, keepdim=True)
    cos = unit @ unit[latent]
    cos[latent] = -2
    assert [n for _, n, _ in record.similar] == cos.topk(3).indices.tolist()
    # site and terminal view speak of latents
    from sptui.neuroscope.show import show_neuron
    from sptui.neuroscope.site import export_site

    export_site(scope.root, root / "site")
    page = (root / "site" / "L0" / f"{latent}.html").read_text()
    assert f"Latent {latent}" in page and "decoder" in page
    assert "latents of SAE" in (root / "site" / "index.html").read_text()
    buffer = io.StringIO()
    show_neuron(scope.root, latent, None, Console(file=buffer, width=120))
    assert f"Latent {latent}" in buffer.getvalue()


def test_a_hook_that_does_not_write_the_residual_stream_has_no_logit_effect(root):
    scope = run_kind("neuroscope", {**SCOPE, "sae": "sae-pre"}, root, name="scope-pre")
    results = NeuroscopeResults(scope.root)
    record = results.neuron(0, 0)
    assert record.logit_top == [] and results.direction_name is None
    assert results.layer_overview(0)["top_logit"].tolist() == [-1] * 24


def test_output_directions_per_hook(root):
    sae = SAEResults(root / "runs" / next(p.name for p in (root / "runs").iterdir() if p.name.endswith("sae-resid")))
    model = sae.open_model()
    saved = sae.saved(0)
    W = torch.randn(24, 32)  # a decoder in mlp.hook_post space (d_mlp = 32)
    saved.W_dec = W
    units = SAELatents(model, "blocks.1.mlp.hook_post", saved, 1)
    assert torch.allclose(units.output_directions(1), W @ model.W_out[1].detach(), atol=1e-5)
    saved.W_dec = torch.randn(24, 16)  # hook_z: 2 heads x 8 dims
    z = SAELatents(model, "blocks.0.attn.hook_z", saved, 0)
    expected = sum(saved.W_dec[:, h * 8:(h + 1) * 8] @ model.W_O[0, h].detach() for h in range(2))
    assert torch.allclose(z.output_directions(0), expected, atol=1e-5)
    assert torch.equal(SAELatents(model, "blocks.0.hook_resid_pre", saved, 0).output_directions(0), saved.W_dec)
    assert SAELatents(model, "blocks.0.mlp.hook_pre", saved, 0).output_directions(0) is None


def test_a_toy_sae_run_is_refused(root):
    run_kind("tms", dict(n_features=4, n_hidden=2, steps=20, batch_size=32), root, name="toy-small")
    run_kind("sae", dict(source="toy-small", d_sae=6, k=1, steps=3, batch_size=32, log_points=1, eval_tokens=64), root,
             name="sae-toy-small")
    with pytest.raises(KindRunError, match="toy model"):
        run_kind("neuroscope", {**SCOPE, "sae": "sae-toy-small"}, root, name="scope-toy")
