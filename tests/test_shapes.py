"""The jaxtyping shape annotations of sptui.science are true: tests/shape_checks.py drives every annotated
function with real data while jaxtyping + beartype check each call (in its own process, because the import
hook must see the modules imported for the first time)."""

import subprocess
import sys

from tests.helpers import REPO


def test_science_shapes_hold_at_run_time():
    result = subprocess.run([sys.executable, str(REPO / "tests" / "shape_checks.py")], capture_output=True, text=True,
                            cwd=REPO, timeout=600)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stdout[-3000:] + result.stderr[-3000:]
