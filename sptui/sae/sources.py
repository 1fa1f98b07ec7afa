"""What an SAE trains on: activations from a toy model (with its true features) or from a transformer.

    ToySource          the hidden activations h = act(x @ W_s + b) of toy-model instances s of a `tms` run, x
                       drawn from instance s's own feature distribution; the true feature directions (rows W_s)
                       and activations (x) are known, so recovery can be measured
    LMSequences        a language model over a corpus: documents (long ones in overlapping windows) as the
                       Neuroscope reads them; activations at every document token once, BOS excluded;
                       judged by next-token cross-entropy
    AdditionSequences  the addition transformer over its own training pairs; activations at the n+1 answer
                       positions (or all); judged by the cross-entropy of the answer digits
    ModelActivations   a transformer + a TransformerLens hook + one of the sequence sets above: forward batches
                       of a fixed composition (so recomputing one gives the same numbers), stopping after the
                       hooked block
    ShuffledWindows    the training stream: `window` activations at a time read in corpus order, emitted in
                       a seeded random order. Memory is O(window x d_in) however long the corpus; a resume
                       recomputes the current window from its start (saved in the checkpoint), so a resumed
                       run sees exactly the batches an uninterrupted one does. Past the end of the corpus
                       the reading starts again (the next epoch), windows drawing new permutations.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from sptui.devices import to_device
from sptui.errors import SptuiError
from sptui.science.batched import stream_generator

_TOY_DATA_STREAM = 0x5AE0_0001
_TOY_EVAL_STREAM = 0x5AE0_0002
_TOY_INIT_STREAM = 0x5AE0_0003
_WINDOW_STREAM = 0x5AE0_0004


# ---------------------------------------------------------------- toy models

class ToySource:
    """SAE instance i reads toy instance `index[i]` of W [S, n, m]. All instances draw their features from
    one uniform stream (seed `seed`), thresholded by their toy instance's feature probability, so what an
    instance sees never depends on the other instances in the batch."""

    def __init__(self, weights: dict[str, Tensor], probability: Float[Tensor, "S n"], index: list[int],
                 hidden_activation: str = "none", seed: int = 0, device="cpu"):
        from sptui.science.tms import ACTIVATIONS

        self.device = torch.device(device)
        self.index = torch.as_tensor(index, device=self.device)
        self.sources = sorted(set(index))
        self._rows = torch.tensor([self.sources.index(s) for s in index], device=self.device)
        pick = torch.as_tensor(self.sources, device=self.device)
        self.W = weights["W"].to(self.device, torch.float32).index_select(0, pick)  # [S', n, m]
        self.b_hidden = weights.get("b_hidden")
        if self.b_hidden is not None:
            self.b_hidden = self.b_hidden.to(self.device, torch.float32).index_select(0, pick)
        self.probability = probability.to(self.device, torch.float32).index_select(0, pick)
        self.act = ACTIVATIONS[hidden_activation]
        self.seed = seed
        self.data = stream_generator(seed, _TOY_DATA_STREAM, self.device)

    @property
    def d_in(self) -> int:
        return self.W.shape[-1]

    @property
    def n_features(self) -> int:
        return self.W.shape[1]

    def _draw(self, g: torch.Generator, batch: int) -> tuple[Tensor, Tensor]:
        from sptui.science.tms import features_from_uniforms

        u = torch.rand(1, batch, self.n_features, generator=g, device=self.device)
        x = features_from_uniforms(u, self.probability)  # [S', B, n]
        h = torch.bmm(x, self.W)
        if self.b_hidden is not None:
            h = h + self.b_hidden[:, None, :]
        h = self.act(h)
        return x.index_select(0, self._rows), h.index_select(0, self._rows)

    def batch(self, size: int) -> Float[Tensor, "I B m"]:
        """The next training batch of hidden activations, one row per SAE instance."""
        return self._draw(self.data, size)[1]

    def sample(self, size: int, stream: str = "eval") -> tuple[Float[Tensor, "I N n"], Float[Tensor, "I N m"]]:
        """A fixed sample (the same every call) of (true feature activations x, hidden activations h)."""
        return self._draw(stream_generator(self.seed, _TOY_EVAL_STREAM if stream == "eval" else _TOY_INIT_STREAM, self.device), size)

    def true_directions(self) -> Float[Tensor, "I n m"]:
        """Feature i of instance s points along row W_s[i] in the hidden space."""
        return self.W.index_select(0, self._rows)

    def state(self) -> dict[str, Tensor]:
        return {"toy_data_rng": self.data.get_state()}

    def load_state(self, tensors: dict[str, Tensor]) -> None:
        self.data.set_state(tensors["toy_data_rng"].cpu())


# ---------------------------------------------------------------- sequences a transformer reads

@dataclass
class Sequence:
    tokens: list[int]
    select: list[int]  # positions whose activations are used
    targets: list[int] | None = None  # addition: the answer digits at the last positions


class LMSequences:
    """A corpus as the Neuroscope reads it: a document that fits in `context` tokens (BOS first) is one
    sequence, a longer one is read in windows repeating `overlap` tokens of left context, each document token
    used once (sptui.neuroscope.scan.document_windows)."""

    def __init__(self, tokenizer, corpus: str, context: int, exclude_bos: bool = True, column: str = "text",
                 overlap: int | None = None):
        self.tokenizer, self.corpus, self.context = tokenizer, corpus, context
        self.exclude_bos, self.column = exclude_bos, column
        self.overlap = context // 4 if overlap is None else overlap
        self.bos = tokenizer.bos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (self.bos or 0)

    def __call__(self, split: str) -> Iterator[Sequence]:
        from sptui.corpus import iter_texts
        from sptui.neuroscope.scan import document_windows

        texts = iter_texts(self.corpus, split=split, column=self.column)
        while True:
            chunk = list(itertools.islice(texts, 256))
            if not chunk:
                return
            for ids in self.tokenizer(chunk, add_special_tokens=False)["input_ids"]:
                for w in document_windows(ids, self.bos, self.context, self.overlap):
                    first = w.scored_from
                    if w.start == 0 and self.bos is not None and self.exclude_bos:
                        first = max(first, 1)  # the BOS position: an attention sink, not text
                    yield Sequence(tokens=w.tokens, select=list(range(first, len(w.tokens))))

    def loss(self, logits: Tensor, tokens: Tensor, mask: Tensor, batch: list[Sequence]) -> tuple[float, int]:
        """Summed next-token cross-entropy of the sequences' used tokens (each document token once), and
        how many predictions it covers."""
        used = torch.zeros_like(mask)
        for row, s in enumerate(batch):
            used[row, s.select] = True
        valid = used[:, 1:] & mask[:, :-1]  # the prediction of token p comes from position p - 1
        ce = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), tokens[:, 1:].reshape(-1), reduction="none")
        ce = ce.view(valid.shape)[valid]
        return float(ce.sum()), int(valid.sum())


class AdditionSequences:
    """The addition transformer's own data: operands then n+1 `=` tokens; targets are the answer digits."""

    def __init__(self, n_digits: int, n_train: int, n_test: int, data_seed: int, positions: str = "answer"):
        from sptui.science.addition import make_data

        self.n_digits = n_digits
        self.train, self.test = make_data(n_digits, n_train, n_test, data_seed)
        self.positions = positions
        self.pad = 0

    def __call__(self, split: str) -> Iterator[Sequence]:
        data = self.test if split == "validation" else self.train
        tokens = data.tokens().tolist()
        answers = data.answers.tolist()
        n_answer = self.n_digits + 1
        for row, ans in zip(tokens, answers):
            select = list(range(len(row) - n_answer, len(row))) if self.positions == "answer" else list(range(len(row)))
            yield Sequence(tokens=row, select=select, targets=ans)

    def loss(self, logits: Tensor, tokens: Tensor, mask: Tensor, batch: list[Sequence]) -> tuple[float, int]:
        n_answer = self.n_digits + 1
        targets = torch.tensor([s.targets for s in batch], device=logits.device)
        answer_logits = logits[:, -n_answer:, :].float()
        ce = F.cross_entropy(answer_logits.reshape(-1, answer_logits.shape[-1]), targets.reshape(-1), reduction="sum")
        return float(ce), targets.numel()


