"""What a Neuroscope scan looks at: MLP neurons of a model, or the latents of a sparse autoencoder.

Both give, per scanned key ("layer"), activations [B, T, n] of a padded batch, the unit's direction in the
residual stream (for the direct logit effect through W_U, when there is one) and the vectors whose cosine
makes "similar units":

    MLPNeurons(model, layers)         blocks.L.mlp.hook_post; output directions and neighbours: rows of W_out[L]
    SAELatents(model, hook, sae, key) the SAE's latents of the hook's activations; neighbours: decoder rows;
                                      output directions: W_dec for hooks that write the residual stream
                                      (resid_pre/mid/post, attn_out, mlp_out), W_dec @ W_out[L] for
                                      mlp.hook_post, the heads' W_O for attn.hook_z; none for other hooks
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import Tensor

RESIDUAL_HOOK = re.compile(r"^(blocks\.\d+\.(hook_resid_pre|hook_resid_mid|hook_resid_post|hook_attn_out|hook_mlp_out)"
                           r"|hook_embed|hook_pos_embed)$")
MLP_POST_HOOK = re.compile(r"^blocks\.(\d+)\.mlp\.hook_post$")
Z_HOOK = re.compile(r"^blocks\.(\d+)\.attn\.hook_z$")


class MLPNeurons:
    word = "neuron"

    def __init__(self, model, layers: Sequence[int]):
        self.model, self.layers = model, list(layers)
        self.n = model.cfg.d_mlp

    def activations(self, tokens: Tensor, mask: Tensor) -> dict[int, Tensor]:
        from sptui.neuroscope.scan import mlp_activations

        return mlp_activations(self.model, tokens, mask, self.layers)

    def output_directions(self, layer: int) -> Tensor | None:
        return self.model.W_out[layer].detach()

    def neighbour_vectors(self, layer: int) -> Tensor:
        return self.model.W_out[layer].detach()

    def describe(self) -> dict:
        return {"unit": "neuron", "hook": "blocks.L.mlp.hook_post",
                "direction": "W_out rows (the neuron's write to the residual stream)"}

    def processing(self, asked: bool) -> bool:
        return asked


class SAELatents:
    word = "latent"

    def __init__(self, model, hook: str, sae, key: int, about: dict | None = None):
        from sptui.sae.sources import check_hook, hook_layer

        check_hook(model, hook)
        self.model, self.hook, self.sae, self.key = model, hook, sae, key
        self.layers = [key]
        self.n = sae.d_sae
        layer = hook_layer(hook)
        self.stop_at = layer + 1 if layer is not None and layer + 1 < model.cfg.n_layers else None
        self.about = dict(about or {})

    @torch.inference_mode()
    def activations(self, tokens: Tensor, mask: Tensor) -> dict[int, Tensor]:
        found = {}

        def keep(act, hook):
            found["act"] = act

        self.model.run_with_hooks(tokens, attention_mask=mask.long(), stop_at_layer=self.stop_at,
                                  fwd_hooks=[(self.hook, keep)], return_type=None)
        act = found["act"]
        act = act.reshape(act.shape[0], act.shape[1], -1).float()
        sae = self.sae
        if act.shape[-1] != sae.d_in:  # a model folder replaced since the SAE was trained, a hand-edited summary
            from sptui.errors import SptuiError

            model = self.about.get("model") or self.model.cfg.model_name
            raise SptuiError(f"the SAE reads {sae.d_in}-wide activations, but {self.hook} of the model {model} is "
                             f"{act.shape[-1]} wide: this is not the model the SAE was trained on")
        if sae.W_enc.device != act.device:
            self._move(act.device)
        return {self.key: sae.encode(act)}

    def _move(self, device) -> None:
        s = self.sae
        for name in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"):
            value = getattr(s, name)
            if value is not None:
                setattr(s, name, value.to(device))

    def output_directions(self, key: int) -> Tensor | None:
        """Each latent's direction in the residual stream, [n, d_model], or None where the hook has none."""
        W_dec = self.sae.W_dec.detach().float().to(self.model.W_U.device)
        found = MLP_POST_HOOK.match(self.hook)
        if found:
            return W_dec @ self.model.W_out[int(found.group(1))].detach()
        found = Z_HOOK.match(self.hook)
        if found:
            W_O = self.model.W_O[int(found.group(1))].detach()  # [heads, d_head, d_model]
            return torch.einsum("nhd,hdm->nm", W_dec.view(W_dec.shape[0], W_O.shape[0], W_O.shape[1]), W_O)
        if RESIDUAL_HOOK.match(self.hook):
            return W_dec
        return None

    def neighbour_vectors(self, key: int) -> Tensor:
        return self.sae.W_dec.detach().float()

    def processing(self, asked: bool) -> bool:
        """The model is loaded as the SAE run loaded it, whatever the scan's own setting."""
        return bool(self.about.get("processing", True))

    def describe(self) -> dict:
        direction = {True: "decoder rows W_dec (in the residual stream)", False: None}[bool(RESIDUAL_HOOK.match(self.hook))]
        if MLP_POST_HOOK.match(self.hook):
            direction = "W_dec @ W_out (the latent's write to the residual stream through the MLP)"
        elif Z_HOOK.match(self.hook):
            direction = "W_dec through each head's W_O (the latent's write to the residual stream)"
        return {"unit": "latent", "hook": self.hook, "direction": direction,
                "neighbours": "cosine of decoder rows", **self.about}
