"""One run: live curves, the log following live, the resolved spec, the run's files, PNG export.

A thread worker polls twice a second: the metrics file from its byte offset (new records go straight
into the curves' downsampled store), the log from its byte offset, and the job's row. The curves redraw
on their own timer at 2 Hz when something new arrived.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.syntax import Syntax
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static, TabbedContent, TabPane

from sptui.errors import SptuiError
from sptui.names import counted
from sptui.queue import Job, Queue
from sptui.runs import FileTail, MetricsTail, RunDir
from sptui.timing import fmt_clock
from sptui.tui.feedback import Says
from sptui.tui.messages import ActionDone, JobUpdated, LogLines, MetricsArrived
from sptui.tui.widgets.curves import CurvePlot, LiveCurves
from sptui.tui.widgets.footer import KeysFooter
from sptui.tui.widgets.keyhints import key_hints
from sptui.tui.widgets.logtail import FIRST_READ_BYTES, LogTail
from sptui.tui.widgets.runtable import STATE_STYLE, device_cell, fmt_progress, fmt_seconds
from sptui.tui.workers import in_thread

POLL_SECONDS = 0.5
FILES_EVERY = 2.0


@dataclass
class FilesListed(Message, bubble=False):
    files: list[tuple[str, int]]


@dataclass
class Overview(Message, bubble=False):
    text: Text


ERROR_LINES = 5  # the most lines an error takes in the run screen's head (the Log tab has the rest)
ERROR_MORE = "… (2: the Log tab has all of it)"


def head_error(error: str, width: int | None) -> str:
    """`error` as it fits ERROR_LINES lines `width` cells wide (wrapped as Rich wraps words), else cut with a
    note saying where the rest is: an error's last words are often its fix."""
    if not width or width < 20:
        return error
    lines = Text(error).wrap(Console(width=width, color_system=None), width)
    if len(lines) <= ERROR_LINES:
        return error
    keep = " ".join(line.plain.strip() for line in lines[:ERROR_LINES])
    room = max(0, len(keep) - len(ERROR_MORE) - 1)
    return keep[:room].rstrip() + " " + ERROR_MORE


def run_head(j: Job, now: float | None = None, width: int | None = None) -> Text:
    """The run screen's head, laid out for 80 columns: what and how far on the first line; when, how long and
    where on the second; an error (at most ERROR_LINES lines of `width` cells) or a silence on the third."""
    now = now if now is not None else time.time()
    text = Text()
    text.append(j.run_id, style="bold")
    if not j.run_id.endswith(f"-{j.name}"):  # the name as written ("grid[n_hidden=3]"), where the id is a slug
        text.append(f" {j.name}")
    text.append(f"  {j.kind}  ")
    text.append("cancelling" if j.cancel_requested and j.state == "running" else j.state,
                style=STATE_STYLE.get(j.state, ""))
    progress = fmt_progress(j).strip()  # padded for the table's column
    if progress:
        text.append(f"  {progress}")
    eta = j.eta(now)
    if j.phase_now:  # past its steps (drawing plots): an eta of 0s would say it is about to end
        text.append(f"  {j.doing(now)}")
    elif eta is not None:
        text.append(f"  eta {fmt_seconds(eta)}")
    when = []
    if j.first_start is not None:
        when.append(f"started {fmt_clock(j.first_start, now)}")
        if j.attempts > 1 and j.started is not None and j.state != "queued":
            when.append(f"attempt {j.attempts} from {fmt_clock(j.started, now)}")
    if j.finished is not None and j.state not in ("queued", "running"):
        when.append(f"ended {fmt_clock(j.finished, now)}")
    elapsed = j.elapsed(now)
    if elapsed is not None:
        when.append(f"ran {fmt_seconds(elapsed)}" + (" over all attempts" if j.prior_seconds else ""))
    where = device_cell(j)
    if where:
        when.append(where)
    if j.executor != "worker":
        when.append(f"via {j.executor}")
    if when:
        text.append("\n" + "  ".join(when), style="dim")
    silence = j.silence(now)
    if silence:  # a long step, or a hang: say so, don't guess
        # in its steps the log may say what the long step is; a stopped beat has nothing there (one line at 80)
        text.append(f"\n{silence}" + ("" if j.phase_now else " (see the Log tab)"), style="yellow")
    if j.error:
        text.append(f"\n{head_error(j.error, width)}", style="red")
    return text


OVERVIEW_LINES = 14  # the log's last findings an overview shows


