"""The geometry classifier (sptui.science.tms_geometry) on exact polytopes, rotated, scaled, perturbed at the edges
of its tolerances, and on trained toy models."""

import math

import numpy as np
import pytest
import torch

from sptui.science import tms_geometry as G
from sptui.science import tms_metrics as M

F64 = torch.float64


def embed(*blocks: np.ndarray, m: int | None = None) -> np.ndarray:
    """Stack groups of vectors into mutually orthogonal coordinate blocks: [sum k, m]."""
    dims = sum(b.shape[1] for b in blocks)
    m = m or dims
    out, col = [], 0
    for b in blocks:
        rows = np.zeros((len(b), m))
        rows[:, col:col + b.shape[1]] = b
        out.append(rows)
        col += b.shape[1]
    return np.concatenate(out)


def rotation(m: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(m, m)))
    return q * np.sign(np.diag(r))


def shapes_of(W: np.ndarray) -> list[str]:
    return G.classify(torch.tensor(W, dtype=F64)[None])[0].shapes


def rotate_in_plane(v: np.ndarray, degrees: float) -> np.ndarray:
    t = math.radians(degrees)
    return np.array([v[0] * math.cos(t) - v[1] * math.sin(t), v[0] * math.sin(t) + v[1] * math.cos(t)])


@pytest.mark.parametrize("name, block", [
    ("antipodal", np.array([[1.0], [-1.0]])),
    ("triangle", G.polygon(3)),
    ("tetrahedron", G.tetrahedron()),
    ("pentagon", G.polygon(5)),
    ("square antiprism", G.square_antiprism()),
])
def test_exact_polytopes_rotated_and_scaled_are_named(name, block):
    for scale in (1.0, 0.3, 3.0):
        for seed in range(3):
            W = embed(block * scale, np.eye(2) * scale, m=block.shape[1] + 3) @ rotation(block.shape[1] + 3, seed)
            W = np.concatenate([W, np.zeros((1, W.shape[1]))])  # one feature never learned
            expected = [name] * len(block) + ["dedicated", "dedicated", "unrepresented"]
            assert shapes_of(W) == expected, (name, scale, seed)
            dims = M.feature_dimensionality(torch.tensor(W, dtype=F64)[None])[0][:len(block)]
            assert torch.allclose(dims, torch.full_like(dims, G.SHAPE_DIM[name]), atol=1e-9)


def test_several_shapes_in_one_model_and_the_summary():
    W = embed(G.polygon(5), G.tetrahedron(), np.array([[1.0], [-1.0]]), np.eye(2))
    geo = G.classify(torch.tensor(W, dtype=F64)[None])[0]
    assert geo.counts == {"pentagon": 5, "tetrahedron": 4, "antipodal": 2, "dedicated": 2}
    assert geo.summary == "pentagon + tetrahedron + 1 antipodal pair + 2 dedicated"
    assert geo.arrangement == "pentagon 0,1,2,3,4 + tetrahedron 5,6,7,8 + antipodal 9,10 + dedicated 11 + dedicated 12"
    assert geo.groups[0] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("W, summary, polygon", [
    (G.polygon(5), "pentagon", "pentagon"),
    (G.polygon(6), "hexagon", "hexagon"),  # no per-feature name, but m = 2 names the polygon
    (G.polygon(3), "triangle", "triangle"),
    (np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [0, 0]]), "2 antipodal pairs + 1 unrepresented", "square"),
    (np.array([[1, 0], [0, 1], [0, 0], [0, 0], [0, 0.01]]), "2 dedicated + 3 unrepresented", None),
    (np.array([[1.0], [-0.9]]), "1 antipodal pair", None),
    (np.zeros((3, 2)), "nothing represented", None),
])
def test_two_dimensional_models_name_their_polygon(W, summary, polygon):
    geo = G.classify(torch.tensor(np.asarray(W, dtype=float), dtype=F64)[None])[0]
    assert geo.summary == summary
    assert geo.polygon == polygon
    if summary == "hexagon":
        assert geo.labels()[0] == "other (D=0.33)"


