"""`sptui export`: PNGs redrawn from saved results; corrupt or missing results give one clear line."""

from PIL import Image

from sptui.queue import Queue
from sptui.runs import RunDir

from .helpers import sptui, tms_job


def finished_run(artifacts, tmp_path) -> RunDir:
    path = tmp_path / "job.toml"
    path.write_text(tms_job("drawn", seeds=(1, 2)))
    sptui("batch", str(path), root=artifacts, check=True)
    with Queue(artifacts) as q:
        return RunDir(q.list()[0].run_dir(artifacts))


def test_export_redraws_every_png_from_results(artifacts, tmp_path):
    run = finished_run(artifacts, tmp_path)
    before = sorted(p.name for p in run.plot_files())
    for png in run.plot_files():
        png.unlink()
    result = sptui("export", run.run_id, root=artifacts, check=True)
    after = run.plot_files()
    assert sorted(p.name for p in after) == before and before
    assert sorted(result.stdout.split()) == sorted(str(p) for p in after)
    for png in after:
        with Image.open(png) as image:
            assert image.format == "PNG" and image.size[0] > 100


def test_corrupt_results_are_one_clear_line_and_nothing_is_lost(artifacts, tmp_path):
    run = finished_run(artifacts, tmp_path)
    model = run.results / "model.safetensors"
    model.write_bytes(model.read_bytes()[:100])
    plots_before = {p.name: p.read_bytes() for p in run.plot_files()}
    result = sptui("export", run.run_id, root=artifacts)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line and "model.safetensors" in line and "corrupt" in line
    assert {p.name: p.read_bytes() for p in run.plot_files()} == plots_before


def test_export_of_a_run_without_results(artifacts, tmp_path):
    path = tmp_path / "job.toml"
    path.write_text(tms_job("queued-only"))
    sptui("submit", str(path), root=artifacts, check=True)
    result = sptui("export", "1", root=artifacts)
    line = result.stderr.strip()
    assert result.returncode == 2 and "\n" not in line and "no run folder yet" in line
