"""Feature-group colours (sptui.plots.shapes.group_colours): a family per kind of group, never the independent
grey, and a different colour for every group however many a sweep makes."""

from colorsys import rgb_to_hls

import pytest
from matplotlib.colors import to_rgb

from sptui.plots.shapes import GROUP_KIND_COLOURS, group_colours

# The hue bands the families are read by (degrees): blues/purples, reds/oranges (wrapping through 0), greens.
FAMILY_HUES = {"corr": (185, 280), "anti": (330, 400), "tree": (75, 165)}


def _hue_degrees(colour: str) -> float:
    return rgb_to_hls(*to_rgb(colour))[0] * 360


def _chroma(colour: str) -> float:
    rgb = to_rgb(colour)
    return max(rgb) - min(rgb)


@pytest.mark.parametrize("kind", ["corr", "anti", "tree"])
def test_many_groups_of_one_kind_stay_in_their_family_and_far_from_the_independent_grey(kind):
    names = [f"{kind} {k}" for k in range(60)] + ["independent"]
    colours = group_colours(names)
    assert colours["independent"] == GROUP_KIND_COLOURS["independent"][0]
    low, high = FAMILY_HUES[kind]
    for name in names[:-1]:
        colour = colours[name]
        assert _chroma(colour) >= 0.2, f"{name} is {colour}: a grey, read as an independent feature"
        hue = _hue_degrees(colour)
        hue = hue + 360 if high > 360 and hue < low - 1 else hue  # the reds wrap through 0
        assert low - 1 <= hue <= high + 1, f"{name} is {colour} (hue {hue:.0f}), outside its family's {low}-{high}"
    assert len(set(colours[n] for n in names)) == len(names), "two groups share a colour"


def test_the_first_groups_keep_the_hand_picked_hues():
    colours = group_colours(["corr 0", "anti 0", "corr 1", "tree 0"])
    assert colours == {"corr 0": "#1f4e9c", "anti 0": "#c0392b", "corr 1": "#17a2b8", "tree 0": "#2e8b57"}
