"""Text corpora: where stories come from, and how they become token batches.

A source string is one of
    "builtin"                       the small generated children's-story corpus shipped in sptui/data/
    "path/stories.txt"              stories separated by blank lines or by <|endoftext|>
    "path/data.jsonl"               one JSON object per line with a "text" field (see `column`)
    "path/train-*.parquet"          parquet file(s) with a "text" column (a glob or a folder of them)
    "hf:roneneldan/TinyStories"     a Hugging Face dataset via `datasets`, streamed (needs the hub)
    "tinystories"                   alias of the line above

    from sptui.corpus import iter_texts, packed_batches, text_batches
    for text in iter_texts("builtin", split="validation", limit=100): ...
    for tokens in packed_batches(texts, n_ctx=128, batch_size=16): ...        # LongTensor [B, n_ctx]
    for batch in text_batches(texts, n_ctx=128, batch_size=32): ...           # one text per row
        batch.ids, batch.tokens [B, n_ctx], batch.lengths [B]

Local files have no splits of their own: `split` picks the train part or the held-out tail
(`VALIDATION_FRACTION` of the stories, at least one), so training and evaluation never share a story.
Tokens are GPT-2 BPE (`sptui.tokenizer`); every story starts with <|endoftext|> (id 50256) as BOS,
like TransformerLens's `to_tokens`. Errors a user can fix raise `SptuiError`.
"""

from __future__ import annotations

import glob
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sptui.errors import SptuiError
from sptui.tokenizer import EOT, EOT_ID

if TYPE_CHECKING:
    import torch

BUILTIN = "builtin"
BUILTIN_FILE = Path(__file__).parent / "data" / "stories.txt"
HF_ALIASES = {"tinystories": "roneneldan/TinyStories"}
VALIDATION_FRACTION = 0.05
SPLITS = ("train", "validation", "all")

_BLANK_LINES = re.compile(r"\n\s*\n")


# ---------------------------------------------------------------- texts

def iter_texts(source: str, split: str = "train", limit: int | None = None, column: str = "text") -> Iterator[str]:
    """Yield the stories of `source` (see the module doc), at most `limit` of them."""
    if split not in SPLITS:
        raise SptuiError(f'split must be one of {", ".join(SPLITS)}, found "{split}"')
    texts = _hf_texts(source, split, column) if _hf_name(source) else _local_texts(source, split, column)
    for i, text in enumerate(texts):
        if limit is not None and i >= limit:
            return
        yield text


def load_texts(source: str, split: str = "train", limit: int | None = None, column: str = "text") -> list[str]:
    return list(iter_texts(source, split, limit, column))


def split_stories(text: str) -> list[str]:
    """One .txt file's stories: split on <|endoftext|> when present, else on blank lines."""
    parts = text.split(EOT) if EOT in text else _BLANK_LINES.split(text)
    return [p.strip() for p in parts if p.strip()]


def _hf_name(source: str) -> str | None:
    if source.lower() in HF_ALIASES:
        return HF_ALIASES[source.lower()]
    if source.startswith("hf:"):
        return source[3:]
    return None


def _local_files(source: str) -> list[Path]:
    if source == BUILTIN:
        return [BUILTIN_FILE]
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".txt", ".jsonl", ".parquet"))
    elif any(ch in source for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(path)))
    else:
        files = [path] if path.exists() else []
    if not files:
        raise SptuiError(
            f'corpus "{source}": no such file (expected a .txt, .jsonl or .parquet path, a folder or glob of them, '
            f'"{BUILTIN}", or "hf:NAME" for a Hugging Face dataset)')
    for f in files:
        if f.suffix not in (".txt", ".jsonl", ".parquet"):
            raise SptuiError(f"{f}: unsupported corpus format {f.suffix or '(none)'}; use .txt, .jsonl or .parquet")
    return files


def _local_texts(source: str, split: str, column: str) -> Iterator[str]:
    files = _local_files(source)
    if split == "all":
        for f in files:
            yield from _file_texts(f, column)
        return
    # A held-out tail needs the total count first; counting is cheap next to tokenising.
    total = sum(_count_texts(f, column) for f in files)
    n_val = max(1, int(round(total * VALIDATION_FRACTION))) if total > 1 else 0
    start, stop = (0, total - n_val) if split == "train" else (total - n_val, total)
    i = 0
    for f in files:
        for text in _file_texts(f, column):
            if start <= i < stop:
                yield text
            i += 1
            if i >= stop:
                return


def _file_texts(path: Path, column: str) -> Iterator[str]:
    if path.suffix == ".txt":
        yield from split_stories(path.read_text(encoding="utf-8", errors="replace"))
    elif path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise SptuiError(f"{path}:{lineno}: not JSON ({e.msg})") from None
                if not isinstance(record, dict) or column not in record:
                    raise SptuiError(f'{path}:{lineno}: no "{column}" field')
                if str(record[column]).strip():
                    yield str(record[column]).strip()
    else:
        pq = _parquet(path, column)
        for batch in pq.iter_batches(columns=[column], batch_size=4096):
            for text in batch.column(0).to_pylist():
                if text and text.strip():
                    yield text.strip()


