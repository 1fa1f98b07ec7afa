"""The README is what a researcher follows on day one: what it names must exist and what it shows must run.

Checked here, without training anything: every job file it names is shipped, every shipped one is named, each
is valid with its references resolved (against the shipped files whose runs it reads), and a code block that runs
one runs those first; its TOML examples are accepted and every key it tells users to set exists; every `sptui`
command it shows names a real command and only flags that command takes (whole command lines in code blocks
parse); the `sptui validate` lines it quotes are what validate prints; its Python lines that load a saved model
run as written and every Python name it gives exists; its links, anchors, repository paths, `just` recipes,
extras and benchmarks table match the repository; CI runs its test line. The job files' own usage comments and
suggested settings are held to the same rules.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from sptui.cli import build_parser
from sptui.pipeline import RunIndex, resolve
from sptui.spec import JobSpec, load_file

from .helpers import REPO, sptui

README = (REPO / "README.md").read_text()
JOBS = REPO / "jobs"
EXAMPLE_JOB_FILES = {"x.toml"}  # the README's example of an error message, not a shipped file


def code_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line inside a ``` fenced block."""
    lines, inside = [], False
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            inside = not inside
        elif inside:
            lines.append((n, line))
    return lines


def prose(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line outside fenced blocks."""
    inside_lines = {n for n, _ in code_blocks(text)}
    return [(n, line) for n, line in enumerate(text.splitlines(), 1)
            if n not in inside_lines and not line.startswith("```")]


def inline_code(text: str) -> list[tuple[int, str]]:
    return [(n, span) for n, line in prose(text) for span in re.findall(r"`([^`]+)`", line)]


# ---------------------------------------------------------------- job files

def named_job_files(text: str) -> set[str]:
    return set(re.findall(r"jobs/([A-Za-z0-9_]+\.toml)", text)) - EXAMPLE_JOB_FILES


def job_names(path: Path) -> set[str]:
    names = set()
    for spec in load_file(path):
        names |= {spec.name, spec.name.split("[")[0]}
    return names


def words(spec: JobSpec) -> set[str]:
    """Every string a job holds in its parameters, sweep and `after`: a superset of the runs it names."""
    found = {v for v in spec.params.values() if isinstance(v, str)} | set(spec.after)
    for values in spec.sweep.values():
        found |= {v for v in values if isinstance(v, str)}
    return found


def needed_files() -> dict[str, set[str]]:
    """For each shipped job file, the other shipped files whose runs it reads (by the job names it holds)."""
    files = sorted(JOBS.glob("*.toml"))
    defined_in = {name: p.name for p in files for name in job_names(p)}
    return {p.name: {defined_in[w] for spec in load_file(p) for w in words(spec)
                     if w in defined_in and defined_in[w] != p.name and w not in job_names(p)} for p in files}


def test_every_job_file_the_readme_names_is_shipped_and_every_shipped_one_is_named():
    named = named_job_files(README)
    shipped = {p.name for p in JOBS.glob("*.toml")}
    assert named - shipped == set(), "the README names job files that are not in jobs/"
    # a shipped file is named as jobs/NAME.toml, or by its bare name: in a list of job files, in a `for f in` loop
    bare = {span for _, span in inline_code(README)}
    bare |= {w for _, line in code_blocks(README) if (m := re.search(r"for f in ([^;]*);", line)) for w in m[1].split()}
    unnamed = {f for f in shipped - named if f.removesuffix(".toml") not in bare}
    assert unnamed == set(), "shipped job files the README never mentions"


def test_every_shipped_job_file_is_valid_and_its_references_resolve_to_shipped_jobs(tmp_path):
    """What `sptui validate` checks (parameters, bounds, grid size, references, circles), for every shipped file.
    A file that reads the runs of another (neuron_geometry.toml reads lm_tiny.toml's model) is resolved together
    with the shipped files that define the jobs it names, as a user who ran those first would have them."""
    specs = {p.name: load_file(p) for p in sorted(JOBS.glob("*.toml"))}
    for name, needed in needed_files().items():
        before = [spec for other in sorted(needed) for spec in specs[other]]
        resolve(before + specs[name], RunIndex(tmp_path / "empty"), name)  # SpecError names the job and key
    assert not (tmp_path / "empty").exists()


def test_a_code_block_that_runs_a_job_file_runs_or_names_the_files_it_reads_first():
    """Copied as shown, a block must not fail validation: `tms_theory_compare.toml` compares against the runs of
    three files, so the block that runs it runs them first (or its line names the file that makes them)."""
    needs = needed_files()
    assert needs["tms_theory_compare.toml"] == {"phase_2_1.toml", "phase_3_2.toml", "intro_5_2.toml"}
    wrong = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        seen = ""
        for block_line in block.splitlines():
            loop = re.search(r"for f in ([^;]*);", block_line)  # a loop over job files runs them in that order
            for line in [f"jobs/{f}.toml" for f in loop[1].split()] if loop else [block_line]:
                for name in re.findall(r"jobs/(\w+\.toml)", line):  # the line's comment may name what it reads
                    wrong += [f"{name} before {need}" for need in needs.get(name, ())
                              if f"jobs/{need}" not in seen + line]
                    seen += f" jobs/{name}"
    assert wrong == []


# ---------------------------------------------------------------- commands

PLACEHOLDERS = {"RUN": "0001-x", "FILE": "f.toml", "N": "1", "NEURON": "1", "KIND": "tms", "WORD": "x",
                "S": "failed", "D": "cpu", "DIR": "d", "L": "1", "RUN...": "0001-x", "FILE...": "f.toml",
                "WORD...": "x"}


def sptui_commands(text: str) -> list[tuple[int, str, bool]]:
    """(line, command, whole) for every `sptui ...` the text shows: whole=True for a command line in a code
    block (it must parse as written), False for a synopsis in prose (`[--flag]`, `A | B`, `...`)."""
    found = []
    for n, line in code_blocks(text):
        line = line.split("#")[0]
        for part in re.split(r"&&|;|\|(?!\|)", line):
            if m := re.search(r"(?:^|\s)(?:\.venv/bin/)?sptui(\s.*)?$", part.strip()):
                found.append((n, "sptui" + (m.group(1) or ""), True))
    for n, span in inline_code(text):
        for part in re.split(r" / |&&|;|\|(?! )", span):
            if m := re.match(r"\s*(?:\.venv/bin/)?sptui(\s.*)?$", part):
                found.append((n, "sptui" + (m.group(1) or ""), False))
    return found


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def check_command(parser: argparse.ArgumentParser, command: str, whole: bool) -> str | None:
    """Why `command` does not run as shown (None when it does)."""
    tokens = [t for t in shlex.split(command.replace("[", " ").replace("]", " ").replace("\\|", " "))[1:]
              if t not in ("...", "|")]
    args = [PLACEHOLDERS.get(t, t) for t in tokens]
    while args[:1] in (["--artifacts"], ["--device"]):
        args = args[2:]
    if not args or args[0].startswith("-"):
        flags = [a for a in args if a.startswith("-")]
        bad = [f for f in flags if f.split("=")[0] not in parser._option_string_actions]
        return f"unknown option {bad}" if bad else None
    verbs = subparsers(parser)
    if args[0] not in verbs:
        return f"no command {args[0]!r}"
    p = verbs[args[0]]
    if args[1:2] and args[1] in subparsers(p):
        p = subparsers(p)[args[1]]
    bad = [a for a in args[1:] if a.startswith("-") and len(a) > 1 and a.split("=")[0] not in p._option_string_actions]
    if bad:
        return f"{args[0]} takes no {bad}"
    if whole:
        with contextlib.redirect_stderr(io.StringIO()) as err:
            try:
                parser.parse_args(args)
            except SystemExit:
                return err.getvalue().strip()
    return None


def job_file_comments() -> str:
    """The usage lines job files carry in their comments, as a code block."""
    lines = [re.split(r"\s{2,}|\s\(", line.lstrip("# ").strip())[0]  # the command, not the note beside it
             for p in JOBS.glob("*.toml") for line in p.read_text().splitlines()
             if re.match(r"#\s+(\w+=\S+\s+)?sptui ", line)]
    return "```\n" + "\n".join(lines) + "\n```\n"


@pytest.mark.parametrize("where", ["README.md", "jobs/*.toml comments"])
def test_every_sptui_command_shown_names_a_real_command_and_real_flags(where):
    text = README if where == "README.md" else job_file_comments()
    parser = build_parser()
    shown = sptui_commands(text)
    assert len(shown) > (50 if where == "README.md" else 5)  # the extraction found the commands
    wrong = [f"line {n}: {command!r}: {why}" for n, command, whole in shown
             if (why := check_command(parser, command, whole))]
    assert wrong == []


def test_the_command_check_catches_a_missing_flag_and_verb():
    parser = build_parser()
    assert check_command(parser, "sptui ls --stat failed", whole=False)
    assert check_command(parser, "sptui lst", whole=False)
    assert check_command(parser, "sptui priority RUN", whole=True)  # a missing argument
    assert check_command(parser, "sptui requeue RUN --time 240", whole=True) is None
    assert check_command(parser, "sptui neuroscope show RUN 123 --layer 1", whole=True) is None


# ---------------------------------------------------------------- links, files, recipes

def github_anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_and_anchor_in_the_readme_resolves():
    anchors = {github_anchor(m.group(1)) for _, line in prose(README) if (m := re.match(r"#+ (.*)", line))}
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", README):
        if target.startswith(("http://", "https://")):
            continue
        if target.startswith("#"):
            broken += [target] if target[1:] not in anchors else []
        elif not (REPO / target.split("#")[0]).exists():
            broken.append(target)
    assert broken == []


def test_every_repository_file_the_readme_names_is_there():
    paths = set(re.findall(r"(?<![\w/.~-])((?:sptui|tests|benchmarks|scripts|docs|jobs|\.ci)/[\w/.-]*\w)", README))
    missing = sorted(p for p in paths if "." in Path(p).name and not (REPO / p).exists()
                     and Path(p).name not in EXAMPLE_JOB_FILES)
    assert missing == []
    assert len(paths) > 40


def test_every_just_recipe_the_readme_names_is_in_the_justfile():
    recipes = set(re.findall(r"^([a-z][\w-]*)(?:\s[^:\n]*)?:", (REPO / "Justfile").read_text(), re.M))
    shown = [span for _, span in inline_code(README)] + [line for _, line in code_blocks(README)]
    named = {m[1] for text in shown if (m := re.match(r"\s*just ([a-z][\w-]*)", text))}
    assert {"setup", "demo", "test", "gpu-wheels"} <= named
    assert named - recipes == set()


# ---------------------------------------------------------------- the Python it shows

def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_the_readme_lines_that_load_a_saved_model_in_plain_transformer_lens_run_as_written(tmp_path, monkeypatch):
    """The README's block, run verbatim in a run folder written by sptui (`sptui.models.save_model`, as the lm
    kind saves): the rebuilt model computes what the saved one did."""
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from sptui.models import save_model

    (block,) = [b for b in python_blocks(README) if "HookedTransformerConfig" in b]
    torch.manual_seed(0)
    saved = HookedTransformer(HookedTransformerConfig(n_layers=1, d_model=16, n_ctx=8, d_head=4, n_heads=4,
                                                      d_vocab=12, act_fn="relu", d_mlp=32))
    save_model(saved, tmp_path / "results")
    monkeypatch.chdir(tmp_path)  # the block reads results/... as a user in the run folder would
    names: dict = {}
    exec(compile(block, "README.md", "exec"), names)
    tokens = torch.randint(0, 12, (2, 8))
    with torch.no_grad():
        torch.testing.assert_close(names["model"](tokens), saved(tokens))


# ---------------------------------------------------------------- the job-file keys it shows

def known_keys() -> set[str]:
    from sptui import params as P
    from sptui.kinds import kind_names, load_kind
    from sptui.slurm.options import SlurmOptions

    keys = {"kind", "name", "priority", "after", "instance_range", "sweep", "slurm"}
    keys |= {d[0] for d in P.describe(SlurmOptions)}
    for kind in kind_names():
        keys |= {d[0] for d in P.describe(load_kind(kind).Params)}
    return keys


def test_every_job_file_the_readme_shows_is_accepted_whole(tmp_path):
    from sptui.spec import parse_text

    blocks = re.findall(r"```toml\n(.*?)```", README, re.S)
    assert len(blocks) >= 3
    for block in blocks:
        specs = parse_text(block, "README.md")  # SpecError names the job and key the spec rejects
        resolve(specs, RunIndex(tmp_path / "empty"), "README.md")


def test_every_key_the_readme_sets_in_prose_is_one_a_job_file_takes():
    """`inverted_dropout = false`, `compression = false`, `search = "continuation"`, ...: each names a parameter
    of a kind, a Slurm option or a job key (a renamed parameter leaves the README telling users to set nothing)."""
    set_keys = {key for _, span in inline_code(README) if (m := re.fullmatch(r"([a-z_]\w*) = (.+)", span, re.S))
                for key in [m[1]]}
    assert len(set_keys) > 15
    assert set_keys - known_keys() == set()
    # the settings job files suggest in their comments (`# model = "tiny-stories-2L-33M"`) too
    suggested = {(p.name, m[1]) for p in JOBS.glob("*.toml") for line in p.read_text().splitlines()
                 if (m := re.match(r"#\s*([a-z_]\w*) = (\"|\d|\[|true|false)", line))}
    assert len(suggested) > 3
    assert {(name, key) for name, key in suggested if key not in known_keys()} == set()


def test_every_python_name_the_readme_names_exists():
    """`sptui.models.load_model`, `from sptui.neuroscope.store import NeuroscopeResults`, ...: importable as named."""
    import importlib

    def found(dotted: str) -> object:
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            for part in parts[i:]:
                obj = getattr(obj, part)
            return obj
        raise ImportError(dotted)

    names = set(re.findall(r"`((?:sptui|tests)\.[\w.]*\w)(?:\([^`]*\))?`", README))
    names |= {f"{module}.{name}" for module, name in re.findall(r"from (sptui[\w.]*) import (\w+)", README)}
    assert len(names) >= 5
    missing = []
    for name in sorted(names):
        try:
            found(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert missing == []


def test_the_benchmarks_table_has_a_row_for_every_benchmark_and_only_those():
    section = README[README.index("\n## Benchmarks"):]
    section = section[:section.index("\n## ", 1)]
    rows = set(re.findall(r"^\| `(bench_\w+\.py)`", section, re.M))
    assert rows == {p.name for p in (REPO / "benchmarks").glob("bench_*.py")}


# the validate lines the README quotes, and the shipped file that prints each (the README names the file beside it)
VALIDATE_QUOTES = [
    ("memory: needs about 11 MiB at its peak (24 instances)", "demo.toml"),
    ("needs at least 118 MiB at its peak; more is not known before the run starts (restrict_vocab: ... at most "
     "1.5 GiB with all 50,257 GPT-2 tokens)", "lm_tiny.toml"),
    ('model = study-lm is read when the job starts: this file\'s job "study-lm" makes it', "tinystories_study.toml"),
]


@pytest.mark.parametrize("quote, job_file", VALIDATE_QUOTES)
def test_the_validate_lines_the_readme_quotes_are_what_validate_prints(tmp_path, quote, job_file):
    flat = " ".join(README.split())
    assert quote in flat and f"`jobs/{job_file}`" in flat
    printed = " ".join(sptui("validate", f"jobs/{job_file}", root=tmp_path / "a", check=True).stdout.split())
    head, _, tail = quote.partition("...")  # the README shortens what lies between
    assert head.strip() in printed and tail.strip() in printed


def test_ci_runs_the_quickstart_test_line_as_the_readme_shows_it():
    quickstart = README[README.index("## Quickstart"):README.index("## Commands")]
    (line,) = [line.split("#")[0].strip() for _, line in code_blocks(quickstart) if "pytest" in line]
    assert line in [ci.strip() for ci in (REPO / ".ci" / "run").read_text().splitlines()]


def test_every_extra_the_readme_installs_is_declared():
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    named = set(re.findall(r"sptui\[(\w+)\]", README)) | set(re.findall(r"SPTUI_EXTRAS=(\w+)", README))
    assert {"app", "test"} <= named
    assert named - set(extras) == set()
