"""Train a small TinyStories-shaped language model (GPT-Neo style, TransformerLens) on a text corpus.

The model is a TransformerLens HookedTransformer with GPT-2's BPE vocabulary (50257 tokens), learned
positions, LayerNorm and gelu_new MLPs; `local_window > 0` alternates global and local attention like
GPT-Neo. Batches are random windows of the packed token stream (<eot> story <eot> story ...), drawn from
a generator seeded by (seed, step), so a resumed run sees exactly the batches it would have seen.

Vocabulary restriction (`restrict_vocab`, on by default): a small corpus uses a few hundred of the 50257
tokens. Training then runs a compact model whose vocabulary is just those tokens (the embedding and
unembedding of the others would get no gradient anyway, but cost most of a CPU step's time). The saved
model is an ordinary full-vocabulary GPT-2-BPE model: the corpus tokens keep their trained rows and
columns, every other token gets a zero embedding, a zero unembedding column and a logit bias of -30, so
its probability is below 1e-8 and the saved model's loss on the corpus equals the trained one's.

Results (results/):
    model.safetensors + config.json   the trained model, loadable by `sptui.models.load_model(run)` or plain
                                      TransformerLens (see sptui/models.py)
    samples.json                      sampled continuations of the prompts over training
    summary.json                      final train/validation loss and perplexity, tokens seen, steps/s, and
                                      mlp_structure: the structure check (below)
Metrics: loss (train), loss + perplexity (validation), lr.

Structure check (`structure_check`, on by default): are each layer's MLP output directions (rows of W_out)
more alike than chance? The statistic is the neuron-geometry kind's neighbour score (cosine Gram, seriated,
mean adjacent cos^2; greedy seriation only, to keep it quick), computed the same way on the model and on
`structure_draws` (19) draws of each of `structure_nulls` (sptui.science.null.neighbour_score_against_nulls):
`rotation` (the layer's own rows mixed by a random rotation: mean, covariance and spectrum kept, so neurons
merely spread unevenly over few directions do not count) and `gaussian` (the paper's i.i.d. control). Per
layer, summary.json mlp_structure.LAYER holds model_score, null.NAME (a NullVerdict.to_json(): p, the null's
mean and 95% bar, the margin over it, beats_null) and beats_nulls (beats every null run); the log says the
same. About 1.5 s per layer at jobs/lm_tiny.toml's 512 x 128 on one (busy) CPU thread. `neuron-geometry` goes further
(more seriation methods and nulls, more draws, blocks with search-corrected p-values).
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sptui.errors import SptuiError
from sptui.memory import Estimate, size_text
from sptui.params import ParamError, param
from sptui.science.null import NULL_HELP

if TYPE_CHECKING:
    from sptui.context import Context
    from sptui.runs import RunDir

SUMMARY = "small GPT-Neo-style language model (TransformerLens) trained on a text corpus"

ABSENT_TOKEN_BIAS = -30.0  # logit bias of tokens that never occur in the corpus (probability < 1e-8)


@dataclass
class Params:
    corpus: str = param("builtin", 'text source: .txt/.jsonl/.parquet file, folder or glob, "builtin" (the shipped '
                        'generated stories), or "hf:NAME" / "tinystories" (Hugging Face, where reachable)', path=True)
    text_column: str = param("text", "column/field holding the text in .jsonl/.parquet/datasets sources")
    max_stories: int | None = param(None, "use at most this many training stories (None: all)", ge=1, le=1_000_000_000)
    max_tokens: int = param(50_000_000, "read at most this many training tokens (held in memory, 8 bytes each)", ge=1, le=2_000_000_000)
    n_layers: int = param(2, "transformer blocks", ge=1, le=256)
    d_model: int = param(128, "residual stream width", ge=8, le=65_536)
    n_heads: int = param(4, "attention heads per layer (d_head = d_model / n_heads)", ge=1, le=1024)
    d_mlp: int = param(512, "MLP neurons per layer", ge=1, le=262_144)
    n_ctx: int = param(128, "context length in tokens", ge=8, le=65_536)
    act_fn: Literal["gelu_new", "gelu", "relu", "silu"] = param("gelu_new", "MLP activation")
    local_window: int = param(0, "0: all layers global; >0: GPT-Neo alternation (global, local, ...) with this window", ge=0, le=65_536)
    restrict_vocab: bool = param(True, "softmax over the corpus's tokens only while training (exact, much faster; see doc)")
    steps: int = param(1200, "optimizer steps", ge=1, le=10_000_000)
    batch_size: int = param(16, "sequences per step", ge=1, le=100_000)
    lr: float = param(3e-3, "peak AdamW learning rate", gt=0, le=10)
    warmup_steps: int = param(50, "linear warm-up steps, then cosine decay to 10%", ge=0, le=10_000_000)
    weight_decay: float = param(0.1, "AdamW weight decay on matrices (not biases, norms or embeddings)", ge=0, le=10)
    grad_clip: float = param(1.0, "clip the global gradient norm to this (0: off)", ge=0, le=1e6)
    seed: int = param(0, "initialisation and batch seed")
    log_every: int = param(10, "steps between train-loss lines", ge=1, le=10_000_000)
    eval_every: int = param(200, "steps between validation evaluations", ge=1, le=10_000_000)
    eval_batches: int = param(8, "validation batches per evaluation", ge=1, le=100_000)
    sample_every: int = param(400, "steps between sampled continuations (also at the end)", ge=1, le=10_000_000)
    sample_prompts: list[str] = param(["Once upon a time, there was", "One day, Tom went to the"],
                                      "prompts whose continuations are logged during training", max_items=100)
    sample_tokens: int = param(40, "tokens sampled per prompt", ge=1, le=10_000)
    temperature: float = param(0.7, "sampling temperature (0: greedy)", ge=0, le=100)
    checkpoint_every: int = param(200, "steps between resume checkpoints", ge=1, le=10_000_000)
    structure_check: bool = param(True, "at the end, state each MLP's W_out neighbour structure against null models "
                                  "(p-values; about 1.5 s per layer at d_mlp 512, d_model 128 on one CPU thread)")
    structure_draws: int = param(19, "draws of each null in the structure check (p >= 1 / (draws + 1): 19 reach "
                                 "p = 0.05); each costs about one greedy seriation of a d_mlp x d_mlp Gram "
                                 "(~0.04 s at d_mlp 512, growing as d_mlp^2)", ge=19, le=10_000)
    structure_nulls: list[str] = param(["rotation", "gaussian"], "null models the structure check must beat: "
                                       + "; ".join(f"{k}: {v}" for k, v in NULL_HELP.items()), max_items=4)

    def check(self):
        if self.d_model % self.n_heads:
            raise ParamError("n_heads", f"must divide d_model={self.d_model}, found {self.n_heads}")
        unknown = [x for x in self.structure_nulls if x not in NULL_HELP]
        if unknown:
            raise ParamError("structure_nulls", f"unknown null model(s) {unknown}; known: {', '.join(NULL_HELP)}")
        if self.structure_check and not self.structure_nulls:
            raise ParamError("structure_nulls", "need at least one null model (or structure_check = false)")


MEMORY_ADVICE = "lower batch_size, n_ctx, d_model, d_mlp or n_layers"

# Activations autograd keeps per token of a HookedTransformer training step, in float32 numbers (counted from
# TransformerLens's forward and checked against torch's allocator in tests/test_memory_estimates.py):
ACTS_PER_D_MODEL = 20  # per layer: resid pre/mid/post, two LayerNorms (centred x, its square, scale, normalised,
                       # affine), q/k/v/z and the attention and MLP outputs, each before and after its bias
ACTS_PER_D_MLP = 6     # per layer: the MLP's pre-activation with its bias, and gelu_new's intermediates
ACTS_PER_SCORE = 3     # per layer and head: each [ctx, ctx] row of scores, masked scores and the softmax pattern
ACTS_PER_VOCAB = 3     # once: logits before and after the bias, and their log_softmax


def memory_estimate(instances: list[Params], ctx: Context | None = None) -> Estimate:
    """Bytes at the peak of training, from the dominant float32 tensors: the model's parameters with their
    gradient and two AdamW moments (4 copies); a training step's activations, B x n_ctx tokens each holding
    ACTS_PER_D_MODEL x d_model + ACTS_PER_D_MLP x d_mlp + ACTS_PER_SCORE x n_heads x n_ctx numbers per layer and
    ACTS_PER_VOCAB x d_vocab for the logits; on a CPU the end as well, when the full-vocabulary model is built
    beside the trained one (its parameters and the copied state: 2 x its parameters) and each MLP's d_mlp x d_mlp
    cosine Grams are seriated (the structure check, about 3 of them in float64). The packed token stream (8 bytes
    a token, at most max_tokens) is not counted. With restrict_vocab on, d_vocab while training is the corpus's
    vocabulary, known only once the corpus is read: the estimate counts the rest (a lower bound) and says so,
    with the peak GPT-2's whole vocabulary would give as the most it can be. A lower bound within ~2x."""
    from sptui.memory import ModelShape
    from sptui.tokenizer import VOCAB_SIZE

    p = instances[0]

    def peak(vocab: int) -> int:
        shape = ModelShape(n_layers=p.n_layers, d_model=p.d_model, n_heads=p.n_heads, d_head=p.d_model // p.n_heads,
                           d_mlp=p.d_mlp, d_vocab=vocab, n_ctx=p.n_ctx)
        tokens = p.batch_size * p.n_ctx
        per_token = (p.n_layers * (ACTS_PER_D_MODEL * p.d_model + ACTS_PER_D_MLP * p.d_mlp
                                   + ACTS_PER_SCORE * p.n_heads * p.n_ctx) + ACTS_PER_VOCAB * vocab)
        training = 4 * (4 * shape.parameters + tokens * per_token)
        if ctx is not None and not str(ctx.device).startswith("cpu"):
            return training
        full = ModelShape(**{**shape.__dict__, "d_vocab": VOCAB_SIZE}).parameters
        ending = 4 * (4 * shape.parameters + 2 * full)
        structure = 8 * 3 * p.d_mlp * p.d_mlp if p.structure_check else 0
        return max(training, ending, 4 * 4 * shape.parameters + structure)

    if not p.restrict_vocab:
        return Estimate(peak(VOCAB_SIZE))
    return Estimate.not_known(f"restrict_vocab: the embeddings and logits grow with the corpus's vocabulary, read when "
                              f"the run starts; at most {size_text(peak(VOCAB_SIZE))} with all {VOCAB_SIZE:,} GPT-2 tokens",
                              at_least=peak(0))


