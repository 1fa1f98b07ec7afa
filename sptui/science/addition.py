"""The one-layer, attention-only addition transformer of "Experiments in Superposition" (project 1).

Pure tensor code: the data, the TransformerLens config, and a fast training forward.

Data. Two n-digit operands a, b, zero-padded and written least-significant digit first, then n+1 answer
positions fed as `=` (token 10); the target at answer position j is digit j of a+b. Vocabulary
"0123456789=^" (12 tokens, `^` unused), outputs are the 10 digits. For n=6: 6 + 6 + 7 = 19 positions.

Fast forward. The model is tiny, so a training step is dominated by per-op overhead and by batched
matmuls with 2-wide inner dimensions, not by FLOPs. Every answer position holds the same token (`=`), so
its query is the same for every example, and each operand position holds one of 10 digits. So
`FastAddition` computes, for the 20n+n+1 possible (position, token) key rows, every attention score
(against the n+1 answer queries) and every value-times-readout (V @ W_O @ W_U) once per step as small
tables, then gathers rows of those tables per example, takes the softmax over key positions and one
batched matmul to the logits. Only the n+1 answer positions are computed (the only ones the loss reads).
It is the same function of the same parameters as `HookedTransformer.forward` (tested to float
tolerance, gradients too), so the HookedTransformer stays the saved and analysed model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor

EQUALS = 10  # the `=` token fed at every answer position
VOCAB = "0123456789=^"
D_VOCAB = len(VOCAB)
D_VOCAB_OUT = 10


def n_ctx(n_digits: int) -> int:
    return 3 * n_digits + 1


# ------------------------------------------------------------------ data

@dataclass
class AdditionData:
    """Operand digits and answer digits, LSB first. `operands` [N, 2n] (a then b), `answers` [N, n+1]."""

    operands: Int[Tensor, "examples operand_digits"]
    answers: Int[Tensor, "examples answer_digits"]

    def __len__(self) -> int:
        return self.operands.shape[0]

    def tokens(self) -> Int[Tensor, "examples n_ctx"]:
        """The model's input as TransformerLens sees it: operands then n+1 `=` tokens, [N, 3n+1]."""
        n_answer = self.answers.shape[1]
        eq = torch.full((len(self), n_answer), EQUALS, dtype=self.operands.dtype, device=self.operands.device)
        return torch.cat([self.operands, eq], dim=1)

    def to(self, device) -> AdditionData:
        return AdditionData(self.operands.to(device), self.answers.to(device))


