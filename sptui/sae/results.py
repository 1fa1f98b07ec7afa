"""Reading a finished `sae` run: its instances and metrics, its weights, one SAE, and the model it read.

    results = SAEResults(find_run("recover-sae", kind="sae").root)
    results.records, results.summary, results.n_instances, results.is_toy
    results.weights(i)        W_enc [d_in, d_sae], W_dec [d_sae, d_in], ... of instance i (numpy, padding cut)
    results.latents(i)        per latent: frequency, max_activation (on the evaluation sample)
    results.saved(i)          instance i as a SavedSAE (encode/decode in torch), from its SAELens folder
    results.toy(i)            toy sources: cosines [n, d_sae], represented [n], match, feature_corr, feature_f1
    results.open_model(device)    the transformer the SAEs read, loaded as the run loaded it
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np

from sptui import runs
from sptui.errors import SptuiError

RESULT_FILES = ("summary.json", "instances.json", "sae.safetensors")


def resolve_run(ref: str, root: Path | None = None) -> Path:
    """A run id, job name or folder -> the folder of a finished sae run (one clear error otherwise)."""
    run = runs.find_run(ref, root, kind="sae", prefer="results/sae.safetensors")
    missing = [name for name in RESULT_FILES if not (run.results / name).exists()]
    if missing:
        raise SptuiError(f"{run.root}: not a finished sae run (missing results/{missing[0]})")
    return run.root


class SAEResults:
    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.results = self.run_dir / "results"
        self.summary = runs.read_json(self.results / "summary.json")
        self.records = runs.read_json(self.results / "instances.json")

    @property
    def n_instances(self) -> int:
        return len(self.records)

    @property
    def source(self) -> dict:
        return self.summary["source"]

    @property
    def is_toy(self) -> bool:
        return self.source["kind"] == "tms"

    @property
    def hook(self) -> str | None:
        return self.source.get("hook")

    @cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        return runs.load_arrays(self.results / "sae.safetensors")

    @cached_property
    def toy_arrays(self) -> dict[str, np.ndarray]:
        return runs.load_arrays(self.results / "toy.safetensors")

    def check(self, i: int) -> int:
        if not 0 <= i < self.n_instances:
            raise SptuiError(f"instance {i} out of range: this sae run has instances 0..{self.n_instances - 1}")
        return i

    def d_sae(self, i: int) -> int:
        return int(self.arrays["d_sae"][self.check(i)])

    def weights(self, i: int) -> dict[str, np.ndarray]:
        n = self.d_sae(i)
        a = self.arrays
        out = {"W_enc": a["W_enc"][i, :, :n], "b_enc": a["b_enc"][i, :n], "W_dec": a["W_dec"][i, :n], "b_dec": a["b_dec"][i]}
        if "threshold" in a:
            out["threshold"] = a["threshold"][i, :n]
        return out

    def latents(self, i: int) -> dict[str, np.ndarray]:
        n = self.d_sae(i)
        return {"frequency": self.arrays["frequency"][i, :n], "max_activation": self.arrays["max_activation"][i, :n]}

    def saved(self, i: int):
        from sptui.sae import saelens_format

        return saelens_format.load(self.results / "saes" / str(self.check(i)))

    def toy(self, i: int) -> dict[str, np.ndarray]:
        if not self.is_toy:
            raise SptuiError("this sae run did not read a toy model: no true features to compare with")
        n = self.d_sae(self.check(i))
        t = self.toy_arrays
        return {"cosines": t["cosines"][i, :, :n], "represented": t["represented"][i], "match": t["match"][i],
                "feature_corr": t["feature_corr"][i], "feature_f1": t["feature_f1"][i],
                "true_directions": t["true_directions"][i]}

    def open_model(self, device: str = "cpu"):
        """The transformer the SAEs were trained on, loaded the same way (TransformerLens processing or not),
        so its activations at the hook are what the SAEs encode."""
        from sptui.models import load_model

        if self.is_toy:
            raise SptuiError("this sae run read a toy model, not a transformer")
        ref = self.source.get("model_ref")
        if not ref:
            raise SptuiError(f"{self.run_dir}: the summary does not say which model the SAEs read")
        return load_model(ref, device=device, processing=bool(self.source.get("processing", True)),
                          runs_root=self.run_dir.parent)


# ---------------------------------------------------------------- links to neuron-geometry runs

def _model_identity(ref: str, runs_root: Path):
    """What a model reference points at (run results folder, HF folder or official name), or None."""
    from sptui.models import resolve_ref

    try:
        kind, where = resolve_ref(str(ref), runs_root)
    except Exception:  # an unknown name or a folder that is gone: links nothing
        return None
    return kind, str(Path(where).resolve()) if kind != "name" else str(where)


def _mlp_layer(hook: str | None) -> int | None:
    import re

    found = re.match(r"^blocks\.(\d+)\.mlp\.hook_post$", hook or "")
    return int(found.group(1)) if found else None


def _finished(runs_root: Path, kind: str, needed: str):
    """Run folders under `runs_root` of `kind` with results/`needed`, oldest first."""
    for folder in sorted(Path(runs_root).iterdir()) if Path(runs_root).is_dir() else []:
        if not (folder / "results" / needed).exists():
            continue
        try:
            if runs.RunDir(folder).spec().kind == kind:
                yield folder
        except Exception:  # an unreadable job file: not ours to link
            continue


def geometry_runs_for(results: SAEResults) -> list[tuple[Path, list[list[int]]]]:
    """Neuron-geometry runs of the model and MLP layer an SAE run read (hook blocks.L.mlp.hook_post), oldest
    first, with their significant blocks' neurons."""
    layer = _mlp_layer(results.hook)
    if layer is None or results.is_toy:
        return []
    runs_root = results.run_dir.parent
    mine = _model_identity(results.source.get("model_ref", ""), runs_root)
    found = []
    for folder in _finished(runs_root, "neuron-geometry", "blocks.json"):
        summary = runs.read_json(folder / "results" / "summary.json")
        if int(summary.get("layer", -1)) != layer or _model_identity(summary.get("model", ""), runs_root) != mine:
            continue
        blocks = runs.read_json(folder / "results" / "blocks.json").get("blocks", [])
        found.append((folder, [list(b["neurons"]) for b in blocks]))
    return found


