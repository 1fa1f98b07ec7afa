"""Model references -> TransformerLens `HookedTransformer`.

    from sptui.models import load_model, save_model
    model = load_model("tiny-stories-2L-33M")            # a TransformerLens model name (hub, or HF cache)
    model = load_model("/data/TinyStories-2Layers-33M")   # a local Hugging Face folder (GPT-Neo, GPT-2, ...)
    model = load_model("0003-lm-tiny")                    # a run id of this project (artifacts/runs/<id>)
    model = load_model("lm-tiny")                         # ... or a job name: its newest run with a model
    model = load_model("artifacts/runs/0003-lm-tiny")     # ... or its folder, or its results/ folder
    model = load_model(ref, device="cuda", processing=False)   # raw weights (from_pretrained_no_processing)

`processing=True` applies TransformerLens's default weight processing (fold LayerNorm, centre writing
weights and unembedding, fold value biases), like `HookedTransformer.from_pretrained`; it changes no log
probability. Every failure a user can fix (unknown name, no hub access, unreadable folder) raises
`SptuiError` with one line saying what to do.

A run of this project stores its model as `results/model.safetensors` (the HookedTransformer state dict)
and `results/config.json` (the HookedTransformerConfig fields; `dtype` as a string such as "float32"), so
plain TransformerLens rebuilds it:

    cfg = json.load(open("results/config.json")); cfg["dtype"] = getattr(torch, cfg["dtype"])
    model = HookedTransformer(HookedTransformerConfig(**cfg))
    model.load_state_dict(safetensors.torch.load_file("results/model.safetensors"))

`save_model(model, results_dir)` writes that pair. Models with GPT-2's vocabulary (d_vocab 50257) get the
offline GPT-2 tokenizer (`sptui.tokenizer`); others (e.g. the addition model) get none.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sptui.errors import SptuiError

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"

# TransformerLens model-name prefixes whose tokenizer is GPT-2's BPE: loaded offline from our files.
_GPT2_BPE_FAMILIES = ("roneneldan/TinyStories", "gpt2", "openai-community/gpt2", "EleutherAI/gpt-neo", "distilgpt2")


# ---------------------------------------------------------------- public API

def load_model(ref: str, device: str = "cpu", processing: bool = True, runs_root: str | Path | None = None):
    """Resolve a model reference (TL name, local HF folder, or sptui run) to a HookedTransformer in eval mode.

    Run ids and job names are looked up in `runs_root` (a kind passes its own run's parent folder), else in
    the artifacts root's runs/ ($SPTUI_ARTIFACTS or ./artifacts)."""
    ref = str(ref).strip()
    if not ref:
        raise SptuiError("empty model reference: pass a TransformerLens name, a Hugging Face folder or a run id")
    kind, where = resolve_ref(ref, runs_root)
    with _quiet():
        if kind == "sptui":
            model = _load_sptui(where, device, processing)
        elif kind == "hf-folder":
            model = _load_hf_folder(where, device, processing)
        else:
            model = _load_by_name(where, device, processing)
    return model.eval()


def resolve_ref(ref: str, runs_root: str | Path | None = None) -> tuple[str, Any]:
    """("sptui", results_dir) | ("hf-folder", folder) | ("name", official_name); SptuiError otherwise."""
    path = Path(ref).expanduser()
    if path.exists():
        found = _classify_folder(path)
        if found is None:
            raise SptuiError(
                f'{path}: not a model folder (expected a sptui run with results/{MODEL_FILE}, or a Hugging Face '
                f"folder with config.json and weights)")
        return found
    run = _run_folder(ref, runs_root)
    if run is not None:
        found = _classify_folder(run)
        if found is None or found[0] != "sptui":
            raise SptuiError(f"run {ref} ({run}) has no saved model yet (results/{MODEL_FILE} + results/{CONFIG_FILE}); "
                             "has it finished?")
        return found
    return "name", _official_name(ref, runs_root)


def save_model(model, results_dir: str | Path) -> tuple[Path, Path]:
    """Write results/model.safetensors + results/config.json so plain TransformerLens can rebuild the model."""
    import safetensors.torch

    from sptui import runs

    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = results_dir / MODEL_FILE
    runs.atomic_write_bytes(weights, safetensors.torch.save(state, metadata={"format": "pt"}))
    config = results_dir / CONFIG_FILE
    runs.atomic_write_json(config, config_to_json(model.cfg))
    return weights, config


def config_to_json(cfg) -> dict[str, Any]:
    """HookedTransformerConfig -> a JSON-able dict of its fields (dtype as "float32", device "cpu")."""
    d = dict(cfg.to_dict())  # to_dict() may hand back the config's own __dict__: never mutate it
    d["dtype"] = str(d["dtype"]).removeprefix("torch.")
    d["device"] = "cpu"  # plain TransformerLens needs one; load_model picks the real device
    d.pop("n_devices", None)
    return json.loads(json.dumps(d, default=str))


def config_from_json(d: dict[str, Any], device: str = "cpu"):
    import torch
    from transformer_lens import HookedTransformerConfig

    d = dict(d)
    if isinstance(d.get("dtype"), str):
        d["dtype"] = getattr(torch, d["dtype"].removeprefix("torch."))
    d["device"] = str(device)
    d.pop("n_devices", None)
    d["tokenizer_name"] = None  # never reach for the hub to fetch a tokenizer; we attach one ourselves
    try:
        return HookedTransformerConfig(**d)
    except TypeError as e:
        raise SptuiError(f"{CONFIG_FILE} does not match this TransformerLens version: {e}") from None


# ---------------------------------------------------------------- resolving references

def _classify_folder(path: Path) -> tuple[str, Path] | None:
    if path.is_file():
        refuse_pickle(path)
        path = path.parent
    for candidate in (path / "results", path):
        cfg = candidate / CONFIG_FILE
        if (candidate / MODEL_FILE).exists() and cfg.exists() and _is_tl_config(cfg):
            return "sptui", candidate
    if (path / CONFIG_FILE).exists():
        refuse_pickle(path)
        return "hf-folder", path
    return None


# torch.save and pytorch_model.bin are pickles: loading one runs whatever code it holds
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")


def refuse_pickle(path: Path) -> None:
    """sptui reads weights from safetensors only: a pickle file, or a Hugging Face folder whose weights are
    only pickles (pytorch_model.bin), is refused in one line saying how to convert it."""
    convert = ("convert it where you trust it: AutoModelForCausalLM.from_pretrained(DIR).save_pretrained(DIR) "
               "writes model.safetensors")
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise SptuiError(f"{path}: a pickle file; sptui loads weights from safetensors only (convert it where you "
                             "trust it: safetensors.torch.save_file(torch.load(FILE), 'model.safetensors'), next to "
                             "the model's config.json)")
        return
    if path.is_dir() and not any(path.glob("*.safetensors")):
        pickles = sorted(f.name for f in path.iterdir() if f.suffix.lower() in PICKLE_SUFFIXES)
        if pickles:
            raise SptuiError(f"{path}: its weights are pickles ({', '.join(pickles[:3])}), no .safetensors; "
                             f"sptui loads weights from safetensors only ({convert})")


def _is_tl_config(path: Path) -> bool:
    try:
        d = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(d, dict) and "d_model" in d and "n_layers" in d and "architectures" not in d


def _run_folder(ref: str, runs_root: str | Path | None = None) -> Path | None:
    """A run id ("0007-lm-tiny") or a job name ("lm-tiny": its newest run with a saved model) -> run folder.

    Looked up in `runs_root` first, then in the artifacts root's runs/."""
    from sptui.runs import find_run

    if "/" in ref or ref.startswith("."):
        return None
    for runs in _runs_roots(runs_root):
        root = runs.parent
        try:
            return find_run(ref, root, prefer=f"results/{MODEL_FILE}").root
        except SptuiError:
            continue
    return None


def _runs_roots(explicit: str | Path | None = None) -> list[Path]:
    from sptui.config import artifacts_root, runs_dir

    default = runs_dir(artifacts_root())
    return list(dict.fromkeys([Path(explicit).resolve(), default] if explicit is not None else [default]))


def _official_name(name: str, runs_root: str | Path | None = None) -> str:
    from transformer_lens import loading_from_pretrained as loading

    try:
        return loading.get_official_model_name(name)
    except ValueError:
        import difflib

        known = list(loading.make_model_alias_map())
        close = difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise SptuiError(
            f'unknown model "{name}": not an existing path, not a run id or job name under '
            f"{' or '.join(str(r) for r in dict.fromkeys(_runs_roots(runs_root)))}, and not a TransformerLens model name{hint}") from None


def transformer_lens_names() -> dict[str, str] | None:
    """TransformerLens's model names and aliases (lower case) -> official name, read from its registry
    (transformer_lens/supported_models.py, plain data) without importing TransformerLens, which takes seconds:
    what `validate` checks a model name against. None when that file is not where TransformerLens 3 keeps it
    (the name is then checked when the job loads it)."""
    import importlib.util
    import sys

    registry = sys.modules.get("transformer_lens.supported_models")
    if registry is None:
        package = importlib.util.find_spec("transformer_lens")  # finds it without importing it
        locations = list(package.submodule_search_locations or []) if package else []
        path = Path(locations[0]) / "supported_models.py" if locations else None
        if path is None or not path.is_file():
            return None
        spec = importlib.util.spec_from_file_location("_sptui_tl_supported_models", path)
        if spec is None or spec.loader is None:
            return None
        try:
            registry = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(registry)
        except Exception:  # a TransformerLens whose registry needs more than itself: check at load time
            return None
    official = getattr(registry, "OFFICIAL_MODEL_NAMES", None)
    aliases = getattr(registry, "MODEL_ALIASES", {})
    if not isinstance(official, list):
        return None
    names = {}
    for name in official:
        names[name.lower()] = name
        for alias in aliases.get(name, []):
            names[alias.lower()] = name
    return names


# ---------------------------------------------------------------- the three loaders

def _load_sptui(results: Path, device: str, processing: bool):
    import safetensors.torch
    from transformer_lens import HookedTransformer

    try:
        cfg_dict = json.loads((results / CONFIG_FILE).read_text())
        state = safetensors.torch.load_file(str(results / MODEL_FILE), device="cpu")
    except (OSError, json.JSONDecodeError) as e:
        raise SptuiError(f"{results}: cannot read the saved model ({e})") from None
    except Exception as e:  # safetensors' own error types for a truncated file
        raise SptuiError(f"{results / MODEL_FILE}: corrupt safetensors file ({e})") from None
    cfg = config_from_json(cfg_dict, device)
    model = HookedTransformer(cfg, tokenizer=_tokenizer_for_vocab(cfg.d_vocab), move_to_device=False)
    has_ln = cfg.normalization_type in ("LN", "LNPre", "RMS", "RMSPre")
    try:
        if processing:
            model.load_and_process_state_dict(
                state,
                fold_ln=has_ln,
                center_writing_weights=has_ln,  # without a norm, centring the residual changes the output
                center_unembed=True,
                fold_value_biases=True,
            )
        else:
            model.load_state_dict(state)
    except RuntimeError as e:
        raise SptuiError(f"{results}: weights do not fit {CONFIG_FILE} ({str(e).splitlines()[0]})") from None
    return model.to(device)


def _load_hf_folder(folder: Path, device: str, processing: bool, display_name: str | None = None):
    """A local Hugging Face checkpoint converted with TransformerLens's own weight conversion, offline."""
    import torch
    from transformer_lens import HookedTransformer
    from transformer_lens import loading_from_pretrained as loading
    from transformers import AutoModelForCausalLM

    folder = folder.resolve()
    refuse_pickle(folder)  # a cached hub snapshot comes here without _classify_folder
    with _hub_offline():
        try:
            cfg = loading.get_pretrained_model_config(str(folder), fold_ln=processing, device=device, dtype=torch.float32)
            hf_model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, use_safetensors=True)
        except (OSError, ValueError, KeyError, AttributeError) as e:  # AttributeError: a config field TL expects
            raise SptuiError(f"{folder}: cannot load as a Hugging Face model ({_first_line(e)})") from None
        except NotImplementedError as e:
            raise SptuiError(f"{folder}: architecture not supported by TransformerLens ({_first_line(e)})") from None
        try:
            state = loading.get_pretrained_state_dict(str(folder), cfg, hf_model, dtype=torch.float32)
        except (ValueError, NotImplementedError, KeyError) as e:
            raise SptuiError(f"{folder}: TransformerLens cannot convert these weights ({_first_line(e)})") from None
    if display_name:
        cfg.model_name = display_name
    model = HookedTransformer(cfg, tokenizer=_folder_tokenizer(folder, cfg.d_vocab), move_to_device=False)
    model.load_and_process_state_dict(
        state, fold_ln=processing, center_writing_weights=processing, center_unembed=processing,
        fold_value_biases=processing)
    return model.to(device)


