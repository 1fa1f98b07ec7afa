"""What kinds' memory estimates share: the `Estimate` they return, the shape of a model a job names, read from its
config (never its weights), and the bytes a TransformerLens model holds.

`model_shape(ref, runs_root)` reads the config of a sptui run (results/config.json), a Hugging Face folder
(config.json, through TransformerLens's own conversion, offline) or a TransformerLens name already in the local
Hugging Face cache; where that cannot be known without the network or the weights (a name not cached, a folder
TransformerLens cannot read) it raises `NotKnown` saying why, and the estimate passes the reason on.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sptui.names import counted

FLOAT32 = 4


@dataclass(frozen=True)
class Estimate:
    """What a kind's `memory_estimate` returns: the bytes a run holds at its peak that can be counted before it
    starts, as a lower bound within ~2x, and in words what could not be counted.

    - `unknown` empty: `bytes` is the whole peak ("needs about 1.2 GiB").
    - `unknown` set: a part of the peak cannot be known before the run starts (a model whose config is not here,
      a corpus's vocabulary); `bytes` counts the rest, so it is still a lower bound ("needs at least 1.2 GiB"),
      and 0 where nothing meaningful is left ("not known before the run starts"). Never a number for what was not
      read: a part that is not known is named here, not counted as 0 bytes.
    - `of`: what the peak scales with, in the job's own terms ("8 SAEs: 4 sweep points x 2 toy models",
      "400 problems x 5 starts"), so a refusal names what to lower; empty where the parameters say it alone.
    """

    bytes: int
    of: str = ""
    unknown: str = ""

    @classmethod
    def not_known(cls, why: str, at_least: int = 0, of: str = "") -> Estimate:
        return cls(int(at_least), of=of, unknown=why)

    @property
    def known(self) -> bool:
        return not self.unknown

    def describe(self) -> str:
        """As the run's log says it: "needs about 1.2 GiB at its peak (4 instances)", "needs at least ...; more is
        not known before the run starts (why)", or "not known before the run starts (why)"."""
        of = f" ({self.of})" if self.of else ""
        if self.known:
            return f"needs about {size_text(self.bytes)} at its peak{of}"
        if self.bytes:
            return (f"needs at least {size_text(self.bytes)} at its peak{of}; more is not known before the run starts "
                    f"({self.unknown})")
        return f"not known before the run starts ({self.unknown})"


def size_text(n: int) -> str:
    """A memory size as people say it: 1.5 GiB, 300 MiB, 12 KiB (a tiny toy model's peak is not "0 MiB")."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}" if unit == "GiB" else f"{n / size:.0f} {unit}"
    return f"{n} bytes"


class NotKnown(Exception):
    """A size an estimate needs that cannot be read before the run starts; its message says why."""


def instances_of(count: int) -> str:
    """What a batched kind's peak scales with: the instances of its sweep trained together ("4 instances")."""
    return counted(count, "instance")


# A loaded model's inference, as kinds that read a model count it (measured against torch's allocator in
# tests/test_memory_estimates.py):
LOAD_COPIES = 4          # float32 copies of the weights while a model loads with TransformerLens's weight
                         # processing: its checkpoint's state, the model, and the folded and centred copies
LOAD_COPIES_RAW = 2      # without processing: the state and the model
FORWARD_PER_D_MODEL = 6  # numbers a token holds per block run without gradients: the residual stream, a
                         # LayerNorm's output, q/k/v/z and the block's outputs
FORWARD_PER_SCORE = 2    # per block run, head and position attended to: a row of attention scores and the pattern


