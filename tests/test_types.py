"""The core and the terminal app type-check (mypy, configured in pyproject.toml), and the check is what confirms
that a kind module fits the Kind contract: a kind whose `run` has the wrong signature fails it."""

import re
import subprocess
import sys

from tests.helpers import REPO


def mypy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mypy", *args], capture_output=True, text=True, cwd=REPO, timeout=900)


def test_the_core_and_the_app_type_check():
    """Every module under sptui/, the Textual app included (none excluded, none skipped), with every function of
    the app annotated (pyproject's override), so no app function's body goes unchecked."""
    result = mypy()
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    modules = len(list((REPO / "sptui").rglob("*.py")))
    assert f"no issues found in {modules} source files" in result.stdout, result.stdout


def test_an_app_thread_worker_called_with_a_wrong_argument_fails_the_check(tmp_path):
    """Textual's `@work(thread=True, ...)` types a method's parameters as `...`; the app's `@in_thread` keeps them,
    so a worker started with the wrong argument is a type error (and the right call is not)."""
    module = (
        "from textual.widget import Widget\n"
        "from sptui.tui.workers import in_thread\n\n\n"
        "class Poller(Widget):\n"
        "    @in_thread(\"poll\")\n"
        "    def poll(self, force: bool) -> None:\n"
        "        pass\n\n"
        "    def tick(self) -> None:\n"
        "        self.poll(CALL)\n"
    )
    (tmp_path / "wrong_worker.py").write_text(module.replace("CALL", '"yes"'))
    result = mypy(str(tmp_path / "wrong_worker.py"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r'wrong_worker\.py:\d+: error: Argument 1 to "poll" of "Poller" has incompatible type "str"; '
                     r'expected "bool"', result.stdout), result.stdout
    (tmp_path / "right_worker.py").write_text(module.replace("CALL", "True"))
    assert mypy(str(tmp_path / "right_worker.py")).returncode == 0


def test_the_app_ignores_no_type_error_blindly():
    """A `# type: ignore` in the app names its error code and says why on the same line (a Textual stub gap...)."""
    bare = []
    for path in sorted((REPO / "sptui" / "tui").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if "type: ignore" in line and not re.search(r"type: ignore\[[a-z-]+(, [a-z-]+)*\]\s+#\s*\S", line):
                bare.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not bare, bare


def test_a_kind_with_a_wrong_run_signature_fails_the_check(tmp_path):
    """kinds/functions.py copied as a new kind module whose run takes an extra argument."""
    source = (REPO / "sptui" / "kinds" / "functions.py").read_text()
    broken = source.replace("def run(ctx: Context) -> None:", "def run(ctx: Context, steps: int) -> None:")
    broken = broken.replace("from sptui.kinds import functions as _this_module", "import wrong_kind as _this_module")
    assert broken.count("steps: int) -> None") == 1 and "import wrong_kind" in broken
    (tmp_path / "wrong_kind.py").write_text(broken)
    result = mypy(str(tmp_path / "wrong_kind.py"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r'wrong_kind\.py:\d+: error: Incompatible types in assignment \(expression has type Module, '
                     r'variable has type "RenderingKind"\)', result.stdout), result.stdout
    assert "def run(ctx: Context, steps: int) -> None" in result.stdout  # the note names the mismatch
    # the unbroken copy passes, so it is the signature that failed
    (tmp_path / "right_kind.py").write_text(source.replace("from sptui.kinds import functions as _this_module",
                                                           "import right_kind as _this_module"))
    assert mypy(str(tmp_path / "right_kind.py")).returncode == 0


def test_every_kind_module_declares_its_fit():
    """Each kind ends with `_fits: Kind = <itself>` (RenderingKind when it has render) under TYPE_CHECKING,
    so the check above covers every kind, including ones added later."""
    import ast

    from sptui.kinds import kind_names

    for name in kind_names():
        module = name.replace("-", "_")
        tree = ast.parse((REPO / "sptui" / "kinds" / f"{module}.py").read_text())
        has_render = any(isinstance(n, ast.FunctionDef) and n.name == "render" for n in tree.body)
        declared = [
            (n.annotation.id, alias)
            for block in tree.body if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
            for n in block.body if isinstance(n, ast.AnnAssign) and ast.unparse(n.target) == "_fits"
            for alias in [ast.unparse(n.value)]
        ]
        self_imports = {a.asname for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "sptui.kinds"
                        for a in n.names if a.name == module}
        expected = "RenderingKind" if has_render else "Kind"
        assert len(declared) == 1 and declared[0][0] == expected and declared[0][1] in self_imports, (name, declared)


def test_kinds_do_not_import_each_other():
    """A kind module imports no other kind (shared code lives in science/, or in a `sptui/kinds/_*.py` helper)."""
    import ast

    from sptui.kinds import kind_names

    modules = {name.replace("-", "_") for name in kind_names()}
    offenders = []
    for module in sorted(modules):
        tree = ast.parse((REPO / "sptui" / "kinds" / f"{module}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "sptui.kinds":
                imported = {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sptui.kinds."):
                imported = {node.module.split(".")[2]}
            elif isinstance(node, ast.Import):
                imported = {a.name.split(".")[2] for a in node.names if a.name.startswith("sptui.kinds.")}
            else:
                continue
            offenders += [f"{module} imports {other}" for other in (imported & modules) - {module}]
    assert not offenders, offenders
