"""The Neuroscope static site (checked in real headless Chromium), the terminal view and run resolution."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from sptui.errors import SptuiError
from sptui.neuroscope.show import show_neuron
from sptui.neuroscope.site import export_site
from sptui.neuroscope.store import NeuroscopeResults, resolve_run
from tests.test_neuroscope import job, make_corpus, make_model, run_job

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("site")
    model = make_model(tmp / "model")
    corpus = make_corpus(tmp / "stories.txt", n=60, seed=1)
    run = run_job(job(model, corpus, layers=[0, 1], top_k=3), tmp / "runs" / "ns-0001")
    return run.root


@pytest.fixture(scope="module")
def site(scanned, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    index = export_site(scanned, out)
    return index, out


def chromium_dom(url: str, tmp_path: Path, *flags: str) -> str:
    profile = tmp_path / f"profile-{abs(hash(url))}"
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-sync", "--disable-component-update", f"--user-data-dir={profile}", "--virtual-time-budget=5000",
         *flags, "--dump-dom", url],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_every_page_exists_and_every_link_resolves_offline(site):
    index, out = site
    assert index == out / "index.html"
    pages = sorted(out.rglob("*.html"))
    assert len(pages) == 1 + 2 * (1 + 48)  # index, and per layer an index + 48 neuron pages
    for page in pages:
        text = page.read_text()
        assert not re.search(r'(src|href)="(https?:)?//', text), f"{page} reaches the network"
        for href in re.findall(r'href="([^"#]+)"', text):
            assert (page.parent / href).resolve().exists(), f"{page}: broken link {href}"
    first = (out / "L0" / "0.html").read_text()
    assert 'id="prev" href="../L1/47.html"' in first  # navigation wraps around across layers
    assert 'id="next" href="1.html"' in first


@needs_chromium
def test_neuron_page_renders_coloured_texts_in_chromium(site, scanned, tmp_path):
    _, out = site
    results = NeuroscopeResults(scanned)
    neuron = results.neuron(1, 5)
    dom = chromium_dom((out / "L1" / "5.html").as_uri(), tmp_path)
    assert 'data-rendered="1"' in dom
    examples = re.findall(r'<div class="example">(.*?)</div></div>', dom, flags=re.S)
    assert len(examples) == len(neuron.top) + len(neuron.samples)
    for example, expected in zip(examples, neuron.top + neuron.samples):
        spans = re.findall(r'<span class="tok( max)?"([^>]*)>(.*?)</span>', example, flags=re.S)
        start = max(0, expected.max_position - 24)
        stop = min(len(expected.token_ids), expected.max_position + 9)
        assert len(spans) == stop - start  # a window around the max token
        maxed = [(style, text) for is_max, style, text in spans if is_max]
        token = results.token_string(int(expected.token_ids[expected.max_position]))
        assert len(maxed) == 1 and html.unescape(maxed[0][1]) == token
    # the shared colour scale: the best text's max token is the one at full strength
    top_max_style = re.search(r'<span class="tok max"([^>]*)>', examples[0]).group(1)
    assert "rgb(255, 120, 0)" in top_max_style
    assert dom.count("rgb(255, 120, 0)") == 1

    full = chromium_dom((out / "L1" / "5.html").as_uri() + "#full", tmp_path)
    spans = re.findall(r'<span class="tok( max)?"', full)
    assert len(spans) == sum(len(e.token_ids) for e in neuron.top + neuron.samples)


# Drives a neuron page in an iframe like a user: expand a text, follow "random", then "next".
HARNESS = """<!DOCTYPE html><html><body><iframe id="f" src="PAGE" width="1000" height="800"></iframe><script>
var f = document.getElementById("f"), log = [], loads = 0;
f.onload = function () {
  var d = f.contentDocument;
  log.push("page=" + f.contentWindow.location.pathname.split("/").slice(-2).join("/"));
  loads += 1;
  if (loads === 1) {
    var ex = d.querySelector(".example");
    log.push("before=" + ex.querySelectorAll(".tok").length);
    ex.querySelector("button.expand").click();
    log.push("after=" + ex.querySelectorAll(".tok").length);
    ex.querySelector("button.expand").click();
    log.push("again=" + ex.querySelectorAll(".tok").length);
    d.getElementById("random").click();
  } else if (loads === 2) {
    d.getElementById("next").click();
  } else {
    document.body.setAttribute("data-log", log.join(" "));
  }
};
</script></body></html>"""


@needs_chromium
def test_expand_random_and_next_work_when_clicked_in_chromium(site, scanned, tmp_path):
    _, out = site
    neuron = NeuroscopeResults(scanned).neuron(1, 5)
    harness = tmp_path / "harness.html"
    harness.write_text(HARNESS.replace("PAGE", (out / "L1" / "5.html").as_uri()))
    dom = chromium_dom(harness.as_uri(), tmp_path, "--allow-file-access-from-files")
    log = dict(item.split("=") for item in re.search(r'data-log="([^"]*)"', dom).group(1).split())
    first = neuron.top[0]
    window = min(len(first.token_ids), first.max_position + 9) - max(0, first.max_position - 24)
    assert int(log["before"]) == window
    assert int(log["after"]) == len(first.token_ids)  # expanded to the full text
    assert int(log["again"]) == window  # and back
    # "random" went to some neuron page of the same layer, and "next" from there to the following one
    pages = [p for p in dom.split('data-log="')[1].split('"')[0].split() if p.startswith("page=")]
    assert pages[0] == "page=L1/5.html"
    random_page = int(re.fullmatch(r"page=L1/(\d+)\.html", pages[1]).group(1))
    assert 0 <= random_page < 48
    expected_next = f"L1/{random_page + 1}.html" if random_page < 47 else "L0/0.html"
    assert pages[2] == f"page={expected_next}"


@needs_chromium
def test_layer_index_and_screenshot_render_in_chromium(site, tmp_path):
    _, out = site
    dom = chromium_dom((out / "L0" / "index.html").as_uri(), tmp_path)
    assert len(re.findall(r'<a href="\d+\.html">', dom)) == 48
    shot = tmp_path / "page.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'shot-profile'}", "--window-size=1200,1600",
                    f"--screenshot={shot}", (out / "L0" / "3.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_show_prints_the_neuron_with_coloured_tokens(scanned):
    results = NeuroscopeResults(scanned)
    neuron = results.neuron(0, 11)
    console = Console(record=True, width=160, color_system="truecolor", force_terminal=True)
    show_neuron(scanned, 11, 0, console)
    plain = console.export_text(clear=False)
    assert "Layer 0 · Neuron 11" in plain
    assert repr(results.token_string(neuron.logit_top[0][0])) in plain
    assert f"L{neuron.similar[0][0]} N{neuron.similar[0][1]}" in plain
    assert plain.count("#") >= len(neuron.top)
    for example in neuron.top:
        assert f"{example.max_value:7.3f}" in plain
    coloured = console.export_text(styles=True)
    best = neuron.top[0]
    token = results.token_string(int(best.token_ids[best.max_position]))
    underlined = re.compile(r"\x1b\[(?:[0-9]+;)*4(?:;[0-9]+)*m" + re.escape(token))
    assert underlined.search(coloured), "the max token is not underlined"
    assert "48;2;255;120;0m" + token in coloured  # full-strength orange on the best text's max token


@pytest.mark.parametrize("width", [60, 80, 120])
def test_the_histogram_line_fits_the_terminal(scanned, width):
    """The header's sparkline shrinks to the terminal rather than wrapping its "(log counts)" onto a second line."""
    from sptui.neuroscope.show import histogram_line

    console = Console(record=True, width=width)
    show_neuron(scanned, 11, 0, console)
    (line,) = [row for row in console.export_text().splitlines() if row.lstrip("│ ").startswith("histogram")]
    assert "(log counts)" in line and len(line) <= width
    counts, edges = np.arange(200.0), np.linspace(-1, 1, 201)  # more bins than any line holds
    assert len(histogram_line(counts, edges).plain.split()[2]) == 60  # 60 bars where nothing limits the line
    assert len(histogram_line(counts, edges, space=width - 4).plain) <= width - 4


