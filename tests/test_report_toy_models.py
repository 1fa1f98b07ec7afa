"""`sptui report toy-models` end to end: real (tiny) runs -> Markdown, HTML with figures (checked in headless
Chromium), findings.json; missing and damaged runs do not stop it."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from sptui import cli
from tests.figure_checks import MAX_WIDTH, checking_saves
from tests.test_neuroscope_site import CHROMIUM, chromium_dom, needs_chromium

# Training the runs and drawing the report's figures take about a minute on a busy 2-core machine;
# test_report_without_runs_* below are the fast variants in the default suite.
slow = pytest.mark.slow

JOBS = """
[[job]]
kind = "tms"
name = "dropout-5-2"
n_features = 5
n_hidden = 2
importance_decay = 0.9
steps = 60
batch_size = 64
log_points = 2
[job.sweep]
feature_probability = [1.0, 0.05]
dropout = [0.0, 0.5, 0.8]
seed = [0, 1]

[[job]]
kind = "functions"
name = "functions-max-narrow"
target = "max_abs"
width = 4
steps = 30
batch_size = 32
log_points = 2
[job.sweep]
activation = ["relu", "gelu"]
seed = [0, 1]
"""


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """Runs made the way the worker makes them (job.toml, results), without drawing each run's PNGs."""
    from sptui.runs import slug
    from sptui.spec import parse_text
    from tests.helpers import run_spec

    root = tmp_path_factory.mktemp("art")
    for number, spec in enumerate(parse_text(JOBS, "jobs.toml"), start=1):
        run_spec(spec, root / "runs" / f"{number:04d}-{slug(spec.name)}", artifacts_root=root)
    return root


@pytest.fixture(scope="module")
def checked_report(artifacts):
    """The report, every figure it saves run through the figure checks (tests/figure_checks.py)."""
    with checking_saves() as seen:
        assert cli.main(["--artifacts", str(artifacts), "report", "toy-models"]) == 0
    return artifacts / "reports" / "toy-models", seen


@pytest.fixture(scope="module")
def report(checked_report):
    return checked_report[0]


@slow
def test_every_report_figure_fits_a_page_and_passes_the_figure_checks(checked_report):
    from PIL import Image

    from sptui.report.figures import DPI

    report, seen = checked_report
    pngs = sorted((report / "figures").glob("*.png"))
    assert len(pngs) >= 3 and all(p in seen.by_path for p in pngs), "a figure was written without being checked"
    bad = {p.name: seen.by_path[p] for p in pngs if seen.by_path[p]}
    assert not bad, "figure problems:\n" + "\n".join(f"{n}:\n  " + "\n  ".join(f) for n, f in sorted(bad.items()))
    for png in pngs:  # as written: trimmed to the drawing, still at most a page (7.5 in) wide
        with Image.open(png) as image:
            assert image.size[0] / DPI <= MAX_WIDTH + 0.05, (png.name, image.size)


@slow
def test_report_reads_the_runs_and_names_them(report, artifacts):
    findings = json.loads((report / "findings.json").read_text())
    runs = findings["runs"]
    assert set(runs) == {"dropout-5-2", "functions-max-narrow[activation=relu]", "functions-max-narrow[activation=gelu]"}
    for run_id in runs.values():
        assert (artifacts / "runs" / run_id).is_dir()
    by_id = {c["id"]: c for c in findings["claims"]}
    d2 = [f for f in by_id["D2"]["findings"] if f["reading"] == "dropout-5-2"][0]
    assert d2["runs"] == [runs["dropout-5-2"]] and d2["verdict"] in ("supports", "contradicts", "cannot tell")
    assert any("represented features (high sparsity) by dropout" == n[0] for n in d2["numbers"])
    f3 = [f for f in by_id["F3"]["findings"] if f["reading"].startswith("width 8")][0]
    assert f3["verdict"] == "cannot tell" and "jobs/functions.toml" in f3["why"]  # width 8 was not run
    md = (report / "report.md").read_text()
    assert runs["dropout-5-2"] in md and "> In low sparsity situations" in md
    for figure in re.findall(r"\]\(figures/([^)]+)\)", md):
        assert (report / "figures" / figure).stat().st_size > 5000
    assert "dropout_counts.png" in md


@needs_chromium
@slow
def test_html_report_renders_with_every_figure_in_chromium(report, tmp_path):
    dom = chromium_dom((report / "report.html").as_uri(), tmp_path)
    images = int(re.search(r'data-images="(\d+)"', dom).group(1))
    loaded = int(re.search(r'data-images-loaded="(\d+)"', dom).group(1))
    assert images >= 3 and loaded == images
    findings = json.loads((report / "findings.json").read_text())
    total = sum(len(c["findings"]) for c in findings["claims"])
    assert dom.count("class=\"finding\"") == total
    verdicts = re.findall(r'data-verdict="([^"]+)"', dom)
    assert set(verdicts) <= {"supports", "contradicts", "cannot tell"} and len(verdicts) == total


