"""One SAE on disk in SAELens's format: a folder with cfg.json + sae_weights.safetensors (+ sparsity.safetensors).

    from sae_lens import SAE
    sae = SAE.load_from_disk("artifacts/runs/0009-sae/results/saes/0")   # SAELens 6.x, no conversion

sptui writes and reads the format itself: saving or browsing an SAE never needs sae-lens installed (it
pulls wandb, plotly and nltk), and a test loads sptui's folders with SAELens and gets the same encodings.
Architectures map as SAELens saves its own trainings:

    sptui relu        -> "standard" (apply_b_dec_to_input false: Anthropic's April 2024 encoder has no
                          pre-encoder bias; the L1 weighting by decoder norm is a training detail only)
    sptui topk        -> "topk" (apply_b_dec_to_input true, rescale_acts_by_decoder_norm false: the
                          decoder was held at unit norm)
    sptui batchtopk   -> "jumprelu" with one threshold for all latents (SAELens's BatchTopK does this too)
    sptui jumprelu    -> "jumprelu"

Weights are saved in raw activation space (the training-time input scale is folded in), so
normalize_activations is "none". `load` reads any SAELens 6.x folder of these three architectures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sptui.errors import SptuiError

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
SPARSITY_FILE = "sparsity.safetensors"
FORMAT_VERSION = "6.0.0"  # the SAELens config format written (v6: fields at top level, metadata block)

SAELENS_ARCHITECTURE = {"relu": "standard", "topk": "topk", "batchtopk": "jumprelu", "jumprelu": "jumprelu"}
# SAELens inference architecture -> the sptui.science.sae activation that computes it
_SPTUI_ACTIVATION = {"standard": "relu", "topk": "topk", "jumprelu": "jumprelu"}


@dataclass
class SavedSAE:
    """One SAE as SAELens keeps it. W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in]."""

    architecture: str  # SAELens's name: standard | topk | jumprelu
    W_enc: Tensor
    b_enc: Tensor
    W_dec: Tensor
    b_dec: Tensor
    apply_b_dec_to_input: bool
    threshold: Tensor | None = None  # jumprelu
    k: int | None = None  # topk
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def d_in(self) -> int:
        return self.W_enc.shape[0]

    @property
    def d_sae(self) -> int:
        return self.W_enc.shape[1]

    def _batched(self) -> dict[str, Tensor]:
        w = {"W_enc": self.W_enc[None], "b_enc": self.b_enc[None], "W_dec": self.W_dec[None], "b_dec": self.b_dec[None],
             "d_sae": torch.tensor([self.d_sae]), "k": torch.tensor([self.k or 0])}
        if self.threshold is not None:
            w["threshold"] = self.threshold[None]
        return w

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Latents of activations x [..., d_in] -> [..., d_sae], as SAELens's `sae.encode`."""
        from sptui.science.sae import encode

        flat = x.reshape(1, -1, self.d_in).to(self.W_enc.dtype)
        f = encode(self._batched(), flat, _SPTUI_ACTIVATION[self.architecture], pre_bias=self.apply_b_dec_to_input)
        return f.reshape(*x.shape[:-1], self.d_sae)

    @torch.no_grad()
    def decode(self, f: Tensor) -> Tensor:
        return f @ self.W_dec + self.b_dec

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "architecture": self.architecture, "d_in": self.d_in, "d_sae": self.d_sae,
            "dtype": str(self.W_enc.dtype).removeprefix("torch."), "device": "cpu",
            "apply_b_dec_to_input": self.apply_b_dec_to_input, "normalize_activations": "none",
            "reshape_activations": "none",
            "metadata": {"sae_lens_version": FORMAT_VERSION, "sae_lens_training_version": FORMAT_VERSION, **self.metadata},
        }
        if self.architecture == "topk":
            assert self.k is not None, "a TopK SAE has k"
            cfg.update(k=int(self.k), rescale_acts_by_decoder_norm=False)
        return cfg