def test_show_and_resolve_give_clear_errors(scanned, artifacts):
    with pytest.raises(SptuiError, match="--layer"):
        show_neuron(scanned, 3, None, Console())
    with pytest.raises(SptuiError, match="out of range"):
        show_neuron(scanned, 48, 0, Console())
    with pytest.raises(SptuiError, match="not scanned"):
        show_neuron(scanned, 1, 7, Console())
    with pytest.raises(SptuiError, match="no run"):
        resolve_run("nope-0001")
    (artifacts / "runs" / "half").mkdir(parents=True)
    with pytest.raises(SptuiError, match="not a finished neuroscope run"):
        resolve_run("half")
    (artifacts / "runs" / "study-lm").mkdir()  # the model a neuroscope scans, named in its place
    (artifacts / "runs" / "study-lm" / "job.toml").write_text('[[job]]\nkind = "lm"\nname = "study-lm"\n')
    with pytest.raises(SptuiError, match='"study-lm" is of kind lm, not neuroscope'):
        resolve_run("study-lm")
    shutil.copytree(scanned, artifacts / "runs" / "ns-0001")
    assert resolve_run("ns-0001") == (artifacts / "runs" / "ns-0001").resolve()
    assert resolve_run(str(scanned / "results")) == scanned.resolve()


def test_cli_export_and_show_by_run_id(scanned, artifacts, tmp_path, capsys):
    from sptui.cli import main

    shutil.copytree(scanned, artifacts / "runs" / "ns-0007")
    assert main(["neuroscope", "export", "ns-0007", "--out", str(tmp_path / "site")]) == 0
    assert (tmp_path / "site" / "L1" / "47.html").exists()
    assert main(["neuroscope", "show", "ns-0007", "2", "--layer", "1"]) == 0
    assert "Layer 1 · Neuron 2" in capsys.readouterr().out
    assert main(["neuroscope", "show", "ns-0007", "2"]) != 0  # two layers scanned: a one-line error
    assert "--layer" in capsys.readouterr().err


def test_layer_overview_names_the_token_each_neuron_fires_most_on(scanned):
    results = NeuroscopeResults(scanned)
    overview = results.layer_overview(0)
    for index in range(results.d_mlp):
        best = results.neuron(0, index).top[0]
        assert overview["max_token"][index] == best.token_ids[best.max_position]
        assert overview["max"][index] == pytest.approx(best.max_value, rel=1e-6)
