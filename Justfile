# Everyday tasks. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# create .venv and install sptui with the test tools
setup:
    SPTUI_EXTRAS=test scripts/setup.sh

# run the demo job file in the foreground (under a minute on a laptop CPU)
demo: setup
    .venv/bin/sptui batch jobs/demo.toml

# the default test suite (what CI runs; slow checks deselected)
test: setup
    .venv/bin/python -m pytest -q

# every test, the slow ones too
test-all: setup
    .venv/bin/python -m pytest -q -m ""

# benchmarks: ratios against baselines measured in the same process
bench: setup
    for b in benchmarks/bench_*.py; do echo "== $b"; .venv/bin/python "$b"; done

# lint and type-check
lint: setup
    .venv/bin/ruff check sptui tests benchmarks
    .venv/bin/python -m mypy

# open the terminal app
tui: setup
    .venv/bin/sptui

# start a local worker in the foreground
worker: setup
    .venv/bin/sptui worker

# the prepared GPU check: every CUDA path and the README's GPU numbers (scripts/gpu_check.py; README "Checking a GPU machine")
gpu-check device="cuda" out="gpu-check-report" *args: setup
    .venv/bin/python scripts/gpu_check.py --device {{device}} --out {{out}} {{args}}

# download the wheels a bare GPU image lacks into .gpu-wheels (git-ignored), for an offline install there
gpu-wheels: setup
    .venv/bin/python scripts/gpu_wheels.py prepare