def sae_runs_for_geometry(run_dir: Path) -> list[SAEResults]:
    """Finished sae runs on the MLP layer (blocks.L.mlp.hook_post) and model of a neuron-geometry run."""
    run_dir = Path(run_dir)
    summary = runs.read_json(run_dir / "results" / "summary.json")
    runs_root = run_dir.parent
    mine = _model_identity(summary.get("model", ""), runs_root)
    found = []
    for folder in _finished(runs_root, "sae", "sae.safetensors"):
        try:
            results = SAEResults(folder)
        except SptuiError:
            continue
        if _mlp_layer(results.hook) == int(summary.get("layer", -1)) and \
                _model_identity(results.source.get("model_ref", ""), runs_root) == mine:
            found.append(results)
    return found


def latents_on_block(results: SAEResults, neurons: list[int], top: int = 10) -> list[tuple[int, int, float, float]]:
    """(instance, latent, share of ||W_dec||^2 on the block, enrichment) of the latents that load most on a
    block of neurons, over every instance of an sae run, best first."""
    from sptui.science.sae_metrics import block_loading

    rows = []
    for i in range(results.n_instances):
        share, enrichment = block_loading(results.weights(i)["W_dec"], [neurons])
        for j in np.argsort(-share[:, 0])[:top]:
            rows.append((i, int(j), float(share[j, 0]), float(enrichment[j, 0])))
    return sorted(rows, key=lambda r: -r[2])[:top]