# ---------------------------------------------------------------- model and data

def build_config(p: Params, d_vocab: int, device: str = "cpu"):
    from transformer_lens import HookedTransformerConfig

    kwargs: dict[str, Any] = {}
    if p.local_window > 0:
        kwargs = {"attn_types": ["global" if i % 2 == 0 else "local" for i in range(p.n_layers)],
                  "window_size": p.local_window, "use_local_attn": True}
    return HookedTransformerConfig(
        n_layers=p.n_layers, d_model=p.d_model, n_heads=p.n_heads, d_head=p.d_model // p.n_heads, d_mlp=p.d_mlp,
        n_ctx=p.n_ctx, d_vocab=d_vocab, act_fn=p.act_fn, normalization_type="LN",
        positional_embedding_type="standard", original_architecture="GPTNeoForCausalLM",
        use_attn_scale=False,  # GPT-Neo does not scale attention scores by 1/sqrt(d_head)
        tokenizer_prepends_bos=True, default_prepend_bos=True, model_name="sptui-lm", seed=p.seed,
        device=device, **kwargs)


def load_stream(p: Params, split: str):
    from sptui.corpus import iter_texts, packed_tokens

    limit = p.max_stories if split == "train" else None
    tokens = packed_tokens(iter_texts(p.corpus, split=split, limit=limit, column=p.text_column), max_tokens=p.max_tokens)
    if tokens.numel() <= p.n_ctx:
        raise SptuiError(f'corpus "{p.corpus}" ({split}) has only {tokens.numel()} tokens; need more than n_ctx={p.n_ctx}')
    return tokens