def digits_lsb_first(x: Int[np.ndarray, " count"], n: int) -> Int[np.ndarray, "count {n}"]:
    """[N] non-negative integers -> [N, n] digits, least significant first."""
    powers = 10 ** np.arange(n, dtype=np.int64)
    return (x[:, None] // powers[None, :]) % 10


def sample_pairs(n_digits: int, count: int, seed: int) -> tuple[Int[np.ndarray, " {count}"], Int[np.ndarray, " {count}"]]:
    """`count` distinct pairs (a, b), each uniform in [0, 10^n), in random order (no duplicates)."""
    space = 10 ** (2 * n_digits)  # every pair as one code a * 10^n + b; 10^18 < 2^63 for n <= 9
    if count > space:
        raise ValueError(f"{count} distinct pairs asked for, but {n_digits}-digit addition has only {space}")
    rng = np.random.default_rng(seed)
    if space <= 4 * count or space <= 10**7:
        codes = rng.choice(space, size=count, replace=False)
    else:
        codes = np.empty(0, dtype=np.int64)
        while codes.size < count:  # draw with replacement, keep first occurrences in draw order
            draw = np.concatenate([codes, rng.integers(0, space, size=count - codes.size + 64, dtype=np.int64)])
            _, first = np.unique(draw, return_index=True)
            codes = draw[np.sort(first)]
        codes = codes[:count]
    base = 10**n_digits
    return codes // base, codes % base


def make_data(n_digits: int, n_train: int, n_test: int, seed: int) -> tuple[AdditionData, AdditionData]:
    """Disjoint train and test sets: the first n_train distinct pairs are train, the next n_test test."""
    a, b = sample_pairs(n_digits, n_train + n_test, seed)
    operands = np.concatenate([digits_lsb_first(a, n_digits), digits_lsb_first(b, n_digits)], axis=1)
    answers = digits_lsb_first(a + b, n_digits + 1)
    ops, ans = torch.from_numpy(operands).long(), torch.from_numpy(answers).long()
    return AdditionData(ops[:n_train], ans[:n_train]), AdditionData(ops[n_train:], ans[n_train:])


def swap_operands(operands: Int[Tensor, "*batch operand_digits"]) -> Int[Tensor, "*batch operand_digits"]:
    """[..., 2n] a then b -> b then a (the same sum: addition commutes)."""
    return operands.roll(operands.shape[-1] // 2, dims=-1)


def swap_is_in(data: AdditionData, other: AdditionData) -> Bool[Tensor, " examples"]:
    """[len(data)] bool: whether the pair b + a of each example of `data` is an example of `other`."""
    weights = 10 ** torch.arange(data.operands.shape[1], dtype=torch.int64)
    codes = (other.operands.cpu() * weights).sum(1)
    return torch.isin((swap_operands(data.operands.cpu()) * weights).sum(1), codes)


# ------------------------------------------------------------------ model

def model_config(n_digits: int, n_heads: int = 32, d_head: int = 2, d_model: int = 128, seed: int = 0) -> dict[str, Any]:
    """HookedTransformerConfig arguments for the paper's model (seed-code.md, project 1)."""
    return dict(
        n_layers=1,
        n_heads=n_heads,
        d_head=d_head,
        d_model=d_model,
        attn_only=True,
        d_mlp=None,
        act_fn=None,
        normalization_type=None,
        attention_dir="causal",
        d_vocab=D_VOCAB,
        d_vocab_out=D_VOCAB_OUT,
        n_ctx=n_ctx(n_digits),
        positional_embedding_type="standard",
        use_attn_scale=True,
        init_mode="gpt2",  # std 0.8 / sqrt(d_model), as the paper's notebook
        seed=seed,
    )


def build_model(config: dict[str, Any], device="cpu"):
    """A fresh HookedTransformer on `device` (its init is seeded by config["seed"])."""
    from transformer_lens import HookedTransformerConfig

    return hooked_transformer(HookedTransformerConfig(**{**config, "device": str(device)}))


def hooked_transformer(cfg):
    """HookedTransformer(cfg), without the 3.x deprecation notice: the paper's model and the saved
    format are deliberately the HookedTransformer ones."""
    import warnings

    from transformer_lens import HookedTransformer

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="HookedTransformer is deprecated", category=DeprecationWarning)
        return HookedTransformer(cfg)


def portable_config(model) -> dict[str, Any]:
    """The model's HookedTransformerConfig as plain JSON that `HookedTransformerConfig(**cfg)` accepts.

    `dtype` is left out (the config rejects a string there; the default float32 is what we train) and
    so is `device` (the loader picks its own)."""
    cfg = dict(model.cfg.to_dict())  # to_dict returns the live __dict__: copy before editing
    if cfg.get("dtype") not in (None, torch.float32):
        raise ValueError(f"only float32 models can be saved portably, found {cfg['dtype']}")
    cfg.pop("dtype", None)
    cfg.pop("device", None)
    return {k: v for k, v in cfg.items() if _jsonable(v)}


def _jsonable(v: Any) -> bool:
    if v is None or isinstance(v, (bool, int, float, str)):
        return True
    if isinstance(v, (list, tuple)):
        return all(_jsonable(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _jsonable(x) for k, x in v.items())
    return False


class FastAddition:
    """Answer-position logits of a one-layer attention-only HookedTransformer, computed with few ops.

    Holds references to the model's own parameters, so gradients and optimizer steps update the
    HookedTransformer itself. Assumes the config `model_config` builds (checked on construction).
    """

    def __init__(self, model, n_digits: int):
        cfg = model.cfg
        if not (cfg.n_layers == 1 and cfg.attn_only and cfg.normalization_type is None
                and cfg.positional_embedding_type == "standard" and cfg.attention_dir == "causal"
                and cfg.n_ctx == n_ctx(n_digits)):
            raise ValueError("FastAddition needs the one-layer attention-only addition model")
        self.model = model
        self.n = n_digits
        self.n_heads, self.d_head = cfg.n_heads, cfg.d_head
        self.scale = math.sqrt(cfg.d_head) if cfg.use_attn_scale else 1.0
        n_ans = n_digits + 1
        device = model.embed.W_E.device
        # causal mask among the answer positions, [key, query]: answer query i sees answer keys 0..i
        self.answer_mask = torch.full((n_ans, n_ans), -math.inf, device=device).tril(-1)
        # operand position p holding digit t is row p * 10 + t of the key/value table
        self.row_offset = (torch.arange(2 * n_digits, device=device) * 10)

    def __call__(self, operands: Int[Tensor, "batch operand_digits"]) -> Float[Tensor, "batch answer_digits 10"]:
        """operands [B, 2n] digit tokens -> logits [B, n+1, 10] at the answer positions."""
        m, n, H = self.model, self.n, self.n_heads
        attn = m.blocks[0].attn
        W_E, W_pos, W_U = m.embed.W_E, m.pos_embed.W_pos, m.unembed.W_U
        d = W_E.shape[1]
        n_op, n_ans = 2 * n, n + 1
        B = operands.shape[0]

        # residual stream: one row per operand (position, digit), and the fixed answer rows
        x_ops = (W_E[None, :10, :] + W_pos[:n_op, None, :]).reshape(n_op * 10, d)
        x_ans = W_E[EQUALS] + W_pos[n_op:]  # [n+1, d]
        x_all = torch.cat([x_ops, x_ans], dim=0)  # [2n*10 + n+1, d]

        q = (torch.einsum("id,hde->hie", x_ans, attn.W_Q) + attn.b_Q[:, None, :]) / self.scale  # [H, n+1, dh]
        k = torch.einsum("rd,hde->hre", x_all, attn.W_K) + attn.b_K[:, None, :]  # [H, rows, dh]
        v = torch.einsum("rd,hde->hre", x_all, attn.W_V) + attn.b_V[:, None, :]  # [H, rows, dh]
        W_OU = attn.W_O @ W_U  # [H, dh, 10]: what a head's 2-D output does to the logits
        # every score and every value-times-readout a key row can produce, as tables (key row first)
        scores = torch.bmm(k, q.transpose(1, 2)).permute(1, 0, 2)  # [rows, H, n+1]
        vo = torch.bmm(v, W_OU).permute(1, 0, 2)  # [rows, H, 10]
        n_rows = n_op * 10

        rows = operands + self.row_offset  # [B, 2n]
        flat = rows.reshape(-1)
        s_ops = scores[:n_rows].index_select(0, flat).reshape(B, n_op, H, n_ans)
        s_ans = (scores[n_rows:] + self.answer_mask[:, None, :]).expand(B, n_ans, H, n_ans)
        pattern = torch.softmax(torch.cat([s_ops, s_ans], dim=1), dim=1)  # over key positions
        p_ops = pattern[:, :n_op].reshape(B, n_op * H, n_ans)
        p_ans = pattern[:, n_op:].reshape(B, n_ans * H, n_ans)
        vo_ops = vo[:n_rows].index_select(0, flat).reshape(B, n_op * H, 10)
        vo_ans = vo[n_rows:].reshape(n_ans * H, 10)
        direct = (x_ans + attn.b_O) @ W_U + m.unembed.b_U  # [n+1, 10]: residual path and output bias
        return torch.bmm(p_ops.transpose(1, 2), vo_ops) + torch.matmul(p_ans.transpose(1, 2), vo_ans) + direct


def answer_logits(model, data_tokens: Int[Tensor, "batch n_ctx"], n_digits: int) -> Float[Tensor, "batch {n_digits}+1 10"]:
    """The plain TransformerLens readout: logits at the n+1 answer positions, [B, n+1, 10]."""
    return model(data_tokens, return_type="logits")[:, -(n_digits + 1):, :]


def loss_fn(logits: Float[Tensor, "*batch 10"], answers: Int[Tensor, "*batch"]) -> Float[Tensor, ""]:
    """Mean cross-entropy over every answer position (the paper's loss)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), answers.reshape(-1))


@torch.no_grad()
def evaluate(forward, data: AdditionData, batch_size: int = 4096) -> dict[str, Any]:
    """Loss, per-digit accuracy, exact-match accuracy and accuracy per answer position (as floats): one model's
    `evaluate_batched` (the one definition of these numbers)."""
    return evaluate_batched(lambda ops: forward(ops[0])[None], data.operands[None], data.answers[None], batch_size)[0]


# ------------------------------------------------------------------ many models as one

PARAM_NAMES = ("embed.W_E", "pos_embed.W_pos", "blocks.0.attn.W_Q", "blocks.0.attn.b_Q", "blocks.0.attn.W_K",
               "blocks.0.attn.b_K", "blocks.0.attn.W_V", "blocks.0.attn.b_V", "blocks.0.attn.W_O",
               "blocks.0.attn.b_O", "unembed.W_U", "unembed.b_U")


def initial_parameters(configs: list[dict[str, Any]], device="cpu") -> dict[str, torch.Tensor]:
    """Stacked parameters [I, ...] (TransformerLens state-dict names) of one fresh HookedTransformer per
    config: each instance is initialised by TransformerLens itself from its own `seed`, exactly as a model
    trained alone. (Building a HookedTransformer with a seed also reseeds torch's global generator.)"""
    states = []
    for config in configs:
        model = build_model(config, "cpu")  # init on CPU: the same weights whatever the device
        states.append({k: v.detach() for k, v in model.state_dict().items()})
    return {k: torch.stack([s[k] for s in states]).to(device) for k in PARAM_NAMES}


def instance_state_dict(params: dict[str, torch.Tensor], k: int, config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Instance k as a full HookedTransformer state dict (its buffers too), ready for `load_state_dict`."""
    model = build_model(config, "cpu")
    state = {name: v.detach() for name, v in model.state_dict().items()}
    for name in PARAM_NAMES:
        state[name] = params[name][k].detach().to("cpu").contiguous()
    return state


class BatchedAddition:
    """Answer-position logits of many one-layer attention-only addition models at once: `FastAddition` with
    an instance dimension on every parameter and every batch.

    params: TransformerLens names -> stacked tensors [I, ...] (leaves the optimizer updates in place).
    Instance i's logits depend on its own parameters only, so the gradient of the summed per-instance
    losses gives every instance exactly its own gradient. Checked against TransformerLens per instance.
    """

    def __init__(self, params: dict[str, torch.Tensor], n_digits: int, use_attn_scale: bool = True):
        missing = [k for k in PARAM_NAMES if k not in params]
        if missing:
            raise ValueError(f"missing parameters: {', '.join(missing)}")
        self.params = params
        self.n = n_digits
        W_Q = params["blocks.0.attn.W_Q"]
        self.n_instances, self.n_heads, _, self.d_head = W_Q.shape
        if params["pos_embed.W_pos"].shape[1] != n_ctx(n_digits):
            raise ValueError(f"the parameters are for n_ctx {params['pos_embed.W_pos'].shape[1]}, not {n_digits} digits")
        self.scale = math.sqrt(self.d_head) if use_attn_scale else 1.0
        device = W_Q.device
        n_ans = n_digits + 1
        self.answer_mask = torch.full((n_ans, n_ans), -math.inf, device=device).tril(-1)  # [key, query]
        self.row_offset = torch.arange(2 * n_digits, device=device) * 10
        self.n_rows = 2 * n_digits * 10 + n_ans  # key rows per instance: (operand position, digit), then answers

    def __call__(self, operands: torch.Tensor) -> torch.Tensor:
        """operands [I, B, 2n] digit tokens (each instance its own batch) -> logits [I, B, n+1, 10]."""
        P, n, H = self.params, self.n, self.n_heads
        n_models, B = operands.shape[0], operands.shape[1]
        W_E, W_pos, W_U = P["embed.W_E"], P["pos_embed.W_pos"], P["unembed.W_U"]
        d = W_E.shape[-1]
        n_op, n_ans = 2 * n, n + 1

        x_ops = (W_E[:, None, :10, :] + W_pos[:, :n_op, None, :]).reshape(n_models, n_op * 10, d)
        x_ans = W_E[:, EQUALS, None, :] + W_pos[:, n_op:]  # [I, n+1, d]
        x_all = torch.cat([x_ops, x_ans], dim=1)  # [I, rows, d]

        q = (torch.einsum("iad,ihde->ihae", x_ans, P["blocks.0.attn.W_Q"]) + P["blocks.0.attn.b_Q"][:, :, None, :]) / self.scale
        k = torch.einsum("ird,ihde->ihre", x_all, P["blocks.0.attn.W_K"]) + P["blocks.0.attn.b_K"][:, :, None, :]
        v = torch.einsum("ird,ihde->ihre", x_all, P["blocks.0.attn.W_V"]) + P["blocks.0.attn.b_V"][:, :, None, :]
        W_OU = torch.einsum("ihed,idc->ihec", P["blocks.0.attn.W_O"], W_U)  # [I, H, dh, 10]
        R = self.n_rows
        # every score and value-times-readout a key row can produce, per instance (key row first)
        scores = torch.bmm(k.reshape(n_models * H, R, -1), q.reshape(n_models * H, n_ans, -1).transpose(1, 2))
        scores = scores.reshape(n_models, H, R, n_ans).permute(0, 2, 1, 3)  # [I, rows, H, n+1]
        vo = torch.bmm(v.reshape(n_models * H, R, -1), W_OU.reshape(n_models * H, -1, 10)).reshape(n_models, H, R, 10).permute(0, 2, 1, 3)
        n_rows_ops = n_op * 10

        # flat row index into [I * rows]: instance i's table starts at i * rows
        flat = (operands + self.row_offset + (torch.arange(n_models, device=operands.device) * R)[:, None, None]).reshape(-1)
        s_ops = scores.reshape(n_models * R, H, n_ans).index_select(0, flat).reshape(n_models, B, n_op, H, n_ans)
        s_ans = (scores[:, n_rows_ops:] + self.answer_mask[None, :, None, :])[:, None].expand(n_models, B, n_ans, H, n_ans)
        pattern = torch.softmax(torch.cat([s_ops, s_ans], dim=2), dim=2)  # over key positions
        p_ops = pattern[:, :, :n_op].reshape(n_models * B, n_op * H, n_ans)
        p_ans = pattern[:, :, n_op:].reshape(n_models, B, n_ans * H, n_ans)
        vo_ops = vo.reshape(n_models * R, H, 10).index_select(0, flat).reshape(n_models * B, n_op * H, 10)
        vo_ans = vo[:, n_rows_ops:].reshape(n_models, n_ans * H, 10)
        direct = torch.einsum("iad,idc->iac", x_ans + P["blocks.0.attn.b_O"][:, None, :], W_U) + P["unembed.b_U"][:, None, :]
        from_ops = torch.bmm(p_ops.transpose(1, 2), vo_ops).reshape(n_models, B, n_ans, 10)
        from_ans = torch.bmm(p_ans.transpose(2, 3).reshape(n_models, B * n_ans, n_ans * H), vo_ans).reshape(n_models, B, n_ans, 10)
        return from_ops + from_ans + direct[:, None]


def batched_loss(logits: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """Per-instance mean cross-entropy over every answer position: logits [I, B, n+1, 10] -> [I]."""
    n_models = logits.shape[0]
    per = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), answers.reshape(-1), reduction="none")
    return per.reshape(n_models, -1).mean(1)


@torch.no_grad()
def evaluate_batched(forward, operands: torch.Tensor, answers: torch.Tensor, batch_size: int = 4096) -> list[dict[str, Any]]:
    """Per model (operands [I, N, 2n], answers [I, N, n+1] -> one dict per instance), over its N examples:
        loss     mean cross-entropy over every answer position of every example (the paper's training loss)
        acc_pos  per answer position j: the share of examples whose argmax digit at j is the answer digit
        acc      mean of acc_pos (per-digit accuracy)
        exact    the share of examples with every answer digit right (the whole sum)
    Ours (the paper reports loss and per-digit accuracy; exact match is the stricter whole-sum reading)."""
    n_models, N = operands.shape[0], operands.shape[1]
    n_ans = answers.shape[2]
    total_loss = torch.zeros(n_models, dtype=torch.float64, device=answers.device)
    correct_pos = torch.zeros(n_models, n_ans, dtype=torch.float64, device=answers.device)
    exact = torch.zeros(n_models, dtype=torch.float64, device=answers.device)
    chunk = max(1, batch_size // max(1, n_models))
    for start in range(0, N, chunk):
        ops, ans = operands[:, start:start + chunk], answers[:, start:start + chunk]
        logits = forward(ops)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ans.reshape(-1), reduction="none")
        total_loss += ce.reshape(n_models, -1).double().sum(1)
        hit = logits.argmax(-1) == ans
        correct_pos += hit.sum(1).double()
        exact += hit.all(-1).sum(1).double()
    per_pos = (correct_pos / N).cpu()
    out = []
    for i in range(n_models):
        pos = per_pos[i].tolist()
        out.append({"loss": float(total_loss[i]) / (N * n_ans), "acc": float(sum(pos) / len(pos)),
                    "exact": float(exact[i]) / N, "acc_pos": pos})
    return out


def hooked_transformer_from_state(config: dict[str, Any], state: dict[str, torch.Tensor], device="cpu"):
    """A HookedTransformer of `config` holding `state` (a full state dict), in eval mode."""
    model = build_model(config, device)
    model.load_state_dict(state)
    return model.eval()


CPU_PASS_ELEMENTS = 1 << 20  # on a CPU, attention scores per forward/backward pass (see BatchedTrainer)


class BatchedTrainer:
    """Many addition models as one: stacked parameters (TransformerLens names, [I, ...]), the batched forward,
    and AdamW with a learning rate and weight decay per instance (torch.optim.AdamW's update, per instance).
    `step` is one optimizer step for every instance on its own batch.

    On a CPU the forward and backward run `instance_chunk` instances at a time, their gradients gathered before
    the one optimizer step; by default as many as keep a pass's attention scores (batch x 2n x heads x (n+1)) to
    CPU_PASS_ELEMENTS, i.e. the cache. Measured (one thread, model-steps/s against the same models one by one):
    6 digits, batch 256: all in one pass 0.67x (K=8) and 0.57x (K=32), one at a time 0.97x and 1.03x, two 0.92x
    and 0.85x; 2 digits, batch 128: all in one pass 1.88x and 1.89x, eight at a time 1.33x and 1.47x. So a large
    model takes one instance a pass and a small one many. A GPU takes every instance in one pass. Instances share
    no parameter, so chunking changes no gradient."""

    def __init__(self, configs: list[dict[str, Any]], n_digits: int, lr: list[float], weight_decay: list[float], device="cpu",
                 compile: bool = False, instance_chunk: int | None = None):
        from sptui.science.batched import BatchedAdam

        self.device = torch.device(device)
        self.params = initial_parameters(configs, self.device)
        for v in self.params.values():
            v.requires_grad_(True)
        self.forward = BatchedAddition(self.params, n_digits)
        self.n_digits = n_digits
        self.instance_chunk = instance_chunk  # None: chosen per batch size (CPU), or every instance (GPU, compiled)
        self.compiled = compile
        self._pass_forwards: dict[tuple[int, int], BatchedAddition] = {}
        # torch.compile fuses the forward's and backward's elementwise passes (~1.8x per step on CPU, measured
        # with 8 six-digit models) after a one-off compile of a minute or more: worth it for long runs only
        self._losses = torch.compile(self._logits_and_losses, dynamic=False) if compile else self._logits_and_losses
        self.lr = torch.tensor(lr, device=self.device)
        self.optimizer = BatchedAdam(self.params, self.lr, torch.tensor(weight_decay, device=self.device), decoupled=True)

    @property
    def n_instances(self) -> int:
        return self.forward.n_instances

    def step(self, operands: torch.Tensor, answers: torch.Tensor, lr_factors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One AdamW step for every instance: operands [I, B, 2n], answers [I, B, n+1], the schedule's factor on
        each instance's lr [I]. Returns (logits [I, B, n+1, 10], per-instance losses [I]), detached."""
        for v in self.params.values():
            v.grad = None
        count, chunk = self.n_instances, self.pass_instances(operands.shape[1])
        if chunk >= count:
            logits, losses = self._losses(operands, answers)
            losses.sum().backward()  # instances share no parameter: each gets exactly its own gradient
        else:
            parts = []
            for start in range(0, count, chunk):
                stop = min(count, start + chunk)
                part_logits = self._pass_forward(start, stop)(operands[start:stop])
                part_losses = batched_loss(part_logits, answers[start:stop])
                part_losses.sum().backward()  # gradients of these instances' slices of the stacked parameters
                parts.append((part_logits.detach(), part_losses.detach()))
            logits, losses = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        self.optimizer.step(lr_factors)
        return logits.detach(), losses.detach()

    def _pass_forward(self, start: int, stop: int) -> BatchedAddition:
        """The forward of instances start..stop: views of the stacked parameters (the optimizer updates them in
        place, so one built per slice serves every step)."""
        key = (start, stop)
        if key not in self._pass_forwards:
            self._pass_forwards[key] = BatchedAddition({k: v[start:stop] for k, v in self.params.items()}, self.n_digits)
        return self._pass_forwards[key]

    def pass_instances(self, batch_size: int) -> int:
        """Instances per forward/backward pass for batches of `batch_size` examples."""
        count = self.n_instances
        if self.instance_chunk is not None:
            return min(count, max(1, self.instance_chunk))
        if self.device.type != "cpu" or self.compiled:
            return count
        n = self.n_digits
        scores = batch_size * 2 * n * self.forward.n_heads * (n + 1)
        return min(count, max(1, CPU_PASS_ELEMENTS // scores))

    def _logits_and_losses(self, operands: torch.Tensor, answers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.forward(operands)
        return logits, batched_loss(logits, answers)

    def state(self) -> dict[str, torch.Tensor]:
        tensors = {f"model.{k}": v.detach() for k, v in self.params.items()}
        tensors.update({f"optim.{k}": v for k, v in self.optimizer.state().items()})
        return tensors

    def load_state(self, tensors: dict[str, torch.Tensor], optimizer_steps: int) -> None:
        with torch.no_grad():
            for name, v in self.params.items():
                v.copy_(tensors[f"model.{name}"])
        self.optimizer.load_state({k[len("optim."):]: v.to(self.device) for k, v in tensors.items() if k.startswith("optim.")},
                                  optimizer_steps)
