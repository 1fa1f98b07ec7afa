"""The claims report on tiny real runs with a fixed date, to check that a change to sptui/report leaves it alone.

    python scripts/report_snapshot.py RUNS OUT     # RUNS: trained once (about a minute on 2 cores), then reused
    git stash; python scripts/report_snapshot.py RUNS before; git stash pop
    python scripts/report_snapshot.py RUNS after && diff -r before after

RUNS gets every job the report reads (sptui.report.claims.JOB_FILES), from the shipped job files with their steps,
epochs and data cut down: the numbers mean nothing, but every claim and figure is computed from real results.
OUT gets report.md, report.html and findings.json for all runs and for two subsets (runs removed, so that the
"not run yet" branches are covered too), the sha256 of every figure, and the figures.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

from sptui.report import claims as C
from sptui.report import figures as F
from sptui.report import toy_models as T

TINY = {"tms": {"steps": 400, "batch_size": 256, "eval_batch": 512, "snapshots": 2, "log_points": 2},
        "functions": {"steps": 300},
        "addition": {"epochs": 4, "n_train": 600, "n_test": 200, "log_every": 5, "eval_every": 5,
                     "checkpoint_every": 50, "compression": False}}
SUBSETS = {"without-dropout-20-5": ("dropout-20-5",),
           "without-dropout-5-2": ("dropout-5-2", "functions-max-narrow[activation=gelu]", "tied-ae-32[n_hidden=60]",
                                   "gelu-hidden[hidden_activation=gelu]")}


def train(root: Path) -> None:
    from sptui.runner import execute
    from sptui.runs import RunDir, slug
    from sptui.spec import load_file

    number = 0
    for path in sorted(set(C.JOB_FILES.values())):
        for spec in load_file(Path(path)):
            if spec.name not in C.JOB_FILES:
                continue
            params = {**spec.params, **{k: v for k, v in TINY[spec.kind].items() if k in spec.params}}
            number += 1
            outcome = execute(dataclasses.replace(spec, params=params), RunDir(root / "runs" / f"{number:04d}-{slug(spec.name)}"),
                              artifacts_root=root, cancel_poll_seconds=0.0, render=False)
            if outcome.state != "succeeded":
                sys.exit(f"{spec.name}: {outcome.state} ({outcome.error})")
            print(spec.name, flush=True)


def snapshot(root: Path, out: Path) -> None:
    full = T.load_inputs(root)
    full.figures = F.draw_all(full.tables, out / "figures", C._participation)
    variants = {"all-runs": full, "no-runs": C.Inputs({})}
    for name, dropped in SUBSETS.items():
        variants[name] = C.Inputs({k: v for k, v in full.tables.items() if k not in dropped}, figures=full.figures)
    for name, inputs in variants.items():
        results = C.evaluate(inputs)
        (out / f"{name}.md").write_text(T.markdown(results, inputs, "FIXED"))
        (out / f"{name}.html").write_text(T.to_html(results, inputs, "FIXED"))
        (out / f"{name}.json").write_text(json.dumps(T.findings_json(results, inputs, "FIXED"), indent=1))
    (out / "figures.sha256").write_text("".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
                                                for p in sorted((out / "figures").glob("*.png"))))


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        sys.exit(__doc__)
    root, out = Path(argv[0]), Path(argv[1])
    if not (root / "runs").is_dir():
        train(root)
    out.mkdir(parents=True, exist_ok=True)
    snapshot(root, out)
    print(f"{out}: {', '.join(sorted(p.name for p in out.iterdir()))}")


if __name__ == "__main__":
    main(sys.argv[1:])
