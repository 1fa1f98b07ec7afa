"""Evaluating a batch of SAEs on a fixed sample: every metric of sptui.science.sae_metrics, per instance.

    sample_metrics(f, x, x_hat, mask)                     reconstruction and sparsity on activations
    toy_metrics(f, x_true, weights, true_dirs, represented, mask)   + recovery of the true features
    ce_losses(reader, weights, architecture, ...)         cross-entropy of the model with the hooked
                                                          activation clean, zero-ablated, mean-ablated and
                                                          replaced by each instance's reconstruction
"""

from __future__ import annotations

import torch
from torch import Tensor

from sptui.devices import to_device
from sptui.science import sae as S
from sptui.science import sae_metrics as M


def sample_metrics(f: Tensor, x: Tensor, x_hat: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """l0, fvu, mse, dense_fraction [I] and per-latent firing frequency / max activation [I, D]."""
    x = x.expand_as(x_hat)
    freq = M.firing_frequency(f)
    return {
        "l0": M.l0(f), "fvu": M.fvu(x, x_hat), "mse": M.mse(x, x_hat),
        "dense_fraction": M.dense_fraction(freq, mask),
        "frequency": freq, "max_activation": f.amax(dim=1).clamp_min(0),
    }


def toy_metrics(f: Tensor, x_true: Tensor, W_dec: Tensor, true_directions: Tensor, represented: Tensor,
                mask: Tensor) -> dict[str, Tensor]:
    """Recovery of the represented true features: mmcs, corr (Hungarian-matched correlation), f1 [I],
    and per feature: the cosine matrix [I, n, D], matched latent [I, n], its correlation and F1 [I, n], and
    whether the feature occurs in the sample [I, n]."""
    cos = M.decoder_cosines(W_dec, true_directions)
    corr_all = M.correlations(x_true, f)
    # one matching for every per-feature number: matched_correlation's (represented features in the sample)
    corr, match = M.matched_correlation(x_true, f, represented, mask)
    per_f1 = M.firing_f1_per_feature(x_true, f, match)
    matched_corr = corr_all.gather(-1, match.clamp_min(0)[..., None])[..., 0]
    return {
        "mmcs": M.mmcs(cos, represented, mask), "corr": corr, "f1": M.firing_f1(x_true, f, match, represented),
        "cosines": cos, "match": match, "feature_corr": torch.where(match >= 0, matched_corr, torch.zeros_like(matched_corr)),
        "feature_f1": per_f1, "present": M.present(x_true),
    }


CE_BATCH = 4  # sequences per spliced forward pass: an LM's logits are [B, T, d_vocab] (50257 wide for GPT-2 BPE)


@torch.inference_mode()
def ce_losses(reader, weights: dict[str, Tensor], architecture: str, split: str, n_sequences: int,
              mean_activation: Tensor, check=lambda: None, baselines: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """Mean cross-entropy over the first `n_sequences` of a split with the hooked activation, at the
    positions the SAEs read, left alone (clean), set to zero, set to its mean, or replaced by each
    instance's reconstruction: {"clean", "zero", "mean": scalars, "sae": [I]}. `baselines` (an earlier
    answer's clean, zero and mean on the same sequences) skips those three passes: only the SAEs change
    during training."""
    n_inst = weights["W_enc"].shape[0]
    totals = {"clean": 0.0, "zero": 0.0, "mean": 0.0}
    sae_totals = torch.zeros(n_inst, dtype=torch.float64)
    count = 0
    for batch in _first_sequences(reader, split, n_sequences):
        check()
        if baselines is None:
            totals["clean"] += _spliced_loss(reader, batch, None)[0]
            totals["zero"] += _spliced_loss(reader, batch, torch.zeros_like)[0]
            totals["mean"] += _spliced_loss(reader, batch, lambda a: mean_activation.to(a.device, a.dtype).expand_as(a))[0]
        for i in range(n_inst):
            instance = {k: v[i:i + 1] for k, v in weights.items()}
            ce, n = _spliced_loss(reader, batch, _reconstruction(instance, architecture))
            sae_totals[i] += ce
        count += n  # predictions scored: the same for every replacement
    count = max(count, 1)
    if baselines is not None:
        return {**{k: baselines[k] for k in ("clean", "zero", "mean")}, "sae": sae_totals / count}
    return {**{k: torch.tensor(v / count) for k, v in totals.items()}, "sae": sae_totals / count}


def _first_sequences(reader, split: str, n: int):
    """The first n sequences of a split in groups of CE_BATCH."""
    used = 0
    for _, batch in reader.batches(split):
        for start in range(0, len(batch), CE_BATCH):
            group = batch[start:start + CE_BATCH][: n - used]
            if not group:
                return
            used += len(group)
            yield group
        if used >= n:
            return


def _reconstruction(weights: dict[str, Tensor], architecture: str):
    def reconstruct(a: Tensor) -> Tensor:
        f = S.encode(weights, a[None].float(), architecture)
        return S.decode(weights, f)[0].to(a.dtype)

    return reconstruct


def _spliced_loss(reader, batch, replace) -> tuple[float, int]:
    """The sequence set's summed loss with the hook's activations at the selected positions replaced by
    `replace(activations [M, d]) -> [M, d]` (None: the clean model)."""
    tokens, mask = reader.pad(batch)  # on the CPU: decide on the mask there, then move both
    select = reader.select_mask(batch, mask.shape)
    attention = None if bool(mask.all()) else to_device(mask.long(), reader.device)
    tokens, mask = to_device(tokens, reader.device), to_device(mask, reader.device)

    def hook_fn(act, hook):
        flat = act.reshape(act.shape[0], act.shape[1], -1)
        new = flat.clone()
        new[select] = replace(flat[select])
        return new.view(act.shape)

    hooks = [(reader.hook, hook_fn)] if replace is not None else []
    logits = reader.model.run_with_hooks(tokens, attention_mask=attention, fwd_hooks=hooks)
    return reader.sequences.loss(logits, tokens, mask, batch)
