"""Verdicts on a paper's claims from paired measurements, with the rule stated, and numbers with seed spread.

A claim that something changes (dropout raises X) is tested on paired differences: the same grid point and
seed with and without the change. With d the differences, tol the smallest change that counts and s the sign
the claim predicts:
    supports      mean(s*d) > tol and at least 3/4 of the pairs move the predicted way by more than tol
    contradicts   mean(s*d) <= tol and at most 1/4 of the pairs move the predicted way by more than tol
                  (the change goes the other way, or there is none)
    cannot tell   anything else (the pairs disagree), or no pairs
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

SUPPORTS, CONTRADICTS, CANNOT_TELL = "supports", "contradicts", "cannot tell"
AGREE = 0.75


@dataclass
class Effect:
    verdict: str
    mean: float
    sd: float
    pairs: int
    agree: int  # pairs that move the predicted way by more than tol
    oppose: int  # pairs that move the other way by more than tol

    def text(self, unit: str = "", digits: int = 3) -> str:
        if not self.pairs:
            return "no pairs"
        return (f"mean change {self.mean:+.{digits}g}{unit} ± {self.sd:.2g} (sd over {self.pairs} pairs); "
                f"{self.agree} of {self.pairs} move as claimed, {self.oppose} the other way")


def paired_effect(diffs, tol: float, sign: int = 1) -> Effect:
    """The verdict on paired differences `diffs` for a claim predicting their sign (+1 or -1)."""
    d = np.asarray([x for x in np.ravel(diffs) if x is not None and math.isfinite(x)], dtype=float)
    if d.size == 0:
        return Effect(CANNOT_TELL, math.nan, math.nan, 0, 0, 0)
    s = sign * d
    mean, sd = float(d.mean()), float(d.std(ddof=1)) if d.size > 1 else 0.0
    agree, oppose = int((s > tol).sum()), int((s < -tol).sum())
    if sign * mean > tol and agree >= AGREE * d.size:
        verdict = SUPPORTS
    elif sign * mean <= tol and agree <= (1 - AGREE) * d.size:
        verdict = CONTRADICTS
    else:
        verdict = CANNOT_TELL
    return Effect(verdict, mean, sd, int(d.size), agree, oppose)


def spread(values, digits: int = 3) -> str:
    """'mean ± sd (n=k)' of the finite values, or 'n/a'."""
    v = np.asarray([x for x in np.ravel(values) if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return "n/a"
    if v.size == 1:
        return f"{v[0]:.{digits}g} (n=1)"
    return f"{v.mean():.{digits}g} ± {v.std(ddof=1):.2g} (n={v.size})"


def combine(*verdicts: str) -> str:
    """All parts of a claim must hold: any contradiction contradicts, all support supports, else cannot tell."""
    if any(v == CONTRADICTS for v in verdicts):
        return CONTRADICTS
    if verdicts and all(v == SUPPORTS for v in verdicts):
        return SUPPORTS
    return CANNOT_TELL


@dataclass
class Finding:
    """The measured answer to one claim (or one reading of an ambiguous claim)."""

    claim_id: str
    verdict: str
    why: str  # one or two sentences with the deciding numbers
    numbers: list[tuple[str, str]] = field(default_factory=list)  # (what was measured, value with spread)
    runs: list[str] = field(default_factory=list)  # run ids the numbers came from
    figure: str | None = None  # file name under the report's figures/
    reading: str | None = None  # for an ambiguous claim: which reading this finding tests
