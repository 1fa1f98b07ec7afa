"""Compare runs: one metric overlaid across several runs, coloured by the value of a swept parameter.

Every (run, instance) is a member with its own parameter values (the run's params plus its grid point).
The parameters that differ between members are the ones you can group by; members sharing a value are
averaged into one line per run and drawn in one colour, with their min and max (the spread across seeds when
they differ only in seed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from sptui.errors import SptuiError
from sptui.names import counted
from sptui.queue import Job
from sptui.runs import RunDir, read_metrics
from sptui.tui.feedback import Says
from sptui.tui.messages import ActionDone
from sptui.tui.widgets.curves import PALETTE, CurvePlot, PlotLine
from sptui.tui.widgets.footer import KeysFooter
from sptui.tui.widgets.keyhints import key_hints
from sptui.tui.workers import in_thread


@dataclass
class Member:
    run_id: str
    column: int
    params: dict[str, Any]


@dataclass
class LoadedRuns(Message, bubble=False):
    records: dict[str, list[dict]]
    members: list[Member]


@dataclass
class CompareLines(Message, bubble=False):
    lines: list[PlotLine]
    title: str
    summary: Text


def members_of(job: Job) -> list[Member]:
    spec = job.job_spec()
    return [Member(job.run_id, i, {**spec.params, **point}) for i, point in enumerate(spec.grid())]


def varying_params(members: list[Member]) -> list[str]:
    """Parameters whose value is not the same for every member (swept within or across runs)."""
    keys = sorted({k for m in members for k in m.params})
    out = []
    for k in keys:
        values = {json.dumps(m.params.get(k), sort_keys=True) for m in members}
        if len(values) > 1:
            out.append(k)
    return out


def value_label(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def metric_names(records: dict[str, list[dict]]) -> list[str]:
    names: set[str] = set()
    for recs in records.values():
        for rec in recs[:200]:  # every metric shows up early; don't scan millions of lines for names
            names.update(k for k, v in rec.items() if k not in ("step", "time", "split") and isinstance(v, (int, float, list)))
    return sorted(names, key=lambda m: (m != "loss", m))


def group_lines(records: dict[str, list[dict]], members: list[Member], metric: str, split: str, group: str | None,
                log_scale: bool = False, name_runs: bool = False) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(group value, line label, steps, values) per (run, group value): the mean over that run's members in it.
    `name_runs`: a grouped line's label also names its run ("dropout=0.1 0003-grid"), for a legend of every line."""
    from sptui.plots.curves import _nanmean, raw_series

    out = []
    by_run: dict[str, list[Member]] = {}
    for m in members:
        by_run.setdefault(m.run_id, []).append(m)
    for run_id, run_members in by_run.items():
        series = raw_series(records.get(run_id, []), metric).get(split)
        if series is None:
            continue
        steps, values = series
        groups: dict[str, list[int]] = {}
        for m in run_members:
            key = value_label(m.params.get(group)) if group else run_id
            if m.column < values.shape[1]:
                groups.setdefault(key, []).append(m.column)
        if values.shape[1] == 1 and len(run_members) > 1:  # a scalar metric of a batched run: one line for the run
            groups = {value_label(run_members[0].params.get(group)) if group else run_id: [0]}
        for key, cols in groups.items():
            line = _nanmean(values[:, cols])
            if log_scale:
                line = np.where(line > 0, line, np.nan)
            label = f"{group}={key}" + (f" {run_id}" if name_runs else "") if group else run_id
            out.append((key, label, steps, line))
    out.sort(key=lambda t: _sortable(t[0]))
    return out


