"""Shared set-up of the SAE tests: finished runs of other kinds made without training them."""

from __future__ import annotations

from pathlib import Path

from sptui import runs
from sptui.spec import parse_text
from tests.helpers import job_toml


def fake_run(root: Path, run_id: str, toml_text: str, write_results) -> runs.RunDir:
    """A finished run of another kind: its job file, and whatever `write_results(results_dir)` saves."""
    spec = parse_text(toml_text, "x.toml")[0]
    run = runs.RunDir(root / "runs" / run_id)
    run.create(spec.to_toml())
    write_results(run.results)
    return run


def tiny_lm_run(root: Path, run_id: str = "0100-tiny-lm", name: str = "tiny-lm", d_model: int = 16) -> runs.RunDir:
    """A small random GPT-2-vocabulary model saved as an `lm` run (loads through sptui.models like a trained one)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from sptui.models import save_model

    cfg = HookedTransformerConfig(n_layers=2, d_model=d_model, n_heads=2, d_head=d_model // 2, d_mlp=2 * d_model,
                                  d_vocab=50257, n_ctx=48, act_fn="gelu_new", normalization_type="LN", seed=0)
    return fake_run(root, run_id, job_toml("lm", {"n_layers": 2}, name=name),
                    lambda results: save_model(HookedTransformer(cfg), results))
