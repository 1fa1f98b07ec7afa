"""Model references resolve to HookedTransformers with the same outputs as the model they came from."""

import json

import pytest
import torch

from sptui.errors import SptuiError
from sptui.models import load_model, resolve_ref, save_model

transformers = pytest.importorskip("transformers")


def _tokens(vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (2, 24), generator=g)


@pytest.fixture(scope="module")
def neo_folder(tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.GPTNeoConfig(
        vocab_size=50257, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=128,
        attention_types=[[["global", "local"], 1]], window_size=8, max_position_embeddings=64)
    hf = transformers.GPTNeoForCausalLM(cfg).eval()
    # random init leaves LayerNorm at identity and biases at zero: perturb them so folding is exercised
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "ln" in name or "bias" in name:
                p.add_(0.1 * torch.randn_like(p))
    folder = tmp_path_factory.mktemp("hf") / "neo"
    hf.save_pretrained(folder)
    return folder, hf


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    torch.manual_seed(1)
    cfg = transformers.GPT2Config(vocab_size=1000, n_embd=32, n_layer=2, n_head=4, n_positions=64, n_ctx=64)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    folder = tmp_path_factory.mktemp("hf") / "gpt2"
    hf.save_pretrained(folder)
    return folder, hf


@pytest.mark.parametrize("processing", [False, True])
def test_gpt_neo_folder_matches_hf_logits(neo_folder, processing):
    folder, hf = neo_folder
    tokens = _tokens(50257)
    with torch.no_grad():
        expected = hf(tokens).logits
        got = load_model(str(folder), processing=processing)(tokens)
    if processing:  # centring the unembedding shifts logits per position; log-probs are unchanged
        got, expected = got.log_softmax(-1), expected.log_softmax(-1)
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)


def test_gpt2_folder_matches_hf_logits(gpt2_folder):
    folder, hf = gpt2_folder
    tokens = _tokens(1000)
    with torch.no_grad():
        torch.testing.assert_close(load_model(str(folder), processing=False)(tokens), hf(tokens).logits, atol=2e-5, rtol=1e-4)


def test_gpt2_vocab_model_gets_offline_tokenizer_with_bos(neo_folder):
    model = load_model(str(neo_folder[0]))
    assert model.to_tokens("Once upon a time").tolist() == [[50256, 7454, 2402, 257, 640]]


def test_folder_with_its_own_tokenizer_uses_it_offline(neo_folder, tmp_path, monkeypatch):
    import shutil

    from sptui.tokenizer import gpt2_tokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "neo-with-tokenizer"
    shutil.copytree(neo_folder[0], folder)
    gpt2_tokenizer().save_pretrained(folder)
    model = load_model(str(folder))
    assert str(folder) in model.tokenizer.name_or_path
    assert model.to_tokens("Once upon a time").tolist() == [[50256, 7454, 2402, 257, 640]]


def test_sptui_run_round_trip_and_plain_transformer_lens(neo_folder, tmp_path, artifacts):
    import safetensors.torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    raw = load_model(str(neo_folder[0]), processing=False)
    run = artifacts / "runs" / "lm-0001"
    save_model(raw, run / "results")
    tokens = _tokens(50257, seed=3)
    with torch.no_grad():
        expected = raw(tokens)
        for ref in ("lm-0001", str(run), str(run / "results")):
            assert resolve_ref(ref)[0] == "sptui"
            torch.testing.assert_close(load_model(ref, processing=False)(tokens), expected)
        processed = load_model("lm-0001", processing=True)
        assert processed.cfg.normalization_type == "LNPre"
        torch.testing.assert_close(processed(tokens).log_softmax(-1), expected.log_softmax(-1), atol=2e-5, rtol=1e-4)
        # the saved pair is plain TransformerLens: no sptui code needed to rebuild it
        cfg = json.loads((run / "results" / "config.json").read_text())
        cfg["dtype"] = getattr(torch, cfg["dtype"])
        plain = HookedTransformer(HookedTransformerConfig(**cfg))
        plain.load_state_dict(safetensors.torch.load_file(run / "results" / "model.safetensors"))
        torch.testing.assert_close(plain(tokens), expected)


def test_bad_references_are_one_line_errors(tmp_path, artifacts, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # behave as on a machine without the hub, quickly
    with pytest.raises(SptuiError, match="did you mean tiny-stories-2l-33m"):
        load_model("tiny-stories-2L-33X")
    with pytest.raises(SptuiError, match="not a model folder"):
        load_model(str(tmp_path))
    with pytest.raises(SptuiError, match="huggingface-cli download roneneldan/TinyStories-2Layers-33M"):
        load_model("tiny-stories-2L-33M")
    (artifacts / "runs" / "empty-run").mkdir(parents=True)
    with pytest.raises(SptuiError, match="no saved model"):
        load_model("empty-run")


def test_job_name_resolves_to_its_newest_finished_run(neo_folder, artifacts):
    raw = load_model(str(neo_folder[0]), processing=False)
    runs = artifacts / "runs"
    save_model(raw, runs / "0002-lm-tiny" / "results")
    (runs / "0005-lm-tiny" / "results").mkdir(parents=True)  # a later run still training: no model yet
    (runs / "0009-lm-tiny-big" / "results").mkdir(parents=True)  # another job whose name only starts alike
    kind, where = resolve_ref("lm-tiny")
    assert kind == "sptui" and where == runs / "0002-lm-tiny" / "results"


def test_runs_root_is_searched_before_the_artifacts_root(neo_folder, tmp_path, artifacts):
    raw = load_model(str(neo_folder[0]), processing=False)
    elsewhere = tmp_path / "other-artifacts" / "runs"
    save_model(raw, elsewhere / "0003-lm-tiny" / "results")
    with pytest.raises(SptuiError, match="unknown model"):
        resolve_ref("lm-tiny")  # not under $SPTUI_ARTIFACTS
    assert resolve_ref("lm-tiny", runs_root=elsewhere) == ("sptui", elsewhere / "0003-lm-tiny" / "results")


def test_transformer_lens_name_loads_offline_from_the_hf_cache(neo_folder, tmp_path, monkeypatch):
    """No hub: a TransformerLens name resolves to its snapshot in the local Hugging Face cache."""
    import shutil

    import huggingface_hub.constants

    folder, hf = neo_folder
    cache = tmp_path / "hub"
    repo = cache / "models--roneneldan--TinyStories-1M"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = load_model("tiny-stories-1M", processing=False)
    assert model.cfg.model_name == "TinyStories-1M"
    tokens = _tokens(50257, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), hf(tokens).logits, atol=2e-5, rtol=1e-4)
