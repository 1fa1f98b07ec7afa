"""Corpus sources agree with each other, splits are disjoint, and token batches are faithful."""

import json

import pytest
import torch

from sptui.corpus import iter_texts, load_texts, packed_batches, packed_tokens, split_stories, text_batches
from sptui.errors import SptuiError
from sptui.tokenizer import EOT_ID, gpt2_tokenizer

STORIES = [f"Story {i}. Tom saw a red ball.\nHe was happy number {i}." for i in range(40)]


@pytest.fixture
def sources(tmp_path):
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n".join(STORIES) + "\n")
    eot = tmp_path / "eot.txt"
    eot.write_text("<|endoftext|>".join(STORIES))
    jl = tmp_path / "s.jsonl"
    jl.write_text("".join(json.dumps({"text": s, "id": i}) + "\n" for i, s in enumerate(STORIES)))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pqf = tmp_path / "s.parquet"
    pq.write_table(pa.table({"text": STORIES}), pqf)
    return [str(blank), str(eot), str(jl), str(pqf)]


def test_every_format_yields_the_same_stories(sources):
    for source in sources:
        assert load_texts(source, split="all") == STORIES, source


def test_train_and_validation_are_disjoint_and_cover_everything(sources):
    train, val = load_texts(sources[0], "train"), load_texts(sources[0], "validation")
    assert len(val) == 2 and not set(train) & set(val)
    assert train + val == STORIES
    assert load_texts(sources[3], "train", limit=5) == STORIES[:5]


def test_blank_line_split_keeps_single_newlines_inside_a_story():
    assert split_stories("a\nb\n\n\n c \n  \nd") == ["a\nb", "c", "d"]


def test_packed_batches_are_the_token_stream_cut_into_rows():
    stream = packed_tokens(STORIES)
    assert stream[0] == EOT_ID and (stream == EOT_ID).sum() == len(STORIES)
    batches = list(packed_batches(STORIES, n_ctx=16, batch_size=4))
    flat = torch.cat([b.reshape(-1) for b in batches])
    assert all(b.shape == (4, 16) for b in batches)
    assert torch.equal(flat, stream[: flat.numel()])
    assert gpt2_tokenizer().decode(stream[1:9].tolist()).startswith("Story 0. Tom saw")


def test_text_batches_keep_one_text_per_row_padded():
    batches = list(text_batches(STORIES[:5], n_ctx=8, batch_size=2))
    assert [b.ids for b in batches] == [[0, 1], [2, 3], [4]]
    first = batches[0]
    assert first.tokens.shape == (2, 8) and first.tokens[:, 0].eq(EOT_ID).all()
    short = list(text_batches(["Hi"], n_ctx=8, batch_size=2))[0]
    assert short.lengths.tolist() == [2] and short.tokens[0, 2:].eq(EOT_ID).all()


def test_bad_sources_are_clear(tmp_path):
    with pytest.raises(SptuiError, match="no such file"):
        load_texts(str(tmp_path / "missing.txt"))
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"body": "no text"}\n')
    with pytest.raises(SptuiError, match='x.jsonl:1: no "text" field'):
        load_texts(str(bad), "all")
    with pytest.raises(SptuiError, match="split must be"):
        load_texts(str(bad), "dev")
    (tmp_path / "x.csv").write_text("a")
    with pytest.raises(SptuiError, match="unsupported corpus format"):
        load_texts(str(tmp_path / "x.csv"))


def test_hf_dataset_without_hub_says_what_to_download(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SptuiError, match="huggingface-cli download roneneldan/TinyStories --repo-type dataset"):
        next(iter_texts("tinystories"))


def test_packed_tokens_stop_at_max_tokens():
    full = packed_tokens(STORIES)
    cut = packed_tokens(iter(STORIES), max_tokens=50)
    assert torch.equal(cut, full[:50])