def test_angle_tolerance_edge():
    for degrees, expected in ((G.ANGLE_TOL - 0.5, "pentagon"), (G.ANGLE_TOL + 0.5, "other")):
        W = G.polygon(5)
        W[0] = rotate_in_plane(W[0], degrees)  # its angle to one neighbour is now 72 + degrees
        assert set(shapes_of(W)) == {expected}, degrees
    for degrees, expected in ((G.ANGLE_TOL - 0.5, "antipodal"), (G.ANGLE_TOL + 0.5, "other")):
        W = np.array([[1.0, 0.0], [-1.0, 0.0]])
        W[1] = rotate_in_plane(W[1], degrees)
        assert shapes_of(W) == [expected] * 2, degrees


def test_partners_are_features_more_than_the_tolerance_from_orthogonal():
    for degrees, expected in ((90 - G.ANGLE_TOL + 0.5, ["dedicated", "dedicated"]), (90 - G.ANGLE_TOL - 0.5, ["other", "other"])):
        W = np.array([[1.0, 0.0], rotate_in_plane(np.array([1.0, 0.0]), degrees)])
        assert shapes_of(W) == expected, degrees


def test_norm_tolerance_edge():
    # one pentagon vertex scaled by s: its norm over the mean norm is 5s / (4 + s)
    for deviation, expected in ((G.NORM_TOL - 0.01, "pentagon"), (G.NORM_TOL + 0.01, "other")):
        s = 4 * (1 + deviation) / (5 - (1 + deviation))
        W = G.polygon(5)
        W[0] *= s
        assert set(shapes_of(W)) == {expected}, deviation


def test_interference_from_outside_a_shape_has_a_limit():
    # feature 0 dedicated; k features, each in its own extra dimension, 81 degrees from it (not partners, but each
    # adds cos(81)^2 = 0.024 to feature 0's interference)
    def model(k):
        W = np.zeros((1 + k, 1 + k))
        W[0, 0] = 1.0
        for j in range(1, k + 1):
            W[j, 0], W[j, j] = math.cos(math.radians(81)), math.sin(math.radians(81))
        return W

    inside = math.floor(G.OUTSIDE_TOL / math.cos(math.radians(81)) ** 2)
    assert shapes_of(model(inside))[0] == "dedicated"
    assert shapes_of(model(inside + 1))[0] == "other"


def test_extra_feature_phase_agrees_with_the_projects_phase_of_two_features_in_one_dimension():
    g = torch.Generator().manual_seed(0)
    W = torch.cat([torch.tensor([[[1.0], [0.0]], [[0.0], [1.0]], [[1.0], [-0.8]], [[0.0], [0.0]]], dtype=F64),
                   torch.randn(40, 2, 1, generator=g, dtype=F64)])
    ours = [G.extra_feature_phase(geo) for geo in G.classify(W)]
    paper = M.phase_2_1(W).tolist()
    rep = M.represented_mask(W, "paper") == M.represented_mask(W)  # the two "represented" rules agree there
    agree = [o == p for o, p, r in zip(ours, paper, rep.all(-1).tolist()) if r]
    assert ours[:4] == [0, 1, 2, 0] and len(agree) > 20 and all(agree)


@pytest.fixture(scope="module")
def trained_5_2():
    """5 -> 2 models (importance 0.9^i) trained with the tms kind's batched trainer: dense and sparse, 3 seeds."""
    from sptui.kinds import tms as K
    from sptui.params import build

    ps = [build(K.Params, {"n_features": 5, "n_hidden": 2, "importance_decay": 0.9, "feature_probability": p,
                           "seed": seed, "steps": 4000, "lr": 3e-3})
          for p in (1.0, 0.05) for seed in range(3)]
    trainer = K.build_trainer(ps)
    for _ in range(ps[0].steps):
        trainer.step(want_loss=False)
    return G.classify(trainer.weights["W"].detach().double())


