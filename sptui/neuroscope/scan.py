"""The model side of a Neuroscope scan: texts -> padded batches -> MLP activations, and the text log.

    document_windows(ids, bos, context, overlap)   one document -> the texts the model reads: the whole
                                         document when it fits, else windows sliding with `overlap`
                                         tokens of repeated context (BOS only at the document's start)
    length_sorted_batches(texts, size)  batches of similar length (less padding), deterministic
    mlp_activations(model, batch, layers)   {layer: [B, T, d_mlp]} from blocks.L.mlp.hook_post, stopping
                                         the forward pass after the last needed block (no unembedding)
    TextLog                             every scanned text's token ids and where it sits in its document,
                                         appended to disk (never held in memory), truncatable to a
                                         checkpoint, read back by id at the end
    entry_activations(...)              per-token activations of the texts kept for each neuron
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sptui.devices import to_device
from sptui.errors import SptuiError


def hook_name(layer: int) -> str:
    return f"blocks.{layer}.mlp.hook_post"


@dataclass(frozen=True)
class Window:
    """One text the model reads: a document, or a window of a long one.

    tokens      what is fed to the model (BOS first only when `start` is 0 and the model has a BOS)
    start       index in the document's tokens (BOS not counted) of the first document token in `tokens`
    scored_from position in `tokens` from which activations count: 0 for a document's first window; for
                a later window, the tokens before it were already counted by the previous window, which
                saw them with more context, so each document token is counted exactly once
    """

    tokens: list[int]
    start: int
    scored_from: int


def document_windows(ids: Sequence[int], bos: int | None, context: int, overlap: int) -> list[Window]:
    """One document's tokens -> the texts to scan.

    A document that fits in `context` (with its BOS) is one text. A longer one is read in windows of
    `context` tokens, each repeating the last `overlap` tokens of the previous window as left context
    (counted only once, in the window where they had more context). Only the first window starts with
    BOS: a window that starts mid-document starts with the document's own tokens, never an invented
    start-of-text token."""
    ids = list(ids)
    if not ids:
        return []
    head = [bos] if bos is not None else []
    overlap = max(0, min(int(overlap), context - 2))
    first = context - len(head)
    windows = [Window(head + ids[:first], 0, 0)]
    end = first
    while end < len(ids):
        start = end - overlap
        stop = min(start + context, len(ids))
        windows.append(Window(ids[start:stop], start, end - start))
        end = stop
    return windows


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices into `lengths`, grouped into batches of similar length (longest first); stable for ties."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def pad_batch(texts: Sequence[Sequence[int] | np.ndarray], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded tokens [B, T] and mask [B, T] (True = real token). Right padding leaves every real
    position's activations unchanged in a causal model with absolute positions."""
    width = max(len(t) for t in texts)
    tokens = torch.full((len(texts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(texts), width), dtype=torch.bool)
    for row, t in enumerate(texts):
        tokens[row, :len(t)] = torch.as_tensor(np.asarray(t), dtype=torch.long)
        mask[row, :len(t)] = True
    return to_device(tokens, device), to_device(mask, device)


def counted_mask(lengths: Sequence[int], scored_from: Sequence[int]) -> torch.Tensor:
    """[B, T] bool on the CPU: the tokens of each text that count (real, and from `scored_from` on), T the
    longest length, matching pad_batch's right padding."""
    positions = torch.arange(max(lengths)).unsqueeze(0)
    return (positions < torch.as_tensor(lengths).unsqueeze(1)) & (positions >= torch.as_tensor(scored_from).unsqueeze(1))


@torch.inference_mode()
def mlp_activations(model, tokens: torch.Tensor, mask: torch.Tensor, layers: Sequence[int]) -> dict[int, torch.Tensor]:
    """Run the model up to the last needed block and return each layer's MLP post-activations."""
    found: dict[int, torch.Tensor] = {}

    def keep(layer):
        def hook(act, hook):
            found[layer] = act
        return hook

    model.run_with_hooks(
        tokens,
        attention_mask=mask.long(),
        stop_at_layer=max(layers) + 1,
        fwd_hooks=[(hook_name(layer), keep(layer)) for layer in layers],
    )
    return found


class TextLog:
    """Token ids of every scanned text, in scan order (text id = row), as append-only raw files.

    int32 tokens, int64 lengths and int64 (document, start, scored_from) per text (plain little-endian
    arrays, no pickle). Memory stays O(1) while scanning; a checkpoint records the sizes and a resume
    truncates back to them.
    """

    META = 3  # document index, start in the document, scored_from

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.tokens_path = self.folder / "scanned-tokens.i32"
        self.lengths_path = self.folder / "scanned-lengths.i64"
        self.meta_path = self.folder / "scanned-meta.i64"

    def reset(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in (self.tokens_path, self.lengths_path, self.meta_path):
            path.write_bytes(b"")

    def append(self, texts: Iterable[Sequence[int]], meta: Sequence[tuple[int, int, int]] | None = None) -> None:
        """Texts' tokens, with (document, start, scored_from) each (default: whole documents -1, 0, 0)."""
        texts = list(texts)
        if not texts:
            return
        meta = list(meta) if meta is not None else [(-1, 0, 0)] * len(texts)
        with open(self.tokens_path, "ab") as f:
            f.write(np.concatenate([np.asarray(t, dtype="<i4") for t in texts]).tobytes())
        with open(self.lengths_path, "ab") as f:
            f.write(np.asarray([len(t) for t in texts], dtype="<i8").tobytes())
        with open(self.meta_path, "ab") as f:
            f.write(np.asarray(meta, dtype="<i8").reshape(-1, self.META).tobytes())

    def truncate(self, n_texts: int, n_tokens: int) -> None:
        """Back to the state of a checkpoint (the files may hold texts appended after it)."""
        if not self.tokens_path.exists() or not self.lengths_path.exists() \
                or self.lengths_path.stat().st_size < n_texts * 8 or self.tokens_path.stat().st_size < n_tokens * 4:
            raise SptuiError(f"{self.folder}: the scanned-text log is missing or shorter than its checkpoint says; "
                             "delete the run's checkpoints/ and scratch/ folders to scan again from the start")
        with open(self.tokens_path, "r+b") as f:
            f.truncate(n_tokens * 4)
        with open(self.lengths_path, "r+b") as f:
            f.truncate(n_texts * 8)
        with open(self.meta_path, "ab") as f:  # created if a pre-meta log is resumed
            f.truncate(n_texts * 8 * self.META)

    def lengths(self) -> np.ndarray:
        return np.fromfile(self.lengths_path, dtype="<i8")

    def read(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tokens of texts `ids` (sorted, unique) -> (flat int32 tokens, int64 offsets [len(ids) + 1])."""
        lengths = self.lengths()
        starts = np.concatenate([[0], np.cumsum(lengths)])
        tokens = np.memmap(self.tokens_path, dtype="<i4", mode="r") if self.tokens_path.stat().st_size else np.zeros(0, "<i4")
        pieces = [np.asarray(tokens[starts[i]:starts[i + 1]]) for i in ids]
        offsets = np.concatenate([[0], np.cumsum([len(p) for p in pieces])]).astype(np.int64)
        flat = np.concatenate(pieces).astype(np.int32) if pieces else np.zeros(0, np.int32)
        return flat, offsets

    def meta(self, ids: np.ndarray) -> np.ndarray:
        """[len(ids), 3] int64 (document, start, scored_from) of texts `ids`."""
        table = np.fromfile(self.meta_path, dtype="<i8").reshape(-1, self.META) if self.meta_path.exists() \
            else np.zeros((0, self.META), np.int64)
        return table[np.asarray(ids, dtype=np.int64)] if len(table) else np.zeros((len(ids), self.META), np.int64)

    def remove(self) -> None:
        for path in (self.tokens_path, self.lengths_path, self.meta_path):
            path.unlink(missing_ok=True)


def entry_activations(model, layers: Sequence[int], entry_ids: dict[int, torch.Tensor], text_ids: np.ndarray,
                      tokens: np.ndarray, offsets: np.ndarray, batch_size: int, pad_id: int, device,
                      check=lambda: None, activations=None) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per-token activations of each kept (neuron, slot) entry, in one pass over the kept texts.

    entry_ids[layer]: [n, E] text ids (-1 = empty slot). text_ids / tokens / offsets: the kept texts
    (sorted ids, flat tokens, offsets). Returns {layer: (flat float16 activations, int64 offsets
    [n * E + 1])}, entry (neuron i, slot j) at offsets[i * E + j] : offsets[i * E + j + 1].
    `activations(tokens, mask) -> {layer: [B, T, n]}` says what is scanned (default: the MLP neurons).
    """
    lengths = torch.from_numpy(np.diff(offsets))
    if len(text_ids) == 0:
        return {layer: (np.zeros(0, np.float16), np.zeros(ids.numel() + 1, np.int64)) for layer, ids in entry_ids.items()}
    out: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    plans = {}
    for layer, ids in entry_ids.items():
        flat_ids = ids.flatten().cpu()
        # row of each entry's text among the kept texts (empty slots point at row 0 and get length 0)
        where = torch.from_numpy(np.searchsorted(text_ids, flat_ids.clamp(min=0).numpy())).clamp(max=len(text_ids) - 1)
        entry_len = torch.where(flat_ids >= 0, lengths[where], 0)
        entry_off = torch.cat([torch.zeros(1, dtype=torch.long), entry_len.cumsum(0)])
        neuron = torch.arange(ids.numel()) // ids.shape[1]
        plans[layer] = (flat_ids, where, entry_len, entry_off, neuron)
        out[layer] = (torch.zeros(int(entry_off[-1]), dtype=torch.float16), entry_off)

    texts = [tokens[offsets[i]:offsets[i + 1]] for i in range(len(text_ids))]  # views, no copies
    for batch in length_sorted_batches([len(t) for t in texts], batch_size):
        check()
        batch_tokens, mask = pad_batch([texts[i] for i in batch], pad_id, device)
        acts = activations(batch_tokens, mask) if activations is not None else mlp_activations(model, batch_tokens, mask, layers)
        row_of = torch.full((len(texts),), -1, dtype=torch.long)
        row_of[torch.as_tensor(batch)] = torch.arange(len(batch))
        for layer in layers:
            flat_ids, where, entry_len, entry_off, neuron = plans[layer]
            rows = torch.where(flat_ids >= 0, row_of[where], -1)
            chosen = (rows >= 0).nonzero().squeeze(1)
            if chosen.numel() == 0:
                continue
            lens = entry_len[chosen]
            rep = torch.repeat_interleave(torch.arange(len(chosen)), lens)
            pos = torch.arange(int(lens.sum())) - torch.repeat_interleave(lens.cumsum(0) - lens, lens)
            src = acts[layer].float().cpu()[rows[chosen][rep], pos, neuron[chosen][rep]]
            out[layer][0][entry_off[chosen][rep] + pos] = src.to(torch.float16)
    return {layer: (values.numpy(), offs.numpy()) for layer, (values, offs) in out.items()}


def counted_activations(model, documents: Iterable[str], layers: Sequence[int], context: int, overlap: int,
                        token_budget: int, batch_size: int, device, check=lambda: None):
    """Yield ({layer: [M, d_mlp] activations of counted tokens}, tokens so far) over documents, read as the
    Neuroscope reads them (whole, or in overlapping windows, each token counted once), until `token_budget`
    counted tokens. Where activations come from stays here; what is computed from them is the caller's."""
    tok = model.tokenizer
    bos = tok.bos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else (bos or 0)
    seen = 0
    documents = iter(documents)
    while seen < token_budget:
        chunk = [d for _, d in zip(range(batch_size * 8), documents)]
        if not chunk:
            return
        windows = [w for ids in tok(chunk, add_special_tokens=False)["input_ids"]
                   for w in document_windows(ids, bos, context, overlap)]
        for batch in length_sorted_batches([len(w.tokens) for w in windows], batch_size):
            check()
            texts = [windows[i].tokens for i in batch]
            tokens, mask = pad_batch(texts, pad, device)
            counted = counted_mask([len(t) for t in texts], [windows[i].scored_from for i in batch])
            acts = mlp_activations(model, tokens, mask, layers)
            seen += int(counted.sum())  # counted on the CPU: no wait for the GPU here
            counted = to_device(counted, device)
            yield {layer: acts[layer][counted] for layer in layers}, seen
            if seen >= token_budget:
                return
