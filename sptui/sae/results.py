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