def test_trained_dense_model_has_two_dedicated_features(trained_5_2):
    for geo in trained_5_2[:3]:
        assert geo.summary == "2 dedicated + 3 unrepresented"
        assert geo.shapes[:2] == ["dedicated", "dedicated"]  # the two most important


def test_trained_sparse_model_forms_antipodal_pairs_or_a_pentagon(trained_5_2):
    for geo in trained_5_2[3:]:
        assert geo.summary in ("pentagon", "2 antipodal pairs + 1 unrepresented"), geo.summary
        assert "other" not in geo.shapes


def test_the_stated_tolerances():
    # the module docstring and the README state these; the edge tests above are written relative to them
    assert (G.ANGLE_TOL, G.NORM_TOL, G.OUTSIDE_TOL) == (10.0, 0.25, 0.1)


def test_the_tms_pngs_show_the_geometry():
    """sweep.png gets a categorical geometry map (most common over seeds); dims_per_feature.png colours every
    D_i by its feature's shape."""
    import matplotlib.colors
    import matplotlib.pyplot as plt

    from sptui.plots import tms as plots
    from sptui.plots.shapes import SHAPE_COLOURS, geometry_colours

    dense = np.array([[1.0, 0], [0, 1], [0, 0], [0, 0], [0, 0]])
    pairs = np.array([[1.0, 0], [-1, 0], [0, 1], [0, -1], [0, 0]])
    W = np.stack([dense, G.polygon(5), G.polygon(5), pairs])
    geos = G.classify(torch.tensor(W, dtype=F64))
    assert [g.summary for g in geos] == ["2 dedicated + 3 unrepresented", "pentagon", "pentagon",
                                         "2 antipodal pairs + 1 unrepresented"]
    grid = [(1.0, 0), (0.1, 0), (0.1, 1), (0.3, 0)]
    records = [{"instance": i, "grid": {"feature_probability": p, "seed": s},
                "metrics": {"dims_per_feature": 1.0, "loss": 0.1}, "shape": g.shapes, "geometry": g.summary}
               for i, ((p, s), g) in enumerate(zip(grid, geos))]
    axes = plots.swept_axes(records)
    fig = plots.sweep_figure(records, axes, m=2)
    (panel,) = [ax for ax in fig.axes if ax.get_title().startswith("geometry")]
    legend = [t.get_text().replace("\n", " ") for t in panel.get_legend().get_texts()]  # wrapped to the panel
    plt.close(fig)
    assert set(legend) == {"2 dedicated + 3 unrepresented", "pentagon", "2 antipodal pairs + 1 unrepresented"}
    colours = geometry_colours([g.summary for g in geos])
    assert colours["pentagon"] == SHAPE_COLOURS["pentagon"]
    dims = M.feature_dimensionality(torch.tensor(W, dtype=F64)).numpy()
    derived = {"represented": M.represented_mask(torch.tensor(W, dtype=F64)).numpy(), "dim": dims}
    fig = plots.dims_per_feature_figure(records, derived)
    points = [c for c in fig.axes[0].collections if c.get_offsets().shape[0] == 5]  # the pentagons' D_i
    pentagon = matplotlib.colors.to_rgba(SHAPE_COLOURS["pentagon"], 0.6)
    colours_drawn = [fc for c in points for fc in c.get_facecolors()]
    plt.close(fig)
    assert points and all(np.allclose(fc, pentagon) for fc in colours_drawn)


def test_a_polygons_arrangement_reads_its_features_around_it():
    order = [0, 3, 1, 4, 2]  # feature k at angle position order.index(k)
    W = G.polygon(5)[[order.index(k) for k in range(5)]]
    geo = G.classify(torch.tensor(W, dtype=F64)[None])[0]
    assert geo.arrangement == "pentagon 0,2,4,1,3"  # from 0 towards its lower neighbour: 0 3 1 4 2 reversed
