"""`sptui report toy-models`: the reproduction report of "Experiments in Superposition", written from the runs.

It finds the newest finished run of every job the claims need (sptui.report.claims.JOB_FILES) under the
artifacts root, recomputes the metrics from the saved weights, draws the figures, evaluates every claim and
writes <out>/report.md, <out>/report.html, <out>/findings.json and <out>/figures/*.png (default out:
<artifacts>/reports/toy-models). Missing runs do not stop it: their claims say "cannot tell" and name the job
file to run.
"""

from __future__ import annotations

import datetime
import html
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from sptui import runs
from sptui.errors import SptuiError
from sptui.report import claims as C
from sptui.report import figures as F
from sptui.report.runs import (
    AdditionTable,
    FunctionsTable,
    TmsTable,
    find_finished,
    load_addition,
    load_functions,
    load_tms,
)
from sptui.report.verdicts import CANNOT_TELL, CONTRADICTS, SUPPORTS, Finding

TITLE = "Experiments in Superposition: which claims hold in sptui's runs"
MARKERS = {"tms": "results/instances.json", "functions": "results/instances.json", "addition": "results/ablation.safetensors"}
LOADERS: dict[str, Callable[[runs.RunDir], TmsTable | FunctionsTable | AdditionTable]] = {
    "tms": load_tms, "functions": load_functions, "addition": load_addition}


def job_kind(job: str) -> str:
    if job.startswith("functions"):
        return "functions"
    if job.startswith("addition"):
        return "addition"
    return "tms"


def load_inputs(root: Path, jobs: list[str] | None = None) -> C.Inputs:
    tables: dict[str, TmsTable | FunctionsTable | AdditionTable] = {}
    problems: dict[str, str] = {}
    for job in jobs or list(C.JOB_FILES):
        kind = job_kind(job)
        run = find_finished(job, root, kind, MARKERS[kind])
        if run is None:
            continue
        try:
            tables[job] = LOADERS[kind](run)
        except SptuiError as e:
            problems[job] = str(e)
    return C.Inputs(tables=tables, problems=problems)


def build(root: Path, out: Path) -> tuple[Path, Path]:
    """Write the report for the runs under `root` into `out`; returns (markdown, html) paths."""
    inputs = load_inputs(root)
    figures = out / "figures"
    for stale in figures.glob("*.png") if figures.is_dir() else []:
        stale.unlink()  # a figure whose runs are gone must not linger
    inputs.figures = F.draw_all(inputs.tables, figures, C._participation)
    results = C.evaluate(inputs)
    created = datetime.datetime.now().isoformat(timespec="seconds")
    md = out / "report.md"
    page = out / "report.html"
    runs.atomic_write_text(md, markdown(results, inputs, created))
    runs.atomic_write_text(page, to_html(results, inputs, created))
    runs.atomic_write_json(out / "findings.json", findings_json(results, inputs, created))
    return md, page


# ---------------------------------------------------------------- Markdown

def _tally(results) -> Counter:
    return Counter(f.verdict for _, findings in results for f in findings)


def _runs_table(inputs: C.Inputs) -> list[list[str]]:
    rows = []
    for job, t in sorted(inputs.tables.items(), key=lambda kv: kv[1].info.run_id):
        count = getattr(t, "count", None) or len(getattr(t, "seeds", []) or []) or 1
        rows.append([t.info.run_id, job, C.JOB_FILES.get(job, ""), str(t.info.steps or ""), str(count), t.info.finished or ""])
    return rows


