"""Reading a finished Neuroscope run: per-neuron records for the site, the terminal view and the TUI.

    results = NeuroscopeResults(resolve_run("neuroscope-0003"))
    results.layers, results.d_mlp, results.summary
    neuron = results.neuron(layer=1, index=123)        # top texts, quantile samples, histogram, logits, neighbours
    overview = results.layer_overview(1)               # per-neuron arrays for an index table

Arrays are read from the safetensors files lazily and only the slices a neuron needs, so opening one
neuron of a large run is fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sptui.errors import SptuiError

# what the logit effect and the neighbours are computed from, said on every page
WEIGHTS_PROCESSED = ("TransformerLens-processed weights: LayerNorm folded into the next weights, "
                     "W_out and W_U centred")
WEIGHTS_RAW = "raw checkpoint weights (no TransformerLens processing)"

RESULT_FILES = ("summary.json", "topk.safetensors", "activations.safetensors", "histograms.safetensors",
                "weights.safetensors", "texts.safetensors", "tokens.json")


def resolve_run(ref: str, root: Path | None = None) -> Path:
    """A run id, job name or run folder (see `sptui.runs.find_run`) -> the folder of a finished Neuroscope run."""
    from sptui.runs import find_run

    run = find_run(ref, root)
    path = run.root
    missing = [name for name in RESULT_FILES if not (path / "results" / name).exists()]
    if missing:
        try:
            kind = run.kind
        except SptuiError:
            kind = None  # no readable job.toml (a copied results folder): say what is missing
        if kind is not None and kind != "neuroscope":
            raise SptuiError(f'run "{ref}" is of kind {kind}, not neuroscope: give a neuroscope run (`sptui ls '
                             'neuroscope` lists them)')
        raise SptuiError(f"{path}: not a finished neuroscope run (missing results/{missing[0]})")
    return path


@dataclass
class Example:
    """One text as seen by one neuron."""

    text_id: int
    token_ids: np.ndarray        # int32 [T]
    acts: np.ndarray             # float32 [T], this neuron's activation at every token
    max_value: float
    max_position: int
    quantile: float | None = None    # for quantile samples: the nominal level asked for
    percentile: float | None = None  # ... and where this text's max really sits among all texts (0-1)
    document: int = -1               # the document this text comes from (-1: not recorded)
    start: int = 0                   # its first token's offset in the document (> 0: starts mid-document)
    scored_from: int = 0             # positions before this repeat the previous window's context

    @property
    def mid_document(self) -> bool:
        return self.start > 0

    def place(self) -> str:
        """Where a window of a longer document sits ('' for a whole document or its first window)."""
        if not self.mid_document:
            return ""
        where = f"document {self.document}, " if self.document >= 0 else ""
        return f"{where}from token {self.start} (mid-document: no start token; its first {self.scored_from} " \
               f"tokens are the previous window's context)"

    def label(self) -> str:
        """How a quantile example is named: its real percentile, and the level it stands for."""
        if self.quantile is None:
            return ""
        if self.percentile is None or self.percentile != self.percentile:
            return f"q{self.quantile:g}"
        return f"p{100 * self.percentile:.3g} (q{self.quantile:g})"


@dataclass
class Neuron:
    layer: int
    index: int
    d_mlp: int
    top: list[Example]
    samples: list[Example]
    counts: np.ndarray           # int64 [bins]
    edges: np.ndarray            # float64 [bins + 1], this neuron's own
    stats: dict[str, float]      # mean, std, density, min, max, count
    logit_top: list[tuple[int, float]]
    logit_bottom: list[tuple[int, float]]
    similar: list[tuple[int, int, float]]     # (layer, neuron, cosine)
    dissimilar: list[tuple[int, int, float]]
    colour_max: float = field(init=False)     # shared colour scale across the top texts

    def __post_init__(self):
        self.colour_max = max([e.max_value for e in self.top] + [1e-6])


class _Arrays:
    """Lazily opened safetensors file: whole small tensors, or row slices of big ones."""

    def __init__(self, path: Path):
        from safetensors import safe_open

        try:
            self._file = safe_open(str(path), framework="numpy")
        except Exception as e:
            raise SptuiError(f"{path}: corrupt safetensors file ({e})") from None
        self._cache: dict[str, np.ndarray] = {}
        self.path = path

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            try:
                self._cache[name] = self._file.get_tensor(name)
            except Exception:
                raise SptuiError(f"{self.path}: no array {name}") from None
        return self._cache[name]

    def slice(self, name: str, start: int, stop: int) -> np.ndarray:
        return self._file.get_slice(name)[int(start):int(stop)]

    def keys(self):
        return self._file.keys()


class NeuroscopeResults:
    def __init__(self, run_dir: str | Path):
        from sptui.runs import read_json

        self.run_dir = Path(run_dir)
        results = self.run_dir / "results"
        self.summary = read_json(results / "summary.json")
        self.layers: list[int] = list(self.summary["layers"])
        self.d_mlp: int = int(self.summary["d_mlp"])  # units per layer: MLP neurons, or SAE latents
        self.unit: str = self.summary.get("unit", "neuron")  # "neuron" | "latent" (a scan of an SAE's latents)
        self.units_info: dict = self.summary.get("units", {})
        self.topk = _Arrays(results / "topk.safetensors")
        self.acts = _Arrays(results / "activations.safetensors")
        self.hists = _Arrays(results / "histograms.safetensors")
        self.weights = _Arrays(results / "weights.safetensors")
        self.texts = _Arrays(results / "texts.safetensors")
        self._strings = {int(k): v for k, v in read_json(results / "tokens.json").items()}

    # ------------------------------------------------------------ lookups
    def token_string(self, token_id: int) -> str:
        if int(token_id) < 0:  # no token (a unit with no logit effect, or no kept text)
            return ""
        return self._strings.get(int(token_id), f"<{int(token_id)}>")

    def text_tokens(self, text_id: int) -> np.ndarray:
        ids = self.texts["ids"]
        row = int(np.searchsorted(ids, text_id))
        if row >= len(ids) or ids[row] != text_id:
            raise SptuiError(f"text {text_id} is not in this run's text store")
        offsets = self.texts["offsets"]
        return self.texts.slice("tokens", offsets[row], offsets[row + 1])

    def text_place(self, text_id: int) -> tuple[int, int, int]:
        """(document, start offset, scored_from) of a text; (-1, 0, 0) for runs that did not record it."""
        if "documents" not in self.texts.keys():
            return -1, 0, 0
        row = int(np.searchsorted(self.texts["ids"], text_id))
        return int(self.texts["documents"][row]), int(self.texts["starts"][row]), int(self.texts["scored_from"][row])

    def text(self, text_id: int) -> str:
        return "".join(self.token_string(t) for t in self.text_tokens(text_id))

    def check(self, layer: int | None, index: int) -> int:
        """The layer to use (None: the only scanned layer); a clear error for a wrong layer or neuron."""
        if layer is None:
            if len(self.layers) != 1:
                raise SptuiError(f"this run scanned layers {', '.join(map(str, self.layers))}: choose one with --layer")
            layer = self.layers[0]
        if layer not in self.layers:
            raise SptuiError(f"layer {layer} was not scanned (scanned: {', '.join(map(str, self.layers))})")
        if not 0 <= index < self.d_mlp:
            raise SptuiError(f"{self.unit} {index} out of range: {self.place(layer)} has {self.unit}s 0..{self.d_mlp - 1}")
        return layer

    # ------------------------------------------------------------ words for what was scanned
    def place(self, layer: int) -> str:
        """Where the units live: "layer 1" (MLP neurons) or "SAE 0009-sae #0" (its latents)."""
        if self.unit == "latent":
            return f"SAE {self.units_info.get('sae_run', '?')} #{self.units_info.get('sae_instance', 0)}"
        return f"layer {layer}"

    def title(self, layer: int, index: int) -> str:
        """"Layer 1 · Neuron 5" or "SAE 0009-sae #0 · Latent 5"."""
        return f"{self.place(layer)[0].upper()}{self.place(layer)[1:]} · {self.unit.capitalize()} {index}"

    def short(self, layer: int, index: int) -> str:
        """"L1 N5" or "#5" (latents of one SAE need no layer)."""
        return f"#{index}" if self.unit == "latent" else f"L{layer} N{index}"

    @property
    def scanned(self) -> str:
        """What the activations are, for page headers."""
        if self.unit == "latent":
            return (f"latents of SAE {self.units_info.get('sae_run', '?')} #{self.units_info.get('sae_instance', 0)} "
                    f"({self.units_info.get('architecture', '')}) at {self.units_info.get('hook', '?')}")
        return "MLP activations at blocks.L.mlp.hook_post"

    @property
    def direction_name(self) -> str | None:
        """What is multiplied by W_U for the direct logit effect (None: the scanned hook has no direct effect)."""
        if self.unit == "latent":
            return self.units_info.get("direction")
        return "W_out"

    @property
    def neighbour_name(self) -> str:
        return "decoder-row cosine (W_dec)" if self.unit == "latent" else "W_out cosine"

    # ------------------------------------------------------------ one neuron
    def _examples(self, layer: int, index: int, kind: str) -> list[Example]:
        L = f"L{layer}."
        values = self.topk[f"{L}{kind}_values"][index]
        text_ids = self.topk[f"{L}{kind}_text_ids"][index]
        positions = self.topk[f"{L}{kind}_positions"][index]
        offsets = self.acts[f"{L}{kind}_offsets"]
        width = len(values)
        quantiles = self.topk["sample_quantiles"] if kind == "sample" else None
        percentiles = self.topk[f"{L}sample_percentiles"][index] \
            if kind == "sample" and f"{L}sample_percentiles" in self.topk.keys() else None
        out, seen = [], set()
        for slot in range(width):
            text_id = int(text_ids[slot])
            if text_id < 0 or (kind == "sample" and text_id in seen):
                continue  # fewer texts than slots, or two quantiles landing on the same sampled text
            seen.add(text_id)
            entry = index * width + slot
            acts = self.acts.slice(f"{L}{kind}_acts", offsets[entry], offsets[entry + 1]).astype(np.float32)
            document, start, scored_from = self.text_place(text_id)
            out.append(Example(text_id=text_id, token_ids=self.text_tokens(text_id), acts=acts,
                               max_value=float(values[slot]), max_position=int(positions[slot]),
                               quantile=None if quantiles is None else float(quantiles[slot]),
                               percentile=None if percentiles is None else float(percentiles[slot]),
                               document=document, start=start, scored_from=scored_from))
        return out

    def neuron(self, layer: int | None, index: int) -> Neuron:
        layer = self.check(layer, index)
        L = f"L{layer}."
        w = self.weights
        stats = {name: float(self.hists[f"{L}{name}"][index]) for name in ("mean", "std", "density", "min", "max", "count")}
        return Neuron(
            layer=layer, index=index, d_mlp=self.d_mlp,
            top=self._examples(layer, index, "top"),
            samples=self._examples(layer, index, "sample"),
            counts=self.hists[f"{L}counts"][index],
            edges=self.edges(layer, index),
            stats=stats,
            logit_top=list(zip(w[f"{L}logit_top_ids"][index].tolist(), w[f"{L}logit_top_values"][index].tolist())),
            logit_bottom=list(zip(w[f"{L}logit_bottom_ids"][index].tolist(), w[f"{L}logit_bottom_values"][index].tolist())),
            similar=list(zip(w[f"{L}similar_layer"][index].tolist(), w[f"{L}similar_neuron"][index].tolist(),
                             w[f"{L}similar_cos"][index].tolist())),
            dissimilar=list(zip(w[f"{L}dissimilar_layer"][index].tolist(), w[f"{L}dissimilar_neuron"][index].tolist(),
                                w[f"{L}dissimilar_cos"][index].tolist())),
        )

    def edges(self, layer: int, index: int, what: str = "") -> np.ndarray:
        """A neuron's histogram edges: its own (per-neuron lo and width), or a layer's shared edges in runs
        made before per-neuron bins. what="text_max_" for the histogram of per-text maxima."""
        L = f"L{layer}."
        if what:
            lo, width = self.hists[f"{L}{what}lo"][index], self.hists[f"{L}{what}width"][index]
            bins = self.hists[f"{L}{what}counts"].shape[1]
        elif f"{L}bin_lo" in self.hists.keys():
            lo, width = self.hists[f"{L}bin_lo"][index], self.hists[f"{L}bin_width"][index]
            bins = self.hists[f"{L}counts"].shape[1]
        else:
            return self.hists[f"{L}edges"]
        return lo + width * np.arange(bins + 1, dtype=np.float64)

    @property
    def weights_used(self) -> str:
        """Which weights the logit effect and similar neurons come from."""
        return self.summary.get("weights", WEIGHTS_PROCESSED)

    @property
    def weights_short(self) -> str:
        return "raw weights" if self.summary.get("processing") is False else "processed: LN folded, centred"

    # ------------------------------------------------------------ a layer
    def layer_overview(self, layer: int) -> dict[str, np.ndarray]:
        """Per-neuron arrays for an index table: the token of the top activation, max, mean, density,
        top / bottom logit token (token arrays hold ids; -1 where a neuron kept no text)."""
        self.check(layer, 0)
        L = f"L{layer}."
        return {
            "max_token": self._max_tokens(layer),
            "max": self.hists[f"{L}max"],
            "mean": self.hists[f"{L}mean"],
            "density": self.hists[f"{L}density"],
            "top_logit": self._first_column(f"{L}logit_top_ids"),
            "bottom_logit": self._first_column(f"{L}logit_bottom_ids"),
        }

    def _first_column(self, name: str) -> np.ndarray:
        """Column 0 of a [n, t] token array; -1s where t is 0 (latents of a hook with no direct logit effect)."""
        values = self.weights[name]
        return values[:, 0] if values.shape[1] else np.full(values.shape[0], -1, dtype=np.int64)

    def _max_tokens(self, layer: int) -> np.ndarray:
        """Per neuron, the token at which it fired most (in its best text)."""
        ids, offsets, tokens = self.texts["ids"], self.texts["offsets"], self.texts["tokens"]
        text_ids = self.topk[f"L{layer}.top_text_ids"][:, 0]
        positions = self.topk[f"L{layer}.top_positions"][:, 0]
        rows = np.searchsorted(ids, np.maximum(text_ids, 0)).clip(max=max(len(ids) - 1, 0))
        found = (text_ids >= 0) & (len(ids) > 0)
        at = np.where(found, offsets[rows] + positions, 0)
        return np.where(found, tokens[at] if len(tokens) else -1, -1)