def run_overview(run: RunDir, files: list[tuple[str, int]], state: str) -> Text:
    """What a run without curves has (an analysis run logs no metrics): the findings its log reports, and its
    figures and results files, with the keys that open them."""
    text = Text("No curves: " + ("this run logs no metrics" if state != "running" else "no metrics logged yet")
                + ". What it has:\n\n", style="bold")
    findings = []
    try:
        with open(run.log, encoding="utf-8", errors="replace") as f:
            for line in f.read()[-(64 << 10):].splitlines():
                body = line[20:] if line[:4].isdigit() and line[19:20] == " " else line  # drop the time stamp
                if body.startswith(("===", "progress:", "wrote ")) or not body.strip():
                    continue
                findings.append(body)
    except OSError:
        pass
    if findings:
        text.append("from its log (Log tab: all of it):\n", style="dim")
        for body in findings[-OVERVIEW_LINES:]:
            text.append(f"  {body}\n")
    pngs = [name for name, _ in files if name.endswith(".png")]
    results = [name for name, _ in files if name.startswith("results/")]
    if results:
        text.append(f"\n{counted(len(results), 'results file')}: ", style="dim")
        text.append(", ".join(name.removeprefix("results/") for name in results[:8]) + (" ..." if len(results) > 8 else ""))
    if pngs:
        text.append(f"\n{counted(len(pngs), 'figure')} in plots/: ", style="dim")
        text.append(", ".join(name.removeprefix("plots/") for name in pngs[:8]) + (" ..." if len(pngs) > 8 else ""))
    text.append("\n\nr: the result browser   4: every file   e: redraw the figures", style="dim")
    return text


def list_files(run_dir: Path) -> list[tuple[str, int]]:
    if not run_dir.exists():
        return []
    return sorted((str(p.relative_to(run_dir)), p.stat().st_size) for p in run_dir.rglob("*")
                  if p.is_file() and not p.name.startswith("."))


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "K", "M", "G"):
        if size < 1024 or unit == "G":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size}"


def no_browser(kind: str, run_dir: str | Path) -> Screen | None:
    """What `browser_for` answers for a kind without a result browser."""
    return None


INSTANCES = "instances"  # the grouping option that draws each instance on its own


def grouping_options(grid: list[dict]) -> list[str | None]:
    """How a batched run's instances can be grouped: by each swept parameter (the non-seed ones first, so the
    spread is across seeds), None (all together), or each on its own. [] when grouping says nothing new (one
    instance, or every group would hold a single instance)."""
    from sptui.plots.curves import SEED_PARAMS, default_group, instance_groups

    if len(grid) < 2:
        return []
    first = default_group(grid)
    if all(len(cols) == 1 for _, cols in instance_groups(grid, first)):
        return []
    swept = [k for k in grid[0] if len({repr(p.get(k)) for p in grid}) > 1]
    ordered = [first] + [k for k in swept if k != first and k not in SEED_PARAMS] + [None, INSTANCES]
    return list(dict.fromkeys(ordered))