def markdown(results, inputs: C.Inputs, created: str) -> str:
    tally = _tally(results)
    lines = [f"# {TITLE}", "",
             f"Written by `sptui report toy-models` on {created} from the runs listed at the end. Each claim of the paper "
             "(Project 4, and Project 1's qualitative claims) is quoted, then measured on sptui's own runs, with the rule "
             "that turns the numbers into a verdict: **supports**, **contradicts** or **cannot tell** (and why). "
             "Numbers are mean ± sd over seeds unless said otherwise; metrics are defined in "
             "`sptui/science/tms_metrics.py`.", "",
             f"Verdicts: {tally[SUPPORTS]} supports, {tally[CONTRADICTS]} contradicts, {tally[CANNOT_TELL]} cannot tell.", "",
             "## Summary", "", "| claim | paper says | reading | verdict | deciding numbers |", "|---|---|---|---|---|"]
    for claim, findings in results:
        for f in findings:
            lines.append(f"| {claim.id} | {_md_cell(_short(claim.quote))} | {_md_cell(f.reading or '')} | **{f.verdict}** | "
                         f"{_md_cell(f.why)} |")
    section = None
    for claim, findings in results:
        if claim.section != section:
            section = claim.section
            lines += ["", f"## {section}"]
        lines += ["", f"### {claim.id}", "", f"> {claim.quote}", "", f"Jobs: {', '.join(f'`{j}`' for j in claim.jobs)}. "
                  f"Test: {claim.test}"]
        shown = set()
        for f in findings:
            lines += ["", f"**{f.verdict}**" + (f" ({f.reading})" if f.reading else "") + f": {f.why}"]
            if f.runs:
                lines.append(f"Runs: {', '.join(f'`{r}`' for r in f.runs)}.")
            if f.numbers:
                lines += ["", "| measured | value |", "|---|---|"]
                lines += [f"| {_md_cell(a)} | {_md_cell(b)} |" for a, b in f.numbers]
            if f.figure and f.figure not in shown:
                shown.add(f.figure)
                lines += ["", f"![{claim.id}](figures/{f.figure})"]
    lines += ["", "## Runs", "", "| run | job | job file | steps / epochs | instances | finished |", "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in _runs_table(inputs)]
    if inputs.problems:
        lines += ["", "Runs that could not be read:"] + [f"- `{j}`: {p}" for j, p in inputs.problems.items()]
    absent = sorted({j for j in C.JOB_FILES if j not in inputs.tables})
    if absent:
        files = sorted({C.JOB_FILES[j] for j in absent})
        lines += ["", f"Not run yet ({len(absent)} jobs): `sptui batch {' '.join(files)}` makes them."]
    lines += ["", "Regenerate: `sptui report toy-models` (after the jobs above have finished).", ""]
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _short(text: str, limit: int = 110) -> str:
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + " …"


# ---------------------------------------------------------------- HTML

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; vertical-align: top; text-align: left; }
th { background: #f2f2f2; }
blockquote { border-left: 4px solid #bbb; margin: 0.6em 0; padding: 0.1em 0.8em; color: #444; font-style: italic; }
.verdict { font-weight: 600; padding: 0.05em 0.45em; border-radius: 0.3em; white-space: nowrap; }
.supports { background: #d5f0d8; color: #1d5e27; }
.contradicts { background: #f7d4d1; color: #8a1c12; }
.cannot-tell { background: #eeeeee; color: #555; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
code { background: #f4f4f4; padding: 0 0.2em; }
.test { color: #555; font-size: 0.9em; }
"""

SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-images-loaded', ok);
});
"""


def _badge(verdict: str) -> str:
    return f'<span class="verdict {verdict.replace(" ", "-")}">{html.escape(verdict)}</span>'


def _code(text: str) -> str:
    """Escape, then show `backticked` parts as code."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if k % 2 else p for k, p in enumerate(parts))


def to_html(results, inputs: C.Inputs, created: str) -> str:
    e = html.escape
    tally = _tally(results)
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(TITLE)}</title>",
           f"<style>{CSS}</style><script>{SCRIPT}</script></head><body>", f"<h1>{e(TITLE)}</h1>",
           f"<p>Written by <code>sptui report toy-models</code> on {e(created)} from the runs listed at the end. Each claim "
           "is quoted, measured on sptui's runs, and given a verdict by the rule stated with it. Numbers are mean ± sd "
           "over seeds unless said otherwise; metrics are defined in <code>sptui/science/tms_metrics.py</code>.</p>",
           f"<p id='tally'>{_badge(SUPPORTS)} {tally[SUPPORTS]} &nbsp; {_badge(CONTRADICTS)} {tally[CONTRADICTS]} &nbsp; "
           f"{_badge(CANNOT_TELL)} {tally[CANNOT_TELL]}</p>",
           "<h2>Summary</h2><table id='summary'><tr><th>claim</th><th>paper says</th><th>reading</th><th>verdict</th>"
           "<th>deciding numbers</th></tr>"]
    for claim, findings in results:
        for f in findings:
            out.append(f"<tr class='finding' data-claim='{e(claim.id)}' data-verdict='{e(f.verdict)}'>"
                       f"<td><a href='#{e(claim.id)}'>{e(claim.id)}</a></td><td>{e(_short(claim.quote))}</td>"
                       f"<td>{e(f.reading or '')}</td><td>{_badge(f.verdict)}</td><td>{_code(f.why)}</td></tr>")
    out.append("</table>")
    section = None
    for claim, findings in results:
        if claim.section != section:
            section = claim.section
            out.append(f"<h2>{e(section)}</h2>")
        out += [f"<h3 id='{e(claim.id)}'>{e(claim.id)}</h3>", f"<blockquote>{e(claim.quote)}</blockquote>",
                f"<p class='test'>Jobs: {', '.join(f'<code>{e(j)}</code>' for j in claim.jobs)}. Test: {e(claim.test)}</p>"]
        shown = set()
        for f in findings:
            out.append(f"<p>{_badge(f.verdict)} {('<em>' + e(f.reading) + '</em>: ') if f.reading else ''}{_code(f.why)}</p>")
            if f.runs:
                out.append(f"<p class='test'>Runs: {', '.join(f'<code>{e(r)}</code>' for r in f.runs)}</p>")
            if f.numbers:
                out.append("<table><tr><th>measured</th><th>value</th></tr>"
                           + "".join(f"<tr><td>{e(a)}</td><td>{e(b)}</td></tr>" for a, b in f.numbers) + "</table>")
            if f.figure and f.figure not in shown:
                shown.add(f.figure)
                out.append(f"<img src='figures/{e(f.figure)}' alt='{e(claim.id)} figure'>")
    out.append("<h2>Runs</h2><table id='runs'><tr><th>run</th><th>job</th><th>job file</th><th>steps / epochs</th>"
               "<th>instances</th><th>finished</th></tr>")
    out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in _runs_table(inputs)]
    out.append("</table>")
    absent = sorted({j for j in C.JOB_FILES if j not in inputs.tables})
    if absent:
        files = sorted({C.JOB_FILES[j] for j in absent})
        out.append(f"<p>Not run yet ({len(absent)} jobs): <code>sptui batch {e(' '.join(files))}</code> makes them.</p>")
    out.append("<p>Regenerate: <code>sptui report toy-models</code>.</p></body></html>")
    return "\n".join(out)


def findings_json(results, inputs: C.Inputs, created: str) -> dict:
    return {
        "created": created,
        "claims": [{"id": c.id, "section": c.section, "quote": c.quote, "jobs": list(c.jobs), "test": c.test,
                    "findings": [_finding(f) for f in findings]} for c, findings in results],
        "runs": {job: t.info.run_id for job, t in inputs.tables.items()},
    }


def _finding(f: Finding) -> dict:
    return {"verdict": f.verdict, "reading": f.reading, "why": f.why, "numbers": [list(n) for n in f.numbers],
            "runs": f.runs, "figure": f.figure}


def default_out(root: Path) -> Path:
    return root / "reports" / "toy-models"


def write(root: Path, out: Path | None = None) -> tuple[Path, Path]:
    out = out or default_out(root)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SptuiError(f"{out}: cannot create the report folder ({e.strerror})") from None
    return build(root, out)


def as_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
