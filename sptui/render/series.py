"""Point series for 2-D pictures (feature directions, head projections), shared by the terminal scatter
and its PNG export: the same points, labels and colours in both."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# xterm-256 colours for series (and their matplotlib equivalents, for the PNG export)
PALETTE = [(39, "#00afff"), (208, "#ff8700"), (76, "#5fd700"), (170, "#d75fd7"), (220, "#ffd700"), (250, "#bcbcbc")]


@dataclass
class Series:
    x: np.ndarray
    y: np.ndarray
    label: str = ""
    color: int = 0  # index into PALETTE
    line: bool = False
    closed: bool = False
    marks: list[str] = field(default_factory=list)  # one character (or short text) per point

    def as_export(self) -> dict:
        return {"x": self.x, "y": self.y, "label": self.label, "color": PALETTE[self.color % len(PALETTE)][1],
                "line": self.line, "closed": self.closed, "labels": list(self.marks)}