@dataclass(frozen=True)
class ModelShape:
    """A TransformerLens model's sizes (HookedTransformerConfig's names)."""

    n_layers: int
    d_model: int
    n_heads: int
    d_head: int
    d_mlp: int  # 0 for attention-only models
    d_vocab: int
    n_ctx: int

    @property
    def parameters(self) -> int:
        """Parameters of a GPT-style HookedTransformer of this shape: per block Q, K, V, O and their biases, the
        MLP's W_in, b_in, W_out, b_out and two LayerNorms; embedding, positions, final LayerNorm, unembedding and
        its bias: exact for sptui's language models and GPT-2 / GPT-Neo (tests/test_memory_estimates.py). Models
        without some of these (attention-only, no LayerNorm) have a few d_model-sized vectors a block fewer."""
        d, attn = self.d_model, self.n_heads * self.d_head
        block = 4 * d * attn + 3 * attn + d + 2 * d * self.d_mlp + self.d_mlp + d + 4 * d
        return self.n_layers * block + self.d_vocab * d + self.n_ctx * d + 2 * d + d * self.d_vocab + self.d_vocab

    def loading_bytes(self, processing: bool = True) -> int:
        """Bytes while the model loads (sptui.models.load_model), the largest it is."""
        return FLOAT32 * (LOAD_COPIES if processing else LOAD_COPIES_RAW) * self.parameters

    def forward_bytes(self, tokens: int, context: int, blocks: int) -> int:
        """Bytes a forward pass without gradients holds for `tokens` tokens (texts of `context` tokens) through
        the first `blocks` blocks, besides the activations a caller keeps."""
        return FLOAT32 * tokens * blocks * (FORWARD_PER_D_MODEL * self.d_model + FORWARD_PER_SCORE * self.n_heads * context)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> ModelShape:
        d_model, n_heads = int(cfg["d_model"]), int(cfg.get("n_heads") or 1)
        return cls(n_layers=int(cfg["n_layers"]), d_model=d_model, n_heads=n_heads,
                   d_head=int(cfg.get("d_head") or d_model // n_heads),
                   d_mlp=0 if cfg.get("attn_only") else int(cfg.get("d_mlp") or 0),
                   d_vocab=int(cfg["d_vocab"]), n_ctx=int(cfg["n_ctx"]))


def model_shape(ref: str, runs_root: str | Path | None = None) -> ModelShape:
    """The shape of the model `ref` names (as sptui.models.load_model resolves it), from its config only;
    NotKnown, saying why, where that cannot be read here."""
    from sptui.errors import SptuiError
    from sptui.models import CONFIG_FILE, _cached_snapshot, resolve_ref

    try:
        kind, where = resolve_ref(str(ref).strip(), runs_root)
    except SptuiError as e:  # the job fails on it with the same line
        raise NotKnown(str(e)) from None
    if kind == "name":
        folder = _cached_snapshot(where)
        if folder is None:
            raise NotKnown(f'the model "{where}" is not in the local Hugging Face cache: its config is downloaded '
                           "when the run starts")
        return _hf_shape(folder)
    if kind == "hf-folder":
        return _hf_shape(Path(where))
    config = Path(where) / CONFIG_FILE
    try:
        return ModelShape.from_config(json.loads(config.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise NotKnown(f"{config} cannot be read as a model's config ({type(e).__name__}: {e})") from None


def _hf_shape(folder: Path) -> ModelShape:
    """A Hugging Face folder's config.json through TransformerLens's conversion (offline: a local folder)."""
    from sptui.models import _hub_offline, _quiet

    try:
        from transformer_lens import loading_from_pretrained as loading

        with _hub_offline(), _quiet():
            cfg = loading.convert_hf_model_config(str(folder.resolve()))
        return ModelShape.from_config(cfg)
    except Exception as e:  # an architecture TransformerLens does not know: loading says so, with the reason
        logging.getLogger(__name__).debug("no shape for %s: %s", folder, e)
        first = (str(e).strip().splitlines() or [""])[0]
        raise NotKnown(f"TransformerLens cannot read {folder / 'config.json'} ({type(e).__name__}: {first})") from None


def tensor_shape(path: str | Path, key: str) -> tuple[int, ...]:
    """A tensor's shape from a safetensors file's header, without reading the tensor (KeyError if absent)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        if key not in f.keys():
            raise KeyError(key)
        return tuple(f.get_slice(key).get_shape())