def _count_texts(path: Path, column: str) -> int:
    if path.suffix == ".parquet":
        pq = _parquet(path, column)
        return sum(1 for b in pq.iter_batches(columns=[column], batch_size=65536)
                   for t in b.column(0).to_pylist() if t and t.strip())
    return sum(1 for _ in _file_texts(path, column))


def _parquet(path: Path, column: str):
    import pyarrow.parquet as papq

    try:
        pq = papq.ParquetFile(str(path))
    except Exception as e:
        raise SptuiError(f"{path}: not a readable parquet file ({e})") from None
    if column not in pq.schema_arrow.names:
        raise SptuiError(f'{path}: no "{column}" column (columns: {", ".join(pq.schema_arrow.names)})')
    return pq


def _hf_texts(source: str, split: str, column: str) -> Iterator[str]:
    from sptui.models import _hub_reachable

    name = _hf_name(source)
    if split == "all":
        raise SptuiError('a Hugging Face dataset needs split = "train" or "validation"')
    if not _hub_reachable():
        raise SptuiError(
            f"no access to the Hugging Face hub for dataset {name}: download its parquet files on a connected "
            f'machine (e.g. `huggingface-cli download {name} --repo-type dataset --local-dir DIR`) and pass '
            f'corpus = "DIR/*.parquet", or use corpus = "{BUILTIN}"')
    try:
        import datasets
    except ImportError:
        raise SptuiError("Hugging Face datasets need the `datasets` package: pip install datasets") from None
    try:
        stream = datasets.load_dataset(name, split=split, streaming=True)
    except Exception as e:
        raise SptuiError(f"cannot open dataset {name} split {split}: {str(e).splitlines()[0] if str(e) else e}") from None
    for record in stream:
        text = record.get(column)
        if text and text.strip():
            yield text.strip()


# ---------------------------------------------------------------- tokens

def encode(texts: Iterable[str], tokenizer=None, bos: bool = True) -> Iterator[list[int]]:
    """Token ids per text (GPT-2 BPE unless another tokenizer is given), with BOS first when `bos`."""
    if tokenizer is None:
        from sptui.tokenizer import gpt2_tokenizer

        tokenizer = gpt2_tokenizer()
    bos_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else EOT_ID
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) == 256:  # the fast tokenizer batches in Rust
            yield from _encode_chunk(tokenizer, chunk, bos, bos_id)
            chunk = []
    if chunk:
        yield from _encode_chunk(tokenizer, chunk, bos, bos_id)


def _encode_chunk(tokenizer, chunk, bos, bos_id):
    for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"]:
        yield ([bos_id] + ids) if bos else ids


def packed_batches(texts: Iterable[str], n_ctx: int, batch_size: int, tokenizer=None, drop_last: bool = True):
    """Stories joined as <eot> story <eot> story ..., cut into rows of n_ctx tokens: LongTensor [B, n_ctx].

    Training-style packing: no padding, a row may span two stories (like TinyStories training)."""
    import torch

    buffer: list[int] = []
    rows: list[list[int]] = []
    for ids in encode(texts, tokenizer, bos=True):
        buffer.extend(ids)
        while len(buffer) >= n_ctx:
            rows.append(buffer[:n_ctx])
            buffer = buffer[n_ctx:]
            if len(rows) == batch_size:
                yield torch.tensor(rows, dtype=torch.long)
                rows = []
    if rows and not drop_last:
        yield torch.tensor(rows, dtype=torch.long)


def packed_tokens(texts: Iterable[str], tokenizer=None, max_tokens: int | None = None) -> torch.Tensor:
    """The stream <eot> story <eot> story ... as one LongTensor, cut at `max_tokens` (None: everything)."""
    import torch

    out: list[int] = []
    for ids in encode(texts, tokenizer, bos=True):
        out.extend(ids)
        if max_tokens is not None and len(out) >= max_tokens:
            del out[max_tokens:]
            break
    return torch.tensor(out, dtype=torch.long)


@dataclass
class TextBatch:
    ids: list[int]             # index of each row's text in the order `texts` yielded them
    tokens: torch.Tensor     # [B, n_ctx] long; BOS first, padded with <eot> after `lengths`
    lengths: torch.Tensor    # [B] long; real tokens per row (texts longer than n_ctx are cut)


def text_batches(texts: Iterable[str], n_ctx: int, batch_size: int, tokenizer=None, pad_id: int = EOT_ID):
    """One text per row (truncated to n_ctx), for scans that must point back at whole texts."""
    import torch

    ids: list[int] = []
    rows: list[list[int]] = []

    def emit():
        lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
        tokens = torch.full((len(rows), n_ctx), pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            tokens[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return TextBatch(ids=list(ids), tokens=tokens, lengths=lengths)

    for i, tok in enumerate(encode(texts, tokenizer, bos=True)):
        ids.append(i)
        rows.append(tok[:n_ctx])
        if len(rows) == batch_size:
            yield emit()
            ids, rows = [], []
    if rows:
        yield emit()