def hook_layer(hook: str) -> int | None:
    """The block a hook lives in ("blocks.3.mlp.hook_post" -> 3), or None (embeddings, final norm)."""
    found = re.match(r"blocks\.(\d+)\.", hook)
    return int(found.group(1)) if found else None


def check_hook(model, hook: str) -> None:
    if hook not in model.hook_dict:
        import difflib

        close = difflib.get_close_matches(hook, list(model.hook_dict), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise SptuiError(f'hook "{hook}" is not a hook of this model{hint}; hooks look like blocks.0.hook_resid_post, '
                         "blocks.1.mlp.hook_post, blocks.0.hook_attn_out")


class ModelActivations:
    """Activations of `hook` at the selected positions of the sequences, a forward batch at a time.

    Forward batch b of a split is always sequences [b * size, (b + 1) * size) of it, so recomputing it gives
    bit-identical activations. Activations with several trailing dimensions (hook_z: heads x d_head) are
    flattened."""

    def __init__(self, model, hook: str, sequences, forward_batch: int, device):
        check_hook(model, hook)
        self.model, self.hook, self.sequences = model, hook, sequences
        self.forward_batch, self.device = forward_batch, torch.device(device)
        layer = hook_layer(hook)
        self.stop_at = layer + 1 if layer is not None and layer + 1 < model.cfg.n_layers else None

    def pad(self, batch: list[Sequence]) -> tuple[Tensor, Tensor]:
        """Right-padded tokens and mask [B, T], on the CPU (the caller moves them: see `activations`)."""
        width = max(len(s.tokens) for s in batch)
        tokens = torch.full((len(batch), width), self.sequences.pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.bool)
        for row, s in enumerate(batch):
            tokens[row, : len(s.tokens)] = torch.as_tensor(s.tokens, dtype=torch.long)
            mask[row, : len(s.tokens)] = True
        return tokens, mask

    def select_mask(self, batch: list[Sequence], shape) -> Tensor:
        sel = torch.zeros(shape, dtype=torch.bool)
        for row, s in enumerate(batch):
            sel[row, s.select] = True
        return to_device(sel, self.device)

    @torch.inference_mode()
    def activations(self, batch: list[Sequence]) -> Float[Tensor, "M d"]:
        """The hook's activations at the selected positions, sequence by sequence, position by position."""
        tokens, mask = self.pad(batch)
        found = {}

        def keep(act, hook):
            found["act"] = act

        # decided on the CPU copy of the mask, then both go over pinned and non-blocking (sptui/devices.py)
        attention = None if bool(mask.all()) else to_device(mask.long(), self.device)
        self.model.run_with_hooks(to_device(tokens, self.device), attention_mask=attention, stop_at_layer=self.stop_at,
                                  fwd_hooks=[(self.hook, keep)], return_type=None)
        act = found["act"]
        act = act.reshape(act.shape[0], act.shape[1], -1)
        return act[self.select_mask(batch, mask.shape)].float()

    def batches(self, split: str, start: int = 0) -> Iterator[tuple[int, list[Sequence]]]:
        """(index, sequences) of the forward batches of a split, from batch `start` on."""
        seqs = self.sequences(split)
        for _ in range(start * self.forward_batch):
            if next(seqs, None) is None:
                return
        index = start
        while True:
            batch = list(itertools.islice(seqs, self.forward_batch))
            if not batch:
                return
            yield index, batch
            index += 1

    @property
    def d_in(self) -> int:
        probe = next(self.batches("train"), None)
        if probe is None:
            raise SptuiError("the source gave no sequences to read activations from")
        return self.activations(probe[1][:1]).shape[-1]


@dataclass
class Cursor:
    """Where a window starts in the activation stream: epoch, forward batch, activations of it already used."""

    epoch: int = 0
    batch: int = 0
    offset: int = 0

    def to_list(self) -> list[int]:
        return [self.epoch, self.batch, self.offset]

    @classmethod
    def from_list(cls, values) -> Cursor:
        return cls(*(int(v) for v in values))


class ShuffledWindows:
    """Training batches: window w holds activations [w * window, (w + 1) * window) of the stream (training
    split in corpus order, epoch after epoch), emitted in a random order drawn from (seed, w)."""

    def __init__(self, reader: ModelActivations, window: int, batch_size: int, seed: int):
        if window % batch_size:
            raise ValueError("the window must hold a whole number of batches")
        self.reader, self.window, self.batch_size, self.seed = reader, window, batch_size, seed
        self.per_window = window // batch_size
        self.index = -1  # the window in memory
        self.start = Cursor()  # where window `index` starts
        self.next_start = Cursor()
        self.buffer: Tensor | None = None
        self.order: Tensor | None = None
        # the open reading position: (epoch, next forward batch, iterator over the rest of that epoch)
        self._reading: tuple[int, int, Iterator] | None = None

    def _batches_from(self, epoch: int, batch: int) -> Iterator[tuple[int, list[Sequence]]]:
        """Forward batches of `epoch` from `batch` on, continuing the open iterator when it is there
        (re-reading a corpus up to a position costs a pass over it: only on a resume)."""
        if self._reading is not None and self._reading[:2] == (epoch, batch):
            it = self._reading[2]
        else:
            it = self.reader.batches("train", batch)
        for index, seqs in it:
            self._reading = (epoch, index + 1, it)
            yield index, seqs

    def _fill(self, start: Cursor) -> tuple[Tensor, Cursor]:
        parts, have = [], 0
        epoch, batch, offset = start.epoch, start.batch, start.offset
        while True:
            progressed = False
            for index, seqs in self._batches_from(epoch, batch):
                acts = self.reader.activations(seqs)
                taken = acts[offset:]
                progressed = progressed or len(acts) > 0
                need = self.window - have
                if len(taken) > need:
                    parts.append(taken[:need])
                    self._reading = None  # the next window starts inside this batch: it is recomputed
                    return torch.cat(parts), Cursor(epoch, index, offset + need)
                parts.append(taken)
                have += len(taken)
                offset = 0
                if have == self.window:
                    return torch.cat(parts), Cursor(epoch, index + 1, 0)
            if batch == 0 and not progressed:
                raise SptuiError("the source gave no activations to train on (an empty corpus, or no selected positions)")
            epoch, batch, offset = epoch + 1, 0, 0
            self._reading = None

    def load(self, index: int, start: Cursor) -> None:
        """Bring window `index` (starting at `start`) into memory."""
        self.buffer, self.next_start = self._fill(start)
        self.index, self.start = index, start
        g = stream_generator(self.seed, _WINDOW_STREAM + index, "cpu")
        self.order = to_device(torch.randperm(self.window, generator=g), self.buffer.device)

    def batch(self, step: int) -> Float[Tensor, "1 B d"]:
        """The batch of optimiser step `step` (0-based); windows are read as the steps reach them."""
        index, j = divmod(step, self.per_window)
        if index != self.index:
            if index != self.index + 1:
                raise ValueError(f"window {index} requested after window {self.index}: resume with load() first")
            self.load(index, self.next_start if self.index >= 0 else Cursor())
        assert self.order is not None and self.buffer is not None  # load() just ran
        rows = self.order[j * self.batch_size:(j + 1) * self.batch_size]
        return self.buffer.index_select(0, rows)[None]

    def state(self) -> dict:
        return {"window": self.index, "start": self.start.to_list()}

    def resume(self, state: dict) -> None:
        self.load(int(state["window"]), Cursor.from_list(state["start"]))


def first_activations(reader: ModelActivations, split: str, count: int) -> Float[Tensor, "N d"]:
    """The first `count` selected activations of a split, in order (an evaluation or initialisation sample)."""
    parts, have = [], 0
    for _, seqs in reader.batches(split):
        acts = reader.activations(seqs)
        parts.append(acts[: count - have])
        have += len(parts[-1])
        if have >= count:
            break
    if not parts or have == 0:
        raise SptuiError(f"the source's {split} split gave no activations")
    return torch.cat(parts)


def window_size(buffer_tokens: int, batch_size: int) -> int:
    """The buffer rounded up to a whole number of batches."""
    return int(np.ceil(buffer_tokens / batch_size)) * batch_size