def batch_at(stream, step: int, p: Params, salt: int = 0):
    """The batch of `step`: random windows of the stream from a generator seeded by (seed, step)."""
    import torch

    g = torch.Generator().manual_seed((p.seed * 1_000_003 + step) * 2 + salt)
    starts = torch.randint(0, stream.numel() - p.n_ctx, (p.batch_size,), generator=g)
    return stream[starts[:, None] + torch.arange(p.n_ctx)]


def lr_at(step: int, p: Params) -> float:
    if step < p.warmup_steps:
        return p.lr * (step + 1) / p.warmup_steps
    progress = (step - p.warmup_steps) / max(1, p.steps - p.warmup_steps)
    return p.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def compact_vocab(train, val, restrict: bool):
    """(active token ids, full id -> compact id lookup): the corpus's tokens, or all of them."""
    import torch

    from sptui.tokenizer import VOCAB_SIZE

    active = torch.unique(torch.cat([train, val])) if restrict else torch.arange(VOCAB_SIZE)
    lut = torch.full((VOCAB_SIZE,), -1, dtype=torch.long)
    lut[active] = torch.arange(active.numel())
    return active, lut


def expand_vocab(compact, active, p: Params):
    """The full-vocabulary model equal to `compact` on the active tokens (absent tokens: see module doc)."""
    import torch
    from transformer_lens import HookedTransformer

    from sptui.tokenizer import VOCAB_SIZE, gpt2_tokenizer

    full = HookedTransformer(build_config(p, VOCAB_SIZE, "cpu"), tokenizer=gpt2_tokenizer(add_bos=True),
                             move_to_device=False)
    state = {k: v.detach().cpu() for k, v in compact.state_dict().items()}
    W_E = torch.zeros(VOCAB_SIZE, p.d_model)
    W_E[active] = state["embed.W_E"]
    W_U = torch.zeros(p.d_model, VOCAB_SIZE)
    W_U[:, active] = state["unembed.W_U"]
    b_U = torch.full((VOCAB_SIZE,), ABSENT_TOKEN_BIAS)
    b_U[active] = state["unembed.b_U"]
    state.update({"embed.W_E": W_E, "unembed.W_U": W_U, "unembed.b_U": b_U})
    full.load_state_dict(state)
    return full.eval()


