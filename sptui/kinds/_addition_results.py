"""The per-head results of trained addition models, written through a job's Context: shared by the
`addition` kind (after training) and `addition-analysis` (of any snapshot or instance of a saved run)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sptui.names import counted

if TYPE_CHECKING:
    from sptui.context import Context


def analyse(ctx: Context, model, n_digits: int, test, example: int = 0, folder: str = "", compression: bool = True):
    """The per-head results the TUI and the plots read, under results/<folder>: the ablation grids (the
    paper's, and by position with zero and mean ablation), projections, attention patterns and, with
    `compression`, the heads' compression (sptui.science.compression). Returns the compression results."""
    from sptui.science import compression as C
    from sptui.science import head_analysis as HA

    model.eval()
    test = test.to(model.embed.W_E.device)
    grids = HA.ablation_grid(model, n_digits)
    grids.update(HA.ablation_grids_by_position(model, n_digits, test.operands))
    ctx.save_arrays(folder + "ablation.safetensors", grids)
    ctx.save_arrays(folder + "projections.safetensors", HA.projections(model))
    ctx.save_arrays(folder + "patterns.safetensors", HA.attention_patterns(model, test.tokens(), example))
    if not compression:
        return None
    arrays, facts = C.analyse_model(model, test.operands, test.answers)
    ctx.save_arrays(folder + "compression.safetensors", arrays)
    ctx.save_json(folder + "compression.json", facts)
    ctx.info(roles_against_null(facts))
    return arrays, facts


def roles_against_null(facts: dict) -> str:
    """One line: how many roles the heads hold, each beating random-init heads (the smallest margin), and how
    many passed the threshold but not the null."""
    null = facts.get("role_null")
    margins = [r["margin"] for h in facts["heads"] for r in h["roles"] if r["answer"] in h["kept_at"] and "margin" in r]
    if null is None:
        return f"roles: {len(facts['held_roles'])} held (threshold {facts['role_threshold']}, no null run)"
    refused = len(null["roles_not_beating_null"])
    held = len(facts["held_roles"])
    head = (f"roles: {counted(held, 'role')} held, each beating {null['heads']} random-init heads"
            f" (smallest margin {min(margins):.2f})" if held and margins else
            f"roles: none held against {null['heads']} random-init heads")
    return head + (f"; {refused} above the threshold {facts['role_threshold']} "
                   f"{'does' if refused == 1 else 'do'} not beat the null and {'is' if refused == 1 else 'are'} not held")


def compare_instances(ctx, results: list[tuple[dict, dict]], labels: list[str]) -> None:
    """Whether the instances (seeds) learned the same compression: results/compression_across.*"""
    from sptui.science import compression as C

    arrays, summary = C.compare_instances([a for a, _ in results], [f for _, f in results], labels)
    ctx.save_arrays("compression_across.safetensors", arrays)
    ctx.save_json("compression_across.json", summary)
    heads = summary["heads_per_position"]["mean"]
    ctx.info(f"compression across {len(results)} instances: heads kept per answer position (mean ablation) "
             + ", ".join(f"{m:.1f}±{s:.1f}" for m, s in zip(heads["mean"], heads["std"]))
             + f"; {len(summary['roles_in_every_instance'])} roles in every instance, "
             f"{len(summary['roles_in_one_instance'])} in only one; mean matched-head similarity "
             f"{summary['mean_matched_similarity']:.3f} (a random matching: {summary['mean_random_matching_similarity']:.3f}); "
             f"{summary['pairs_beating_null']} of {counted(summary['pairs'], 'pair')} of instances match better than "
             f"against relabelled signatures ({C.MATCH_NULL_DRAWS} draws each)")


def instance_label(point: dict) -> str:
    """A grid point as a short label: "seed=3, lr=0.001"."""
    return ", ".join(f"{k}={v}" for k, v in point.items()) or "instance"