def _load_by_name(official: str, device: str, processing: bool):
    """A TransformerLens model name: from the hub when reachable, else from the local Hugging Face cache."""
    from transformer_lens import HookedTransformer

    if _hub_reachable():
        loader = HookedTransformer.from_pretrained if processing else HookedTransformer.from_pretrained_no_processing
        kwargs = {}
        if official.startswith(_GPT2_BPE_FAMILIES):
            kwargs["tokenizer"] = _tokenizer_for_vocab(50257)
        try:
            return loader(official, device=device, **kwargs)
        except OSError as e:
            raise SptuiError(f"cannot download {official} from the Hugging Face hub ({_first_line(e)})") from None
    cached = _cached_snapshot(official)
    if cached is not None:
        return _load_hf_folder(cached, device, processing, display_name=official.split("/")[-1])
    raise SptuiError(
        f"no access to the Hugging Face hub and {official} is not in the local cache: on a connected machine run "
        f"`huggingface-cli download {official} --local-dir DIR`, copy DIR here and pass model = \"DIR\"")


# ---------------------------------------------------------------- hub, cache, tokenizers

def _hub_endpoint() -> tuple[str, int]:
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return url.hostname or "huggingface.co", url.port or (443 if url.scheme != "http" else 80)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect instead of transformers' ~25 s of retries when offline."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        with socket.create_connection(_hub_endpoint(), timeout=timeout):
            return True
    except OSError:
        return False


