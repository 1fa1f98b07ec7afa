"""One colour convention for toy-model phases and geometries, shared by every PNG that shows them (and by the
app, which picks the nearest terminal colours)."""

from __future__ import annotations

# Phase codes of sptui.science.tms_metrics.phase_2_1 / kinds.tms_theory.PHASE_NAMES:
# extra feature not represented, gets its own dimensions, superposition.
PHASE_COLOURS = ["#d9d9d9", "#4c72b0", "#dd8452"]
PHASE_LABELS = ["extra feature\nnot represented", "extra feature\ngets the dimension", "superposition"]

# Per-feature shapes of sptui.science.tms_geometry.SHAPES.
SHAPE_COLOURS = {
    "unrepresented": "#bdbdbd",
    "dedicated": "#4c72b0",
    "antipodal": "#dd8452",
    "triangle": "#55a868",
    "tetrahedron": "#8172b3",
    "pentagon": "#c44e52",
    "square antiprism": "#937860",
    "other": "#5a5a5a",
}

# Instance geometries ("pentagon", "2 antipodal pairs + 1 unrepresented", ...) are an open set: each takes the
# colour of its largest group's shape, and geometries sharing that shape get lighter and darker variants of it.
_VARIANTS = [0.0, 0.35, -0.35, 0.6, -0.55, 0.8]


def _shade(colour: str, amount: float) -> str:
    """Mix a colour towards white (amount > 0) or black (amount < 0)."""
    from matplotlib.colors import to_hex, to_rgb

    rgb = to_rgb(colour)
    target = 1.0 if amount > 0 else 0.0
    r, g, b = (c + (target - c) * abs(amount) for c in rgb)
    return to_hex((r, g, b))


def geometry_colours(geometries: list[str]) -> dict[str, str]:
    """A colour per distinct instance geometry, by its largest group's shape (SHAPE_COLOURS), the most frequent
    geometry of a shape in the plain colour."""
    from collections import Counter

    from sptui.science.tms_geometry import dominant_shape

    out: dict[str, str] = {}
    used: Counter[str] = Counter()
    for label, _ in Counter(geometries).most_common():
        shape = dominant_shape(label)
        k = used[shape]
        used[shape] += 1
        out[label] = _shade(SHAPE_COLOURS[shape], _VARIANTS[k % len(_VARIANTS)])
    return out

# Feature groups (sptui.science.feature_structure.FeatureGroups.named_groups): the family of hues says the kind
# of group (correlated blues/purples, anticorrelated reds/oranges, a hierarchy's trees greens, independent grey);
# groups of one kind get clearly different hues of their family (shades of one hue were hard to tell apart).
GROUP_KIND_COLOURS = {
    "corr": ["#1f4e9c", "#17a2b8", "#6a3d9a", "#5b8def", "#0b2545"],
    "anti": ["#c0392b", "#e67e22", "#8e2450", "#f4a259", "#5c0f0f"],
    "tree": ["#2e8b57", "#9acd32", "#006400", "#66c2a5", "#556b2f"],
    "independent": ["#9e9e9e"],
}
# Past its hand-picked hues a family continues along its band of hues (degrees, start and width), saturated:
# lightening or darkening the hand-picked ones instead turned "corr 19" into a grey like the independent one.
_GROUP_HUE_BANDS = {"corr": (185.0, 95.0), "anti": (330.0, 70.0), "tree": (75.0, 90.0)}
_GOLDEN = 0.6180339887498949  # spreads successive hues over the band, each far from the ones before
_LIGHTNESS = [0.32, 0.46, 0.6]


def _family_hue(kind: str, k: int) -> str:
    """The k-th colour of a family past its hand-picked ones: a hue in its band, saturation 0.75, one of three
    lightnesses (chroma >= 0.6, so never near grey)."""
    from colorsys import hls_to_rgb

    from matplotlib.colors import to_hex

    start, width = _GROUP_HUE_BANDS[kind]
    hue = ((start + width * ((k * _GOLDEN) % 1.0)) % 360.0) / 360.0
    return to_hex(hls_to_rgb(hue, _LIGHTNESS[k % len(_LIGHTNESS)], 0.75))


def group_colours(names: list[str]) -> dict[str, str]:
    """A colour per group name ("corr 0", "anti 1", "tree 3", "independent"): its kind's family, the k-th group
    of a kind the k-th hand-picked hue, then further saturated hues of the family's band."""
    out: dict[str, str] = {}
    seen: dict[str, int] = {}
    for name in names:
        kind = name.partition(" ")[0]
        family = GROUP_KIND_COLOURS.get(kind, ["#5a5a5a"])
        k = seen.get(kind, 0)
        seen[kind] = k + 1
        out[name] = family[k] if k < len(family) or kind not in _GROUP_HUE_BANDS else _family_hue(kind, k - len(family))
    return out