def make_optimizer(model, p: Params):
    import torch

    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, w in model.named_parameters():
        # matrices of attention and MLP decay; biases, norms, embeddings and the unembedding do not
        (decay if w.ndim >= 2 and name.startswith("blocks.") else no_decay).append(w)
    return torch.optim.AdamW([{"params": decay, "weight_decay": p.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=p.lr, betas=(0.9, 0.95))


def sample(model, prompt_ids, active, lut, p: Params, generator) -> list[int]:
    """Sample a continuation (full-vocabulary ids) from the compact model; stops at <|endoftext|>."""
    import torch

    from sptui.tokenizer import EOT_ID

    ids = lut[torch.tensor(prompt_ids)]
    ids = ids[ids >= 0]  # prompt tokens absent from the corpus cannot be fed to the compact model
    out: list[int] = []
    with torch.no_grad():
        for _ in range(p.sample_tokens):
            logits = model(ids[None, -p.n_ctx:].to(model.cfg.device))[0, -1].float().cpu()
            if p.temperature > 0:
                nxt = int(torch.multinomial(torch.softmax(logits / p.temperature, -1), 1, generator=generator))
            else:
                nxt = int(logits.argmax())
            token = int(active[nxt])
            if token == EOT_ID:
                break
            out.append(token)
            ids = torch.cat([ids, torch.tensor([nxt])])
    return out


STRUCTURE_SERIATION = {"methods": ("greedy",)}  # the same quick seriation for the model and every null draw


def mlp_structure(model, p: Params, cancelled=None) -> dict[str, dict[str, Any]]:
    """Per layer, the structure check (module docstring): the seriated neighbour score of W_out's rows against
    p.structure_draws draws of each of p.structure_nulls, seeded by (p.seed, layer). `cancelled()` is called
    after each draw (it raises to stop)."""
    from sptui.science.null import neighbour_score_against_nulls

    out = {}
    for layer in range(model.cfg.n_layers):
        W = model.blocks[layer].mlp.W_out.detach().double().cpu().numpy()
        verdicts = neighbour_score_against_nulls(
            W, nulls=p.structure_nulls, draws=p.structure_draws, seriate_kw=STRUCTURE_SERIATION, seed=(p.seed, layer),
            what="W_out neighbour cos^2", progress=(lambda name, b: cancelled()) if cancelled else None)
        beaten = [name for name, v in verdicts.items() if v.beats]
        out[str(layer)] = {"model_score": next(iter(verdicts.values())).observed,
                           "seriation": "+".join(STRUCTURE_SERIATION["methods"]),
                           "null": {name: v.to_json() for name, v in verdicts.items()},
                           "beats_nulls": len(beaten) == len(verdicts),
                           "verdict": structure_verdict(list(verdicts), beaten)}
    return out


def structure_verdict(nulls: list[str], beaten: list[str]) -> str:
    """A layer's verdict in words: the structure counts only when it beats every null that was run."""
    if len(beaten) == len(nulls):
        return f"beats every null run ({', '.join(nulls)})"
    missed = [n for n in nulls if n not in beaten]
    return f"does not beat the {' and '.join(missed)} null{'s' if len(missed) > 1 else ''}"


BUILTIN_NOTE = ("on the shipped templated stories (333 distinct tokens, ~82% of held-out sentences also in "
                "training): not comparable to perplexities on TinyStories")


# ---------------------------------------------------------------- the kind

def run(ctx: Context) -> None:
    import torch
    from transformer_lens import HookedTransformer

    from sptui.checkpoint import pack, unpack
    from sptui.devices import to_device
    from sptui.models import save_model
    from sptui.tokenizer import gpt2_tokenizer

    p: Params = ctx.params
    device = ctx.device
    train_full, val_full = load_stream(p, "train"), load_stream(p, "validation")
    active, lut = compact_vocab(train_full, val_full, p.restrict_vocab)
    train, val = lut[train_full], lut[val_full]
    ctx.info(f"corpus {p.corpus}: {train.numel():,} train tokens, {val.numel():,} validation tokens, "
             f"{active.numel()} distinct tokens")

    torch.manual_seed(p.seed)
    model = HookedTransformer(build_config(p, int(active.numel()), str(device)), move_to_device=False)
    with contextlib.redirect_stdout(io.StringIO()):  # TransformerLens prints "Moving model to device"
        model.to(device)
    optimizer = make_optimizer(model, p)
    ctx.info(f"model: {p.n_layers} layers, d_model {p.d_model}, {p.n_heads} heads, d_mlp {p.d_mlp}, n_ctx {p.n_ctx}; "
             f"{sum(w.numel() for w in model.parameters()):,} parameters while training")

    start, samples = 0, []
    ckpt = ctx.load_checkpoint()
    if ckpt is not None:
        extra = unpack(ckpt.tensors, ckpt.meta, model=model, optimizer=optimizer)
        if not torch.equal(extra["active"], active):
            raise SptuiError("the corpus changed since the checkpoint (different tokens); start a new run")
        start, samples = ckpt.step, ckpt.meta.get("samples", [])
    ctx.set_total(p.steps)
    tok = gpt2_tokenizer()
    prompts = [tok(pr)["input_ids"] for pr in p.sample_prompts]

    def evaluate(step: int) -> float:
        model.eval()
        with torch.no_grad():
            losses = torch.stack([model(to_device(batch_at(val, i, p, salt=1), device), return_type="loss")
                                  for i in range(p.eval_batches)])
        model.train()
        loss = float(losses.mean())  # one read-back per evaluation, not one per batch
        ctx.log(step, split="validation", loss=loss, perplexity=math.exp(min(loss, 50)))
        return loss

    def log_samples(step: int) -> None:
        model.eval()
        g = torch.Generator().manual_seed(p.seed + step)
        for prompt, ids in zip(p.sample_prompts, prompts):
            text = tok.decode(sample(model, [50256] + ids, active, lut, p, g))
            samples.append({"step": step, "prompt": prompt, "continuation": text})
            ctx.info(f"sample @ {step}: {prompt}|{text}")
        model.train()
        ctx.save_json("samples.json", samples)

    model.train()
    t0, tokens_seen, last_loss = time.perf_counter(), 0, float("nan")
    for step in range(start, p.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, p)
        loss = model(to_device(batch_at(train, step, p), device), return_type="loss")  # pinned, non-blocking
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if p.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), p.grad_clip)
        optimizer.step()
        tokens_seen += p.batch_size * p.n_ctx
        done = step + 1
        if done % p.log_every == 0 or done == p.steps:
            last_loss = loss.item()
            ctx.log(done, split="train", loss=last_loss, lr=lr_at(step, p))
        if done % p.eval_every == 0 and done != p.steps:
            evaluate(done)
        if done % p.sample_every == 0 and done != p.steps:
            log_samples(done)
        if done % p.checkpoint_every == 0 and done != p.steps:
            tensors, meta = pack(model=model, optimizer=optimizer, extra={"active": active})
            ctx.save_checkpoint(done, tensors, {**meta, "samples": samples})
        ctx.check_cancelled()
    seconds = time.perf_counter() - t0

    val_loss = evaluate(p.steps)
    log_samples(p.steps)
    full = expand_vocab(model, active.cpu(), p)
    save_model(full, ctx.run.results)
    summary = {
        "corpus": p.corpus, "train_tokens": int(train.numel()), "validation_tokens": int(val.numel()),
        "corpus_vocab": int(active.numel()), "parameters": sum(w.numel() for w in full.parameters()),
        "steps": p.steps, "final_train_loss": last_loss, "validation_loss": val_loss,
        "validation_perplexity": math.exp(min(val_loss, 50)),
        **({"perplexity_note": BUILTIN_NOTE} if p.corpus == "builtin" else {}),
        "steps_per_second": (p.steps - start) / seconds if seconds > 0 else None,
        "tokens_per_second": tokens_seen / seconds if seconds > 0 else None,
        "torch_threads": torch.get_num_threads(),
    }
    if p.structure_check and p.d_mlp >= 4:
        t = time.perf_counter()
        summary["mlp_structure"] = mlp_structure(model, p, ctx.check_cancelled)
        for layer, s in summary["mlp_structure"].items():
            for v in s["null"].values():
                ctx.info(f"layer {layer} {v['text']}")
            ctx.info(f"layer {layer} W_out structure: {s['verdict']}")
        ctx.info(f"structure check: {p.structure_draws} draws of each null in {time.perf_counter() - t:.1f} s "
                 f"(neuron-geometry adds blocks, more seriation methods and nulls)")
    ctx.save_json("summary.json", summary)
    ctx.info(f"validation loss {val_loss:.3f} (perplexity {summary['validation_perplexity']:.2f}"
             + (f"; {BUILTIN_NOTE}" if p.corpus == "builtin" else "") + "); model saved to results/")


def render(run: RunDir) -> list[Path]:
    from sptui.plots.curves import export_png

    records = run.read_metrics()
    files = []
    for metric, log_scale in (("loss", False), ("perplexity", True)):
        if any(metric in r for r in records):
            files.append(export_png(records, metric, run.plots / f"{metric}.png", title=f"lm {metric}", log_scale=log_scale))
    return files


if TYPE_CHECKING:  # mypy confirms this module fits the kind contract (sptui/kinds/__init__.py)
    from sptui.kinds import RenderingKind
    from sptui.kinds import lm as _this_module

    _fits: RenderingKind = _this_module