def group_spread(records: dict[str, list[dict]], members: list[Member], metric: str, split: str, group: str | None,
                 log_scale: bool = False) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(group value, steps, min, max) per (run, group value) holding more than one member: the spread around
    `group_lines`' mean (across seeds, when the group's members differ only in seed)."""
    from sptui.plots.curves import group_band, raw_series

    out = []
    by_run: dict[str, list[Member]] = {}
    for m in members:
        by_run.setdefault(m.run_id, []).append(m)
    for run_id, run_members in by_run.items():
        series = raw_series(records.get(run_id, []), metric).get(split)
        if series is None or series[1].shape[1] == 1:
            continue
        steps, values = series
        groups: dict[str, list[int]] = {}
        for m in run_members:
            if m.column < values.shape[1]:
                groups.setdefault(value_label(m.params.get(group)) if group else run_id, []).append(m.column)
        for key, cols in groups.items():
            if len(cols) > 1:
                _, lo, hi = group_band(values, cols)
                if log_scale:
                    lo, hi = np.where(lo > 0, lo, np.nan), np.where(hi > 0, hi, np.nan)
                out.append((key, steps, lo, hi))
    return out


def _sortable(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


class CompareScreen(Says, Screen):
    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to the queue"),
        Binding("q", "back", "Back", show=False, tooltip="Back to the queue (q quits only from the queue)"),
        Binding("m", "metric", "Metric", tooltip="Show the next metric"),
        Binding("g", "group", "Group by", tooltip="Colour the lines by the next swept parameter, or by run"),
        Binding("t", "split", "Split", tooltip="Show the next split (train, test, ...)"),
        Binding("l", "log_scale", "Log scale", tooltip="Switch the y axis between linear and log"),
        Binding("e", "export", "Export PNG", tooltip="Save this comparison as a PNG under exports/"),
    ]

    def __init__(self, root: Path, jobs: list[Job]):
        super().__init__()
        self.root = root
        self.jobs = jobs
        self.records: dict[str, list[dict]] = {}
        self.members: list[Member] = []
        self.metrics: list[str] = []
        self.groups: list[str] = []
        self.metric: str | None = None
        self.group: str | None = None
        self.split = "test"
        self.log_scale = False
        self.exported: Path | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text(f"comparing {counted(len(self.jobs), 'run')}: " + ", ".join(j.run_id for j in self.jobs)),
                     id="compare-head")
        yield CurvePlot(id="compare-plot")
        yield Static("", id="compare-readout")
        yield Static("", id="compare-legend")
        yield Static("", id="status")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one(CurvePlot).empty_text = "loading ..."
        self.query_one(CurvePlot).focus()  # its keys (cursor, smoothing) work at once
        self._load()

    @in_thread("compare-load")
    def _load(self) -> None:
        records = {j.run_id: read_metrics(RunDir(j.run_dir(self.root)).metrics) for j in self.jobs}
        members = [m for j in self.jobs for m in members_of(j)]
        self.post_message(LoadedRuns(records, members))

    @on(LoadedRuns)
    def _loaded(self, message: LoadedRuns) -> None:
        self.records, self.members = message.records, message.members
        self.metrics = metric_names(self.records)
        self.groups = varying_params(self.members)
        self.metric = self.metrics[0] if self.metrics else None
        self.group = self.groups[0] if self.groups else None
        splits = {r.get("split") for recs in self.records.values() for r in recs[:200]}
        self.split = "test" if "test" in splits else (sorted(s for s in splits if s) or ["train"])[0]
        self.query_one(CurvePlot).empty_text = "no values of this metric in these runs"
        self.redraw()

    def redraw(self) -> None:
        if self.metric is None:
            self.query_one(CurvePlot).draw([], "no metrics in these runs", False)
            return
        self._build(self.metric, self.split, self.group, self.log_scale, max(16, self.query_one(CurvePlot).size.width))

    @in_thread("compare-build")
    def _build(self, metric: str, split: str, group: str | None, log_scale: bool, points: int) -> None:
        from sptui.plots.curves import downsample

        # every run's line gets a legend entry (its colour is its group's; the label names the run too)
        raw = group_lines(self.records, self.members, metric, split, group, log_scale, name_runs=len(self.jobs) > 1)
        colours: dict[str, int] = {}
        lines = []
        for key, label, steps, values in raw:
            colour = colours.setdefault(key, PALETTE[len(colours) % len(PALETTE)])
            keep = np.isfinite(values)
            xs, ys = downsample(steps[keep], values[keep], points)
            lines.append(PlotLine(label, xs, ys, colour))
        for key, steps, lo, hi in group_spread(self.records, self.members, metric, split, group, log_scale):
            for edge in (lo, hi):  # the spread of a group's members: its min and max, in its colour
                keep = np.isfinite(edge)
                xs, ys = downsample(steps[keep], edge[keep], points)
                lines.append(PlotLine(None, xs, ys, colours[key]))
        title = f"{metric} ({split}){' log' if log_scale else ''}"
        summary = key_hints([("←/→", "cursor"), ("s", "smooth")],
                            before=f"By {group or 'run'}: {counted(len(colours), 'colour')}, {counted(len(lines), 'line')}")
        self.post_message(CompareLines(lines, title, summary))

    @on(CurvePlot.Drawn)
    def _drawn(self, message: CurvePlot.Drawn) -> None:
        readout = self.query_one("#compare-readout", Static)
        readout.update(message.plot.readout(readout.size.width or self.size.width))

    @on(CompareLines)
    def _lines(self, message: CompareLines) -> None:
        self.query_one(CurvePlot).draw(message.lines, message.title, self.log_scale)
        self.query_one("#compare-legend", Static).update(message.summary)

    # ------------------------------------------------------------ actions
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_metric(self) -> None:
        if self.metrics:
            index = self.metrics.index(self.metric) if self.metric in self.metrics else -1
            self.metric = self.metrics[(index + 1) % len(self.metrics)]
            self.redraw()

    def action_group(self) -> None:
        options: list[str | None] = [*self.groups, None]
        self.group = options[(options.index(self.group) + 1) % len(options)]
        self.say(f"group by {self.group or 'run'}")
        self.redraw()

    def action_split(self) -> None:
        splits = sorted({str(r["split"]) for recs in self.records.values() for r in recs[:200] if r.get("split")})
        if splits:
            self.split = splits[(splits.index(self.split) + 1) % len(splits)] if self.split in splits else splits[0]
            self.redraw()

    def action_log_scale(self) -> None:
        self.log_scale = not self.log_scale
        self.redraw()

    def action_export(self) -> None:
        if self.metric is None:
            self.say("no metric to export", error=True)
            return
        self._export(self.metric, self.split, self.group, self.log_scale)

    @in_thread("compare-export")
    def _export(self, metric: str, split: str, group: str | None, log_scale: bool) -> None:
        from sptui.plots.curves import export_compare_png

        ids = "_".join(str(j.id) for j in self.jobs[:8])
        path = self.root / "exports" / f"compare-{ids}-{metric}-{split}-by-{group or 'run'}.png"
        raw = group_lines(self.records, self.members, metric, split, group, log_scale)
        seen: set[str] = set()
        groups = []
        for key, label, steps, values in raw:
            groups.append((key, label if key not in seen else None, steps, values))
            seen.add(key)
        try:
            saved = export_compare_png(groups, metric, path, title=f"{metric} ({split}) by {group or 'run'}",
                                       log_scale=log_scale,
                                       spread=group_spread(self.records, self.members, metric, split, group, log_scale))
        except SptuiError as e:
            self.post_message(ActionDone(str(e), error=True))
            return
        self.post_message(ActionDone(f"saved {saved}", paths=(saved,)))

    @on(ActionDone)
    def _done(self, message: ActionDone) -> None:
        if message.paths:
            self.exported = message.paths[0]
        self.say(message.text, message.error)