@needs_chromium
@slow
def test_a_missing_figure_shows_as_not_loaded(report, tmp_path):
    broken = tmp_path / "copy"
    shutil.copytree(report, broken)
    next((broken / "figures").glob("*.png")).unlink()
    dom = chromium_dom((broken / "report.html").as_uri(), tmp_path)
    images = int(re.search(r'data-images="(\d+)"', dom).group(1))
    loaded = int(re.search(r'data-images-loaded="(\d+)"', dom).group(1))
    assert loaded == images - 1


@slow
def test_damaged_run_is_listed_not_fatal(artifacts, tmp_path):
    root = tmp_path / "art"
    shutil.copytree(artifacts, root, ignore=shutil.ignore_patterns("reports"))
    run = next(p for p in (root / "runs").iterdir() if p.name.endswith("dropout-5-2"))
    (run / "results" / "model.safetensors").write_bytes(b"not a safetensors file")
    assert cli.main(["--artifacts", str(root), "report", "toy-models"]) == 0
    md = (root / "reports" / "toy-models" / "report.md").read_text()
    assert "Runs that could not be read" in md and "dropout-5-2" in md
    assert not (root / "reports" / "toy-models" / "figures" / "dropout_counts.png").exists()


def test_report_without_runs_says_what_to_run(tmp_path, capsys):
    assert cli.main(["--artifacts", str(tmp_path), "report", "toy-models"]) == 0
    assert "0 supports, 0 contradicts" in capsys.readouterr().out
    report = tmp_path / "reports" / "toy-models"
    findings = json.loads((report / "findings.json").read_text())
    assert findings["runs"] == {} and all(f["verdict"] == "cannot tell" for c in findings["claims"] for f in c["findings"])
    md = (report / "report.md").read_text()
    assert "Not run yet" in md and "sptui batch jobs/" in md and not list((report / "figures").glob("*.png"))


@needs_chromium
def test_report_without_runs_renders_in_chromium(tmp_path):
    assert cli.main(["--artifacts", str(tmp_path), "report", "toy-models"]) == 0
    dom = chromium_dom((tmp_path / "reports" / "toy-models" / "report.html").as_uri(), tmp_path)
    assert 'data-images="0"' in dom and dom.count('data-verdict="cannot tell"') >= 31


def test_unwritable_output_is_one_clear_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["--artifacts", str(tmp_path), "report", "toy-models", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot create the report folder" in err[0]


def test_chromium_is_found_where_the_site_tests_find_it():
    assert CHROMIUM is None or shutil.which(CHROMIUM)


def test_seed_band_stays_within_the_seeds_values():
    # Counts of 0, 0 and 4 over three seeds: a +-1 sd band reaches -0.97 features; the range band stays in [0, 4].
    import matplotlib.pyplot as plt

    from sptui.report import figures as F

    fig, ax = plt.subplots()
    F._band(ax, [0.0, 1.0], [[0, 0, 4], [1, 1, 1]], "counts", "#c0392b")
    ys = ax.collections[0].get_paths()[0].vertices[:, 1]
    plt.close(fig)
    assert ys.min() == pytest.approx(0.0) and ys.max() == pytest.approx(4.0)


def test_run_names_under_a_figure_wrap_within_its_width(tmp_path):
    # Twelve long run ids in one line, right-aligned, ran off the figure's left edge; the tight crop then widened
    # the PNG to 2.6x the figure and squeezed the panels into its right third.
    from types import SimpleNamespace

    import matplotlib.pyplot as plt
    from PIL import Image

    from sptui.report import figures as F

    tables = [SimpleNamespace(info=SimpleNamespace(run_id=f"00{k:02d}-functions-target-max_abs-activation-relu"))
              for k in range(12)]
    fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
    ax.plot([0, 1], [0, 1])
    ax.set_xlabel("x label")
    F._source(fig, *tables, note="a note")
    width, _ = Image.open(F.save(fig, tmp_path / "f.png")).size
    assert width <= 6 * F.DPI + 30  # the figure plus the crop's padding


def test_results_of_the_wrong_shape_are_listed_not_fatal(tmp_path, capsys):
    # Valid JSON with a key missing (a summary.json from another version, a hand-edited instances.json) is as
    # damaged as a truncated file: the report lists the run with one line and writes everything else.
    from sptui.runs import slug
    from sptui.spec import parse_text
    from tests.helpers import run_spec

    jobs = JOBS[JOBS.index('[[job]]\nkind = "functions"'):].replace("steps = 30", "steps = 5")
    for number, spec in enumerate(parse_text(jobs, "jobs.toml"), start=1):
        run_spec(spec, tmp_path / "runs" / f"{number:04d}-{slug(spec.name)}", artifacts_root=tmp_path)
    relu, gelu = sorted((tmp_path / "runs").iterdir())
    (relu / "results" / "summary.json").write_text('{"width": 4}')
    (gelu / "results" / "instances.json").write_text('[{"grid": {}}]')
    assert cli.main(["--artifacts", str(tmp_path), "report", "toy-models"]) == 0
    md = (tmp_path / "reports" / "toy-models" / "report.md").read_text()
    listed = md[md.index("Runs that could not be read"):].splitlines()
    assert any(relu.name in line and "unreadable functions results ('target')" in line for line in listed), listed
    assert any(gelu.name in line and "unreadable functions results ('params')" in line for line in listed), listed
