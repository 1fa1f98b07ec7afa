"""What the app's `sae` browser shows, shaped from a run's results (no Textual, no drawing).

    view = load_sae(run_dir)
    view.metric_table()                 instances x metrics
    view.recovery_grid(metric, setting) toy sources: a metric on the toy sweep's grid for one SAE setting,
                                        and which instance each cell is
    view.cosines(i)                     toy sources: decoder vs true directions [features, latents], latents
                                        reordered so each feature's matched latent sits on the diagonal
    view.latent_table(i, sort)          per latent: firing frequency, max activation (and best feature, toy)
    view.neuroscope_for(i)              a finished Neuroscope run over instance i's latents, if there is one
    view.block_links(i)                 SAEs on an MLP layer: the neuron-geometry blocks of that layer, with the
                                        share of each latent's decoder norm on each block's neurons
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sptui.render.colormap import fmt
from sptui.sae.results import SAEResults

METRICS = ["l0", "fvu", "mse", "dead_fraction", "dense_fraction", "mmcs", "corr", "f1", "ce_loss_recovered",
           "ce_loss_recovered_mean", "ce_clean", "ce_sae"]
RECOVERY_METRICS = ["mmcs", "f1", "corr", "l0", "fvu", "dead_fraction"]
# what each metric's colour means on the recovery grid (definitions: sptui.science.sae_metrics)
METRIC_LABELS = {"mmcs": "MMCS: mean over true features of the max cos(true feature, decoder row)",
                 "f1": "firing F1 of the matched latent, mean over features",
                 "corr": "correlation of matched feature and latent, mean over features",
                 "l0": "L0: latents firing per input", "fvu": "fraction of variance unexplained",
                 "dead_fraction": "share of latents dead"}
LATENT_SORTS = ["index", "frequency", "max"]


def label(v) -> str:
    if isinstance(v, list):
        return f"[..{v[-1]:g}]" if v else "[]"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _sort_key(text: str):
    try:
        return (0, float(text.strip("[.]")), text)
    except ValueError:
        return (1, 0.0, text)


@dataclass
class BlockLinks:
    """Neuron-geometry blocks of the SAE's layer and how much of each latent's decoder lies on them."""

    run_id: str
    blocks: list[list[int]]
    share: np.ndarray  # [latents, blocks]: share of ||W_dec_j||^2 on block b's neurons
    enrichment: np.ndarray  # share / (block size / d_mlp): 1 = no more than a random direction


@dataclass
class SAEView:
    results: SAEResults
    run_id: str
    settings: list[dict] = field(default_factory=list)  # the SAE's own sweep points, in order
    links: list = field(default_factory=list)  # per instance: BlockLinks or None (filled by whoever needs them)

    def __post_init__(self):
        for r in self.records:
            if r["grid"] not in self.settings:
                self.settings.append(r["grid"])

    @property
    def records(self) -> list[dict]:
        return self.results.records

    @property
    def n_instances(self) -> int:
        return self.results.n_instances

    @property
    def is_toy(self) -> bool:
        return self.results.is_toy

    def metrics(self) -> list[str]:
        present = {k for r in self.records for k in r["metrics"]}
        return [m for m in METRICS if m in present]

    def metric(self, name: str) -> np.ndarray:
        return np.array([np.nan if r["metrics"].get(name) is None else float(r["metrics"][name]) for r in self.records])

    def instance_label(self, i: int) -> str:
        r = self.records[i]
        point = {**r["grid"], **r.get("source_grid", {})}
        words = " ".join(f"{k}={label(v)}" for k, v in point.items())
        geometry = r.get("source_geometry")  # toy sources: the arrangement the toy model found
        return f"{i:>3} {words}".rstrip() + (f" · {geometry}" if geometry else "")

    def short_label(self, i: int) -> str:
        """One line for a narrow list: the same values under their initials ("fp=0.1 d=0")."""
        from sptui.render.toy import short_name

        r = self.records[i]
        point = {**r["grid"], **r.get("source_grid", {})}
        return f"{i:>3} " + " ".join(f"{short_name(k)}={label(v)}" for k, v in point.items())

    def metric_table(self) -> tuple[list[str], list[list[str]]]:
        """(header, rows): one row per instance with its setting and every final metric."""
        names = self.metrics()
        header = ["#", "setting", *names]
        rows = []
        for i, r in enumerate(self.records):
            point = {**r["grid"], **r.get("source_grid", {})}
            rows.append([str(i), " ".join(f"{k}={label(v)}" for k, v in point.items()) or "-",
                         *[fmt(r["metrics"].get(m)) for m in names]])
        return header, rows

    # ------------------------------------------------------------ toy sources
    def source_axes(self) -> list[str]:
        """The toy sweep's swept keys (at most two are drawn), seeds last."""
        values: dict[str, set] = {}
        for r in self.records:
            for k, v in r.get("source_grid", {}).items():
                values.setdefault(k, set()).add(label(v))
        keys = [k for k, vs in values.items() if len(vs) > 1]
        return sorted(keys, key=lambda k: k == "seed")

    def recovery_grid(self, metric: str, setting: int = 0) -> tuple[np.ndarray, list[str], list[list[str]], np.ndarray]:
        """`metric` on the toy sweep's grid (rows: first swept key, columns: second; further keys averaged)
        for SAE setting `setting`: (matrix, keys, value labels, instance per cell or -1)."""
        keys = self.source_axes()[:2]
        if not keys:
            raise ValueError("the toy run swept nothing")
        point = self.settings[setting]
        mine = [(i, r) for i, r in enumerate(self.records) if r["grid"] == point]
        values = [sorted({label(r["source_grid"][k]) for _, r in mine}, key=_sort_key) for k in keys]
        if len(keys) == 1:
            values.append([""])
        shape = (len(values[0]), len(values[1]))
        total, count = np.zeros(shape), np.zeros(shape)
        index = np.full(shape, -1, dtype=np.int64)
        for i, r in mine:
            a = values[0].index(label(r["source_grid"][keys[0]]))
            b = values[1].index(label(r["source_grid"][keys[1]])) if len(keys) > 1 else 0
            v = r["metrics"].get(metric)
            if v is not None and np.isfinite(v):
                total[a, b] += v
                count[a, b] += 1
            if index[a, b] < 0:
                index[a, b] = i
        with np.errstate(invalid="ignore"):
            return (total / count).astype(np.float32), keys, values, index

    def cosines(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cosine [n features, d_sae] with latent columns reordered, the latent index of each column, the
        represented mask [n]). Matched latents come first, in feature order (the diagonal), then the others
        by their best cosine."""
        t = self.results.toy(i)
        cos, match = t["cosines"], t["match"]
        matched = [int(m) for m in match if m >= 0]
        rest = [j for j in np.argsort(-cos.max(axis=0)) if j not in set(matched)]
        order = np.array(matched + rest, dtype=np.int64)
        return cos[:, order], order, t["represented"].astype(bool)

    def describe_cosine(self, i: int, row: int, col: int, value: float) -> str:
        t = self.results.toy(i)
        _, order, represented = self.cosines(i)
        latent = int(order[col])
        matched = int(t["match"][row])
        shapes = self.records[i].get("source_shapes")
        shape = f" ({shapes[row]})" if shapes and represented[row] else ""  # its shape in the toy model
        words = (f"feature {row}{shape}{'' if represented[row] else ' (not represented)'} · latent {latent} · "
                 f"cos {fmt(value)}")
        if matched == latent:
            words += f" · its matched latent: corr {fmt(t['feature_corr'][row])}, F1 {fmt(t['feature_f1'][row])}"
        elif matched >= 0:
            words += f" · matched latent is {matched}"
        return words

    # ------------------------------------------------------------ latents
    def latent_table(self, i: int, sort: str = "index") -> dict[str, np.ndarray]:
        """Per latent (rows in `sort` order): index, frequency, max activation; toy: best feature and its cosine."""
        lat = self.results.latents(i)
        n = len(lat["frequency"])
        table = {"latent": np.arange(n), "frequency": lat["frequency"], "max": lat["max_activation"]}
        if self.is_toy:
            cos = self.results.toy(i)["cosines"]
            table["feature"] = cos.argmax(axis=0)
            table["cos"] = cos.max(axis=0)
        order = {"index": np.arange(n), "frequency": np.argsort(-table["frequency"], kind="stable"),
                 "max": np.argsort(-table["max"], kind="stable")}[sort]
        return {k: v[order] for k, v in table.items()}

    def neuroscope_for(self, i: int) -> Path | None:
        """The newest finished Neuroscope run over instance i's latents, in the same runs folder."""
        from sptui.runs import read_json

        found = None
        for folder in sorted(self.results.run_dir.parent.iterdir()):
            summary = folder / "results" / "summary.json"
            if not summary.exists() or not (folder / "results" / "topk.safetensors").exists():
                continue
            try:
                units = read_json(summary).get("units", {})
            except Exception:
                continue
            if units.get("sae_run") == self.run_id and int(units.get("sae_instance", -1)) == i:
                found = folder
        return found

    def block_links(self, i: int) -> BlockLinks | None:
        """For an SAE on blocks.L.mlp.hook_post: the newest neuron-geometry run of the same model and layer
        (W_out or W_in rows: both index the same neurons), and each latent's decoder share on its blocks."""
        from sptui.sae.results import geometry_runs_for
        from sptui.science.sae_metrics import block_loading

        runs = geometry_runs_for(self.results)
        if not runs:
            return None
        run_dir, blocks = runs[-1]
        W = self.results.weights(i)["W_dec"]
        share, enrichment = block_loading(W, blocks)
        return BlockLinks(run_id=run_dir.name, blocks=blocks, share=share, enrichment=enrichment)


def load_sae(run_dir: str | Path) -> SAEView:
    from sptui.sae.results import resolve_run

    path = resolve_run(str(run_dir))
    return SAEView(SAEResults(path), Path(path).name)