def _cached_snapshot(official: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(official, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError) or no huggingface_hub
        return None
    return folder if (folder / CONFIG_FILE).exists() else None


def _tokenizer_for_vocab(d_vocab: int):
    from sptui.tokenizer import VOCAB_SIZE, gpt2_tokenizer

    return gpt2_tokenizer(add_bos=True) if d_vocab == VOCAB_SIZE else None


def _folder_tokenizer(folder: Path, d_vocab: int):
    """The folder's own tokenizer when it ships one, else GPT-2's for a 50257-token vocabulary."""
    if any((folder / f).exists() for f in ("tokenizer.json", "vocab.json", "tokenizer.model")):
        try:
            from transformers import AutoTokenizer

            # add_bos_token=True up front, or TransformerLens re-loads the tokenizer by name from the hub
            return AutoTokenizer.from_pretrained(str(folder), add_bos_token=True)
        except Exception:
            pass
    return _tokenizer_for_vocab(d_vocab)


@contextlib.contextmanager
def _hub_offline():
    """Local folders must never touch the network (transformers reads this variable per call)."""
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old


@contextlib.contextmanager
def _quiet():
    """TransformerLens logs warnings and prints on every load; keep the console for the user's output."""
    tl_logger = logging.getLogger()
    level = tl_logger.level
    tl_logger.setLevel(logging.ERROR)
    try:
        with open(os.devnull, "w") as devnull, warnings.catch_warnings(), contextlib.redirect_stdout(devnull):
            warnings.simplefilter("ignore")
            yield
    finally:
        tl_logger.setLevel(level)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def trained_corpus(ref: str, runs_root: str | Path | None = None) -> tuple[str, str, str] | None:
    """(corpus, text column, why) of the text the sptui `lm` run `ref` (id, job name or folder) was trained on, as
    its job.toml names it; None for any other model (a TransformerLens name, a Hugging Face folder, another kind's
    run). Kinds that read text through a model default to it, so a model is read on the text it learned from."""
    from sptui.runs import RunDir

    kind, where = resolve_ref(ref, runs_root)
    if kind != "sptui":
        return None
    run = RunDir(where.parent if where.name == "results" else where)
    if not run.job_toml.exists() or run.kind != "lm":
        return None
    lm = run.spec().instances()[0]
    return lm.corpus, lm.text_column, f"the corpus lm run {run.root.name} was trained on (its job.toml)"