def from_batched(weights: dict[str, Tensor], i: int, architecture: str, metadata: dict[str, Any] | None = None) -> SavedSAE:
    """Instance i of `BatchedSAETrainer.export()`-style weights (padding latents dropped) as a SavedSAE."""
    from sptui.science.sae import PRE_ENCODER_BIAS

    n = int(weights["d_sae"][i])
    threshold = weights.get("threshold")
    return SavedSAE(
        architecture=SAELENS_ARCHITECTURE[architecture],
        W_enc=weights["W_enc"][i, :, :n].detach().cpu().contiguous(),
        b_enc=weights["b_enc"][i, :n].detach().cpu().contiguous(),
        W_dec=weights["W_dec"][i, :n].detach().cpu().contiguous(),
        b_dec=weights["b_dec"][i].detach().cpu().contiguous(),
        apply_b_dec_to_input=PRE_ENCODER_BIAS[architecture],
        threshold=None if threshold is None else threshold[i, :n].detach().cpu().contiguous(),
        k=int(weights["k"][i]) if architecture == "topk" else None,
        metadata=dict(metadata or {}),
    )


def save(sae: SavedSAE, folder: str | Path, firing_frequency: Tensor | None = None) -> Path:
    """Write cfg.json + sae_weights.safetensors (+ sparsity.safetensors: log10 firing frequency, as SAELens
    saves it, when given). Each file is written atomically."""
    import safetensors.torch

    from sptui import runs

    folder = Path(folder)
    tensors = {"W_enc": sae.W_enc, "b_enc": sae.b_enc, "W_dec": sae.W_dec, "b_dec": sae.b_dec}
    if sae.threshold is not None:
        tensors["threshold"] = sae.threshold
    data = safetensors.torch.save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    runs.atomic_write_bytes(folder / WEIGHTS_FILE, data)
    if firing_frequency is not None:
        log = torch.log10(firing_frequency.detach().float().cpu() + 1e-10)
        runs.atomic_write_bytes(folder / SPARSITY_FILE, safetensors.torch.save({"sparsity": log.contiguous()}))
    runs.atomic_write_json(folder / CFG_FILE, sae.config())
    return folder


def load(folder: str | Path) -> SavedSAE:
    """Read a SAELens 6.x folder (standard, topk or jumprelu); every problem is one clear SptuiError."""
    import safetensors.torch

    from sptui import runs

    folder = Path(folder)
    cfg = runs.read_json(folder / CFG_FILE)
    arch = cfg.get("architecture")
    if arch not in _SPTUI_ACTIVATION:
        raise SptuiError(f"{folder / CFG_FILE}: SAE architecture {arch!r} is not supported "
                         f"(supported: {', '.join(_SPTUI_ACTIVATION)})")
    if cfg.get("normalize_activations", "none") != "none" or cfg.get("reshape_activations", "none") != "none":
        raise SptuiError(f"{folder / CFG_FILE}: activation normalisation/reshaping "
                         f"({cfg.get('normalize_activations')}, {cfg.get('reshape_activations')}) is not supported")
    if arch == "topk" and cfg.get("rescale_acts_by_decoder_norm"):
        raise SptuiError(f"{folder / CFG_FILE}: topk SAEs with rescale_acts_by_decoder_norm are not supported")
    path = folder / WEIGHTS_FILE
    if not path.exists():
        raise SptuiError(f"{path}: missing")
    try:
        w = safetensors.torch.load_file(str(path))
    except Exception as e:
        raise SptuiError(f"{path}: corrupt safetensors file ({e})") from None
    needed = ["W_enc", "b_enc", "W_dec", "b_dec"] + (["threshold"] if arch == "jumprelu" else [])
    missing = [k for k in needed if k not in w]
    if missing:
        raise SptuiError(f"{path}: no {missing[0]} (a {arch} SAE needs {', '.join(needed)})")
    d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
    if tuple(w["W_enc"].shape) != (d_in, d_sae) or tuple(w["W_dec"].shape) != (d_sae, d_in):
        raise SptuiError(f"{path}: W_enc {tuple(w['W_enc'].shape)} / W_dec {tuple(w['W_dec'].shape)} do not match "
                         f"d_in {d_in}, d_sae {d_sae} in {CFG_FILE}")
    return SavedSAE(architecture=arch, W_enc=w["W_enc"].float(), b_enc=w["b_enc"].float(), W_dec=w["W_dec"].float(),
                    b_dec=w["b_dec"].float(), apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", True)),
                    threshold=w["threshold"].float() if "threshold" in w else None,
                    k=int(cfg["k"]) if arch == "topk" else None, metadata=dict(cfg.get("metadata") or {}))


def metadata_json(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata made JSON-clean (SAELens reads it back into its SAEMetadata)."""
    return json.loads(json.dumps(metadata, default=str))
