"""What a neuron's weights say, without any data: its direct logit effect and its nearest neighbours.

    direct_logit_effect(W_out, W_U, t)   top and bottom t tokens of W_out @ W_U per neuron, in chunks
                                         (the full [d_mlp, d_vocab] product would be ~800 MB for TinyStories)
    cosine_neighbours(W_outs, s)         per neuron, the s neurons (any scanned layer) whose output weight
                                         vectors have the highest and the lowest cosine similarity
    neighbours_against_null(W_out)       is a layer's neighbour similarity more than chance? The mean over its
                                         neurons of the best cosine to another neuron of the layer, against the
                                         same on the rotation null (sptui.science.null: the layer's rows mixed
                                         by a random rotation, keeping their mean, covariance and spectrum, so
                                         an anisotropic layer's shared directions do not count as similarity)
"""

from __future__ import annotations

import torch


@torch.inference_mode()
def direct_logit_effect(w_out: torch.Tensor, w_u: torch.Tensor, t: int, chunk: int = 256) -> dict[str, torch.Tensor]:
    """w_out [n, d_model], w_u [d_model, vocab] -> top/bottom token ids and values [n, t]."""
    t = min(t, w_u.shape[1])
    parts: dict[str, list[torch.Tensor]] = {"top_ids": [], "top_values": [], "bottom_ids": [], "bottom_values": []}
    for start in range(0, w_out.shape[0], chunk):
        effect = w_out[start:start + chunk].float() @ w_u.float()
        top = effect.topk(t, dim=1)
        bottom = effect.topk(t, dim=1, largest=False)
        parts["top_ids"].append(top.indices)
        parts["top_values"].append(top.values)
        parts["bottom_ids"].append(bottom.indices)
        parts["bottom_values"].append(bottom.values)
    return {k: torch.cat(v).cpu() for k, v in parts.items()}


@torch.inference_mode()
def cosine_neighbours(w_outs: list[torch.Tensor], s: int, chunk: int = 1024) -> list[dict[str, torch.Tensor]]:
    """w_outs: one [n, d_model] per scanned layer. Per layer: [n, s] `similar_*` and `dissimilar_*`
    arrays of (layer index into w_outs, neuron, cosine), excluding the neuron itself."""
    sizes = [w.shape[0] for w in w_outs]
    everything = torch.cat([w.float() for w in w_outs])
    unit = everything / everything.norm(dim=1, keepdim=True).clamp(min=1e-12)
    total = unit.shape[0]
    s = min(s, total - 1)
    device = unit.device
    layer_of = torch.repeat_interleave(torch.arange(len(sizes), device=device), torch.tensor(sizes, device=device))
    neuron_of = torch.cat([torch.arange(n, device=device) for n in sizes])
    result = []
    start = 0
    for n in sizes:
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in
                                                ("similar_layer", "similar_neuron", "similar_cos",
                                                 "dissimilar_layer", "dissimilar_neuron", "dissimilar_cos")}
        for a in range(start, start + n, chunk):
            b = min(a + chunk, start + n)
            cos = unit[a:b] @ unit.T
            rows = torch.arange(b - a, device=device)
            for name, largest, fill in (("similar", True, -torch.inf), ("dissimilar", False, torch.inf)):
                masked = cos.clone()
                masked[rows, rows + a] = fill  # never a neuron's own neighbour
                best = masked.topk(s, dim=1, largest=largest)
                parts[f"{name}_layer"].append(layer_of[best.indices])
                parts[f"{name}_neuron"].append(neuron_of[best.indices])
                parts[f"{name}_cos"].append(best.values)
        result.append({k: torch.cat(v).cpu() for k, v in parts.items()})
        start += n
    return result


NEIGHBOUR_NULL_DRAWS = 19  # rotation draws per layer: p down to 0.05


def best_neighbour_cosine(w: torch.Tensor, chunk: int = 1024) -> float:
    """Mean over the rows of w [n, d] of the highest cosine to another row (0 for a zero row)."""
    unit = w.float() / w.float().norm(dim=1, keepdim=True).clamp(min=1e-12)
    total = 0.0
    for a in range(0, len(unit), chunk):
        cos = unit[a:a + chunk] @ unit.T
        rows = torch.arange(cos.shape[0])
        cos[rows, rows + a] = -torch.inf
        total += float(cos.max(dim=1).values.sum())
    return total / len(unit)


@torch.inference_mode()
def neighbours_against_null(w: torch.Tensor, draws: int = NEIGHBOUR_NULL_DRAWS, seed: int = 0):
    """A layer's `best_neighbour_cosine` against `draws` rotation-null draws of its rows (module docstring),
    a NullVerdict (sptui.science.null.compare); seeded by (seed, draw)."""
    import numpy as np

    from sptui.science.null import RowMoments, compare, draw

    W = w.detach().double().cpu().numpy()
    moments = RowMoments.of(W)
    null = [best_neighbour_cosine(torch.from_numpy(draw(W, "rotation", np.random.default_rng([seed, b]), moments)))
            for b in range(draws)]
    return compare(best_neighbour_cosine(w.detach().cpu()), null, what="mean best-neighbour cosine",
                   null_name="the rotation null")
