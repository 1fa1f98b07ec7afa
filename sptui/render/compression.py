"""What the addition browser's compression views show, from saved results only (no Textual, no drawing):
which models a run holds, a head's role card, the pruning curves, and the seeds side by side.

A single addition run keeps its per-model results in results/; a batched run (many seeds as one model) keeps
instance k's in results/models/<k>/ and the comparison across instances in results/compression_across.*.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sptui.names import counted
from sptui.science.compression import MODES, TARGET_WORDS, TARGETS


@dataclass
class ModelResults:
    """One model of a run: its label (the instance's grid point) and the folder of its results."""

    label: str
    folder: Path


def run_models(run) -> list[ModelResults]:
    """The models of an addition (or addition-analysis) run, in instance order: [results/] for a single model,
    results/models/<k>/ for each instance of a batched run that has one."""
    models = sorted((p for p in (run.results / "models").glob("*") if p.is_dir() and p.name.isdigit()),
                    key=lambda p: int(p.name)) if (run.results / "models").is_dir() else []
    if not models:
        return [ModelResults("model", run.results)]
    grid = _grid(run)
    out = []
    for p in models:
        k = int(p.name)
        point = grid[k] if k < len(grid) else {}
        out.append(ModelResults(", ".join(f"{key}={v}" for key, v in point.items()) or f"instance {k}", p))
    return out


def _grid(run) -> list[dict[str, Any]]:
    """Each instance's grid point: from results/instances.json (a batched addition run), results/source.json
    (an analysis of one), else the run's spec; [] when none can be read (the folders are labelled by index)."""
    from sptui.runs import read_json

    try:
        if (run.results / "instances.json").exists():
            return [r.get("grid", {}) for r in read_json(run.results / "instances.json")]
        if (run.results / "source.json").exists():
            info = read_json(run.results / "source.json")
            return [e.get("grid", {}) for e in info.get("instances", [])] if info.get("batched") else []
        return run.spec().grid()
    except Exception:  # noqa: BLE001 - unreadable files still browse, by index
        return []


@dataclass
class Compression:
    """One model's compression results (sptui.science.compression.analyse_model)."""

    arrays: dict[str, np.ndarray]
    facts: dict[str, Any]

    @property
    def n_heads(self) -> int:
        return int(self.facts["n_heads"])

    @property
    def n_answers(self) -> int:
        return len(self.facts["acc_full"])


def load_compression(folder: Path) -> Compression:
    from sptui.errors import SptuiError
    from sptui.runs import load_arrays, read_json

    if not (folder / "compression.safetensors").exists():
        raise SptuiError(f"no compression results in {folder} (run addition-analysis with compression = true)")
    return Compression(load_arrays(folder / "compression.safetensors"), read_json(folder / "compression.json"))


def role_card(c: Compression, head: int) -> list[str]:
    """A head's role card: its label, where it is kept, then per answer position its attention and the
    probes' numbers for the targets of the pairs it could serve (its own pair and the two before)."""
    facts, a = c.facts, c.arrays
    info = facts["heads"][head]
    n = int(facts["n_digits"])
    lines = [f"head {head}: {info['label']}",
             "kept for answer " + ", ".join(map(str, info["kept_at"])) if info["kept_at"] else "in no pruned set (mean ablation)"]
    full = a["acc_full"]
    change = a["acc_ablate_one"][MODES.index("mean")][head] - full
    lines.append("alone mean-ablated: " + " ".join(f"{v:+.3f}" for v in change))
    chance = a["decod_chance"]
    for j in range(c.n_answers):
        att = a["attention"][head, j]
        top = np.argsort(-att)[:3]
        reads = ", ".join(f"{_position(int(p), n)} {att[p]:.2f}" for p in top if att[p] >= 0.1) or "diffuse"
        mark = "*" if j in info["kept_at"] else " "
        lines.append(f"{mark}answer {j}: attends {reads}")
        best = []
        for i in (j, j - 1, j - 2):
            if not 0 <= i < n:
                continue
            for t, name in enumerate(facts.get("targets", TARGETS)):  # the targets the results were made with
                score = float(a["decod_score"][head, j, i, t])
                if score >= 0.3:
                    knn = f"kNN {a['decod_knn'][head, j, i, t]:.2f} " if "decod_knn" in a else ""
                    best.append((score, f"   {TARGET_WORDS.get(name, name).format(i=i)}: {knn}lin {a['decod_linear'][head, j, i, t]:.2f} "
                                        f"(chance {chance[i, t]:.2f})"))
        lines += [text for _, text in sorted(best, reverse=True)[:3]] or ["   (no pair target above 0.3)"]
    return lines


def _position(p: int, n: int) -> str:
    return f"a{p}" if p < n else (f"b{p - n}" if p < 2 * n else f"={p - 2 * n}")


def pruning_lines(c: Compression, mode: str) -> list[tuple[str, list[float], list[float]]]:
    """(label, heads kept, accuracy) per answer position along the greedy pruning path for one ablation mode."""
    m = MODES.index(mode)
    curve, count = c.arrays["prune_curve"][m], c.arrays["prune_count"][m]
    xs = [float(k) for k in range(curve.shape[1])]
    return [(f"answer {j}: {int(count[j])} heads", xs, [float(v) for v in curve[j]]) for j in range(curve.shape[0])]


def pruning_summary(c: Compression, mode: str) -> list[str]:
    """Each position's smallest head set and the overlap of the sets, as lines."""
    m = MODES.index(mode)
    pruned = c.facts["pruned"][mode]
    lines = [f"{mode} ablation, within {100 * c.facts['tolerance']:.0f} point of full:"]
    for j, heads in enumerate(pruned["heads"]):
        lines.append(f"answer {j}: {len(heads)} heads (full {c.facts['acc_full'][j]:.3f})")
        lines.append("   " + " ".join(map(str, heads)))
    lines.append(f"union {pruned['union']} heads, in every set {pruned['shared_by_all']}")
    overlap = c.arrays["overlap"][m]
    lines.append("overlap (Jaccard): " + "  ".join(f"{j}-{j + 1} {overlap[j, j + 1]:.2f}" for j in range(len(overlap) - 1)))
    return lines


@dataclass
class Across:
    """The comparison across a batched run's instances (sptui.science.compression.compare_instances)."""

    arrays: dict[str, np.ndarray]
    summary: dict[str, Any]


def load_across(results: Path) -> Across | None:
    from sptui.runs import load_arrays, read_json

    if not (results / "compression_across.json").exists():
        return None
    return Across(load_arrays(results / "compression_across.safetensors"), read_json(results / "compression_across.json"))


def role_counts(across: Across) -> tuple[np.ndarray, list[str], list[str]]:
    """The cross-seed role matrix: heads holding each role [roles, instances], its row and column labels."""
    return across.arrays["role_counts"].astype(np.float32), list(across.summary["roles"]), list(across.summary["instances"])


def across_lines(across: Across, row: int | None = None, col: int | None = None) -> list[str]:
    """What the seeds view says: the role under the cursor across instances, and the run's verdict numbers."""
    s = across.summary
    counts = across.arrays["role_counts"]
    lines = []
    if row is not None and 0 <= row < len(s["roles"]):
        present = int((counts[row] > 0).sum())
        lines.append(f"{s['roles'][row]}: in {present} of {counts.shape[1]} instances")
        if col is not None and 0 <= col < counts.shape[1]:
            lines.append(f"{s['instances'][col]}: {counted(int(counts[row, col]), 'head')}")
        lines.append("")
    heads = s["heads_per_position"]["mean"]
    lines.append("heads kept per answer position (mean ablation), mean ± std over instances:")
    lines.append("   " + "  ".join(f"{j}: {m:.1f}±{d:.1f}" for j, (m, d) in enumerate(zip(heads["mean"], heads["std"]))))
    if s.get("mean_matched_similarity") is not None:
        lines.append(f"matched-head similarity {s['mean_matched_similarity']:.3f} "
                     f"(a random matching: {s['mean_random_matching_similarity']:.3f})")
    lines.append(f"roles in every instance: {len(s['roles_in_every_instance'])}, in most: {len(s['roles_in_most'])}, "
                 f"in only one: {len(s['roles_in_one_instance'])}")
    lines.append("")
    lines.append("rows (instances holding it):")
    lines += [f"{'>' if r == row else ' '}{r:>3} {name} ({int((counts[r] > 0).sum())}/{counts.shape[1]})"
              for r, name in enumerate(s["roles"])]
    return lines