class RunScreen(Says, Screen):
    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to the queue"),
        Binding("q", "back", "Back", show=False, tooltip="Back to the queue (q quits only from the queue)"),
        Binding("m", "metric(1)", "Metric", tooltip="Show the next metric"),
        Binding("M", "metric(-1)", "Prev metric", show=False, tooltip="Show the previous metric"),
        Binding("l", "log_scale", "Log scale", tooltip="Switch the y axis between linear and log"),
        Binding("e", "export", "Export PNG",
                tooltip="Save the curve (and, for a finished run, its kind's figures) as PNGs in plots/"),
        Binding("r", "results", "Results", tooltip="Open the result browser of this run's kind"),
        Binding("g", "group", "Group", show=False,
                tooltip="Group a batched run's instances by a swept parameter (mean and min-max), or not"),
        Binding("t", "split", "Split", show=False, tooltip="Grouped curves: show the next split (train, test)"),
        Binding("1", "tab('curves')", "Curves", show=False, tooltip="The Curves tab"),
        Binding("2", "tab('log')", "Log", show=False, tooltip="The Log tab: log.txt, followed live"),
        Binding("3", "tab('spec')", "Spec", show=False, tooltip="The Spec tab: the job as it was queued"),
        Binding("4", "tab('files')", "Files", show=False, tooltip="The Files tab: what the run has written"),
    ]

    def __init__(self, root: Path, job: Job, poll_interval: float = POLL_SECONDS):
        super().__init__()
        self.root = root
        self.job = job
        self.run = RunDir(job.run_dir(root))
        self.poll_interval = poll_interval
        self.metrics_tail = MetricsTail(self.run.metrics)
        self.log_tail = FileTail(self.run.log, last_bytes=FIRST_READ_BYTES)
        self._poll_lock = threading.Lock()
        self._queue: Queue | None = None
        self._files_at = 0.0
        self.exported: list[Path] = []
        self.spec_toml = job.job_spec().to_toml()
        self.files: list[tuple[str, int]] = []
        # a batched run's instances, drawn like runs in compare: grouped by a swept parameter, mean and spread
        self.grid = job.job_spec().grid()
        self.group_options = grouping_options(self.grid)
        self.group = self.group_options[0] if self.group_options else None

    def compose(self) -> ComposeResult:
        yield Static("", id="run-head")
        with TabbedContent(initial="curves"):
            with TabPane("Curves", id="curves"):
                yield LiveCurves(id="plot")
                yield Static("", id="curves-overview")
                yield Static("", id="curves-readout")
                yield Static(key_hints([("←/→", "cursor"), ("s", "smooth"),
                                        *([("g", "group"), ("t", "split")] if self.group_options else []),
                                        ("?", "every key")]), id="curves-help")
            with TabPane("Log", id="log"):
                yield LogTail(id="logtail")
            with TabPane("Spec", id="spec"):
                yield Static(Syntax(self.spec_toml, "toml", theme="ansi_dark", background_color="default"),
                             id="spec-text")
            with TabPane("Files", id="files"):
                yield Static("", id="files-list")
        yield Static("", id="status")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#curves-overview", Static).display = False
        self.curves.focus()  # its keys (cursor, smoothing) work at once
        self._show_head()
        if self.group_options:
            self._apply_group("test")
        self.poll()
        self.set_interval(self.poll_interval, self.poll)

    def on_unmount(self) -> None:
        with self._poll_lock:
            if self._queue is not None:
                self._queue.close()
                self._queue = None

    @property
    def curves(self) -> LiveCurves:
        return self.query_one(LiveCurves)

    # ------------------------------------------------------------ polling (thread)
    @in_thread("run-poll")
    def poll(self) -> None:
        with self._poll_lock:
            records = self.metrics_tail.poll()
            reset = self.metrics_tail.reset
            if records or reset:
                self.curves.feed(records, reset)
                self.post_message(MetricsArrived(len(records), reset))
            lines = self.log_tail.poll_lines()
            if lines or self.log_tail.reset:
                self.post_message(LogLines(lines, self.log_tail.reset))
            if self._queue is None:
                self._queue = Queue(self.root)
            try:
                job = self._queue.get(self.job.id)
            except SptuiError:
                job = None
            if job is not None:
                self.post_message(JobUpdated(job))
            now = time.monotonic()
            if now - self._files_at > FILES_EVERY or (job is not None and job.state != self.job.state):
                self._files_at = now
                files = list_files(self.run.root)
                self.post_message(FilesListed(files))
                if job is not None and job.state != "queued" and not self.curves.metrics():
                    self.post_message(Overview(run_overview(self.run, files, job.state)))

    @on(JobUpdated)
    def _job_updated(self, message: JobUpdated) -> None:
        self.job = message.job
        self._show_head()

    @on(Overview)
    def _overview(self, message: Overview) -> None:
        """A run with no curves (an analysis): what it found and wrote, in place of an empty plot."""
        has_curves = bool(self.curves.metrics())
        for widget in (self.curves, self.query_one("#curves-readout"), self.query_one("#curves-help")):
            widget.display = has_curves
        overview = self.query_one("#curves-overview", Static)
        overview.display = not has_curves
        if not has_curves:
            overview.update(message.text)

    @on(CurvePlot.Drawn)
    def _drawn(self, message: CurvePlot.Drawn) -> None:
        readout = self.query_one("#curves-readout", Static)
        readout.update(message.plot.readout(readout.size.width or self.size.width))
        if not self.curves.display and message.plot.lines:  # curves arrived after an overview was shown
            for widget in (self.curves, self.query_one("#curves-readout"), self.query_one("#curves-help")):
                widget.display = True
            self.query_one("#curves-overview", Static).display = False

    @on(LogLines)
    def _log_lines(self, message: LogLines) -> None:
        self.query_one(LogTail).add(message.lines, message.reset)

    @on(MetricsArrived)
    def _metrics_arrived(self, message: MetricsArrived) -> None:
        pass  # the curves redraw on their own timer; the message lets tests and hooks see progress

    @on(FilesListed)
    def _files_listed(self, message: FilesListed) -> None:
        self.files = message.files
        if not message.files:
            text = Text(f"{self.run.root}: no files yet", style="dim")
        else:
            text = Text(f"{self.run.root}\n", style="bold")
            for name, size in message.files:
                text.append(f"  {human_size(size):>7}  {name}\n", style="magenta" if name.endswith(".png") else "")
        self.query_one("#files-list", Static).update(text)

    def _show_head(self) -> None:
        head = self.query_one("#run-head", Static)
        head.update(run_head(self.job, width=head.content_region.width or self.app.size.width - 2))

    def on_resize(self) -> None:
        self.call_after_refresh(self._show_head)  # the error's lines follow the width

    # ------------------------------------------------------------ actions
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    CURVE_ACTIONS = ("metric", "log_scale", "group", "split")  # keys that change the Curves tab's plot

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The curve keys (m, M, l, g, t) only on the Curves tab: elsewhere the footer left 'm Metric' and
        'l Log scale' offered over the log, and they changed a plot no one saw."""
        if action in self.CURVE_ACTIONS and self.is_mounted:
            return self.query_one(TabbedContent).active == "curves"
        return True

    @on(TabbedContent.TabActivated)
    def _tab_activated(self) -> None:
        self.refresh_bindings()

    def action_metric(self, step: int) -> None:
        metric = self.curves.cycle_metric(step)
        self.say(f"metric: {metric}" if metric else "no metrics yet")

    def action_log_scale(self) -> None:
        on_ = self.curves.toggle_log()
        self.say("log y axis" if on_ else "linear y axis")

    def _apply_group(self, split: str | None) -> None:
        from sptui.plots.curves import instance_groups

        if self.group == INSTANCES:
            self.curves.set_groups(None, None)
        else:
            self.curves.set_groups(instance_groups(self.grid, self.group), split)

    def action_group(self) -> None:
        if not self.group_options:
            self.say("one model: no instances to group")
            return
        self.group = self.group_options[(self.group_options.index(self.group) + 1) % len(self.group_options)]
        self._apply_group(self.curves.split or "test")
        self.say("each instance its own line" if self.group == INSTANCES else
                 f"instances grouped by {self.group or 'nothing (all together)'}: mean and min-max")

    def action_split(self) -> None:
        if self.curves.groups is None:
            self.say("every split is shown")
            return
        with self.curves.curves_lock:
            splits = self.curves.curves.splits(self.curves.metric) if self.curves.metric else []
        if splits:
            current = self.curves.split
            split = splits[(splits.index(current) + 1) % len(splits)] if current in splits else splits[0]
            self.curves.set_groups(self.curves.groups, split)
            self.say(f"split: {split}")

    def action_export(self) -> None:
        self.say("exporting PNGs ...")
        self._export(self.curves.metric, self.curves.log_scale)

    @in_thread("run-export")
    def _export(self, metric: str | None, log_scale: bool) -> None:
        from sptui.plots.curves import export_png
        from sptui.runs import read_metrics

        paths: list[Path] = []
        notes: list[str] = []
        try:
            records = read_metrics(self.run.metrics)
            metrics = [metric] if metric else []
            if not metrics:
                raise SptuiError("no metrics yet to export")
            for name in metrics:
                paths.append(export_png(records, name, self.run.plots / f"curves-{name}.png",
                                        title=f"{self.job.run_id}: {name}", log_scale=log_scale))
        except SptuiError as e:
            notes.append(str(e))
        if self.job.state == "succeeded":
            try:
                from sptui.export import export_run

                paths += export_run(self.run.root, self.job.kind)
            except SptuiError as e:
                notes.append(str(e))
            except Exception as e:  # a kind's renderer failing must not take the app down
                notes.append(f"the {self.job.kind} plots failed: {type(e).__name__}: {e}")
        if paths:
            folder = Path(paths[0]).parent
            # the file names first: a status line cuts a long folder in the middle (sptui.tui.feedback)
            text = (f"saved {paths[0]}" if len(paths) == 1 else
                    f"saved {Path(paths[0]).name} and {len(paths) - 1} more in {folder}"
                    if all(Path(p).parent == folder for p in paths) else
                    f"saved {paths[0]} and {len(paths) - 1} more")
            if notes:
                text += f"  ({'; '.join(notes)})"
            self.post_message(ActionDone(text, paths=tuple(paths)))
        else:
            self.post_message(ActionDone("; ".join(notes) or "nothing to export", error=True))

    @on(ActionDone)
    def _action_done(self, message: ActionDone) -> None:
        if message.paths:
            self.exported = list(message.paths)
        self.say(message.text, message.error)

    def action_results(self) -> None:
        try:
            from sptui.tui.browsers import browser_for
        except ImportError:  # the browsers package left out: as for a kind that has no browser
            browser_for = no_browser
        try:
            screen = browser_for(self.job.kind, self.run.root)
        except SptuiError as e:  # e.g. the run has no results yet
            self.say(str(e), error=True)
            return
        if screen is None:
            self.say(f"no result browser for {self.job.kind}")
            return
        if self.job.state in ("queued", "running") and not any(self.run.results.glob("*")):
            # nothing written yet: one line, not a browser of empty plots
            self.say(f"{self.job.run_id} is {self.job.state}: no results yet (r opens them once it has written "
                     "them; 1 and 2 show its curves and log meanwhile)", error=True)
            return
        self.app.push_screen(screen)
