"""Hostile input across the CLI: whatever a user points sptui at, they get one line on stderr, exit status 2
(or a normal answer), and nothing already written is lost or half-written.

Probed as an attacker would (tests/test_bad_job_files.py holds the size limits, non-finite numbers and names;
tests/test_queue_file.py the damaged queue; tests/test_disk_full.py a full disk): job files of the wrong
shape, types and encodings; priorities past what SQLite can store; run folders with damaged files; model
paths that are pickles; a Slurm cluster that cannot be reached; a queue locked by another process. Commands
run through `sptui.cli.main` in this process (the real parser, queue and files) unless a real second process
is the point.
"""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from sptui import cli

from .helpers import REPO, sptui, tms_job


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(args))
    except SystemExit as e:  # argparse's own refusals exit from inside the parser
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> bool:
    return err.startswith("sptui") and err.endswith("\n") and err.count("\n") == 1 and "Traceback" not in err


def queued(root) -> int:
    db = root / "queue.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        return con.execute("SELECT count(*) FROM jobs").fetchone()[0]


def job(body: str, kind: str = "tms", name: str = "a") -> str:
    return f'[[job]]\nkind = "{kind}"\nname = "{name}"\n{body}\n'


# ---------------------------------------------------------------- job files

JOB_FILES = [
    # found by this audit: a priority past 64 bits was a traceback (OverflowError from SQLite) at submit
    ("priority-huge", job("priority = 99999999999999999999").encode(),
     'job 1 ("a"): priority: expected a value from -1,000,000,000 to 1,000,000,000, found 99,999,999,999,999,999,999'),
    ("priority-low", job("priority = -9223372036854775808").encode(),
     "priority: expected a value from -1,000,000,000 to 1,000,000,000, found -9,223,372,036,854,775,808"),
    ("priority-string", job('priority = "5"').encode(), 'priority: expected integer, found "5" (string)'),
    # found: a TOML date was shown as Python's repr, datetime.date(1979, 5, 27)
    ("date", job("steps = 1979-05-27").encode(), 'job 1 ("a"): steps: expected integer, found 1979-05-27 (a date or time)'),
    # what a researcher writes by mistake (these already held; kept so they stay one line)
    ("empty", b"", "no jobs: expected one or more [[job]] tables"),
    ("binary", b"\x00\x01\xff\xfe\x80garbage", "not UTF-8 text (byte 2: invalid start byte)"),
    ("latin-1", b'[[job]]\nkind = "tms"\nname = "caf\xe9"\n', "not UTF-8 text (byte 32: invalid continuation byte)"),
    ("bom-then-garbage", b'\xef\xbb\xbf[[job]]\nname="\xff"', "not UTF-8 text (byte 17: invalid start byte)"),
    ("not-toml", b"[[job]\nkind = tms\n", "not valid TOML:"),
    ("one-job-table", b'[job]\nkind = "tms"\nname = "a"\n', "no jobs: expected one or more [[job]] tables"),
    ("job-strings", b'job = ["a"]\n', 'job 1: expected a [[job]] table, found "a" (string)'),
    ("top-level-typo", b'jobs = 1\n[[job]]\nkind = "tms"\nname = "a"\n', 'jobs: unknown top-level key (did you mean "job"?'),
    ("kind-number", b'[[job]]\nkind = 3\nname = "a"\n', 'kind: unknown kind 3 (integer)'),
    ("name-number", b'[[job]]\nkind = "tms"\nname = 3\n', "job 1: name: expected a non-empty string, found 3 (integer)"),
    ("no-name", b'[[job]]\nkind = "tms"\n', "job 1: name: expected a non-empty string, found nothing"),
    ("duplicate-names", (job("steps = 10") + job("steps = 20")).encode(), 'job 2 ("a"): name: duplicate job name (also job 1)'),
    ("duplicate-key", b'[[job]]\nkind = "tms"\nkind = "tms"\n', "not valid TOML: Cannot overwrite a value"),
    ("unknown-key", job("n_hiden = 2").encode(), 'n_hiden: unknown parameter (did you mean "n_hidden"?)'),
    ("string-size", job('steps = "ten"').encode(), 'steps: expected integer, found "ten" (string)'),
    ("bool-size", job("steps = true").encode(), "steps: expected integer, found true (true/false)"),
    ("table-size", job("steps = {a = 1}").encode(), "steps: expected integer, found a table"),
    ("negative-size", job("n_features = -5").encode(), "n_features: expected a value >= 1, found -5"),
    ("zero-size", job("n_hidden = 0").encode(), "n_hidden: expected a value >= 1, found 0"),
    ("float-seed", job("seed = 1.5").encode(), "seed: expected integer, found 1.5 (number)"),
    ("sweep-scalar", job("[job.sweep]\ndropout = 0.1").encode(), "sweep.dropout: expected a non-empty list of values"),
    ("sweep-empty", job("[job.sweep]\ndropout = []").encode(), "sweep.dropout: expected a non-empty list of values"),
    ("sweep-unknown", job("[job.sweep]\nfoo = [1]").encode(), "sweep.foo: unknown parameter"),
    ("after-string", job('after = "b"').encode(), 'after: expected a list of job names or run ids, found "b" (string)'),
    ("after-circle", (job('after = ["b"]') + job('after = ["a"]', name="b")).encode(), "wait for each other in a circle"),
    ("instance-range", job("instance_range = [5, 2]").encode(), "instance_range: expected 0 <= start < stop <= 1"),
]


@pytest.mark.parametrize("command", ["validate", "submit", "batch"])
@pytest.mark.parametrize("case, data, expected", JOB_FILES, ids=[c[0] for c in JOB_FILES])
def test_a_broken_job_file_is_one_line_and_queues_nothing(capsys, tmp_path, command, case, data, expected):
    path = tmp_path / f"{case}.toml"
    path.write_bytes(data)
    root = tmp_path / "artifacts"
    code, out, err = run_cli(capsys, "--artifacts", str(root), command, str(path))
    assert code == 2, (out, err)
    assert one_line(err) and err.startswith(f"sptui: {path}: "), err
    assert expected in err, err
    assert queued(root) == 0


def test_a_job_file_saved_with_a_byte_order_mark_is_read(capsys, tmp_path):
    """Notepad and other Windows editors begin UTF-8 with EF BB BF; tomllib calls that an invalid statement."""
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + tms_job("bom").encode())
    code, out, err = run_cli(capsys, "--artifacts", str(tmp_path / "a"), "validate", str(path))
    assert code == 0, err
    assert "bom" in out


def test_priorities_on_the_command_line_follow_the_job_files_rule(capsys, tmp_path):
    """`submit --priority` and `sptui priority` took any integer; one past 64 bits was a traceback."""
    root = tmp_path / "artifacts"
    path = tmp_path / "tiny.toml"
    path.write_text(tms_job())
    for args in (("submit", "--priority", "99999999999999999999", str(path)),
                 ("submit", "--priority", "1000000001", str(path))):
        code, out, err = run_cli(capsys, "--artifacts", str(root), *args)
        assert code == 2 and one_line(err), err
        assert "--priority: expected a value from -1,000,000,000 to 1,000,000,000, found " in err
        assert queued(root) == 0
    code, out, err = run_cli(capsys, "--artifacts", str(root), "submit", "--priority", "-1000000000", str(path))
    assert code == 0, err
    before = (root / "queue.db").read_bytes()
    for value, expected in (("99999999999999999999", "found 99,999,999,999,999,999,999"),
                            ("-9223372036854775809", "found -9,223,372,036,854,775,809"),
                            ("high", "expected a whole number, found 'high'")):
        code, out, err = run_cli(capsys, "--artifacts", str(root), "priority", "1", "--", value)
        assert code == 2 and one_line(err) and expected in err, err
    assert (root / "queue.db").read_bytes() == before
    code, out, err = run_cli(capsys, "--artifacts", str(root), "priority", "1", "1000000000")
    assert code == 0 and out.strip().endswith("priority 1000000000"), (out, err)


# ---------------------------------------------------------------- damaged run folders

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A real, succeeded toy-model run (its folder is copied by each test before damaging it)."""
    root = tmp_path_factory.mktemp("hostile") / "artifacts"
    path = root.parent / "tiny.toml"
    path.write_text(tms_job("tiny", steps=30, log_points=3))
    sptui("batch", str(path), root=root, check=True)
    (run,) = (root / "runs").iterdir()
    return root, run.name


def _garbage(n: int) -> bytes:
    return hashlib.sha256(b"x").digest() * (n // 32)


DAMAGE = {
    "safetensors-empty": ("results/model.safetensors", b""),
    "safetensors-truncated": ("results/model.safetensors", None),  # its first 100 bytes
    "safetensors-garbage": ("results/model.safetensors", _garbage(4096)),
    "instances-garbage": ("results/instances.json", b"{garbage"),
    "state-missing": ("state.json", "missing"),
    "state-empty": ("state.json", b""),
    "state-garbage": ("state.json", b"\x00\xff{"),
    "job-binary": ("job.toml", _garbage(512)),
    "job-edited-kind": ("job.toml", b'[[job]]\nkind = "sae"\nname = "tiny"\n'),
    "job-not-a-job": ("job.toml", b"kind = 3\n"),
    "metrics-garbage": ("metrics.jsonl", b"\x00\x01{\n[[\n"),
}


@pytest.mark.parametrize("command", ["show", "ls", "export", "logs"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_run_folder_is_one_line_and_loses_nothing(capsys, tmp_path, finished_run, damage, command):
    import shutil

    source, run_id = finished_run
    root = tmp_path / "artifacts"
    shutil.copytree(source, root)
    run = root / "runs" / run_id
    name, data = DAMAGE[damage]
    target = run / name
    if data == "missing":
        target.unlink()
    else:
        target.write_bytes(target.read_bytes()[:100] if data is None else data)
    before = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != "queue.db"
              and "plots" not in p.parts}
    args = {"show": ("show", run_id), "ls": ("ls",), "export": ("export", run_id), "logs": ("logs", run_id)}[command]
    code, out, err = run_cli(capsys, "--artifacts", str(root), *args)
    assert code in (0, 2), (code, out, err)
    if code == 2:
        assert one_line(err), err
        assert err.startswith("sptui: error: "), err
    else:
        assert err == "" or all(line.startswith(("note:", "warning:")) for line in err.splitlines()), err
    after = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != "queue.db"
             and "plots" not in p.parts}
    assert after == before  # nothing the run had written is changed or gone
    assert not [p for p in root.rglob("*") if ".tmp" in p.name]


# ---------------------------------------------------------------- model paths: safetensors only

@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory):
    """A tiny GPT-2 saved by transformers (safetensors), and the same weights as a pickle (pytorch_model.bin)."""
    transformers = pytest.importorskip("transformers")
    import safetensors.torch
    import torch

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=1000, n_embd=32, n_layer=1, n_head=4, n_positions=32, n_ctx=32)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    base = tmp_path_factory.mktemp("models")
    safe = base / "safe"
    hf.save_pretrained(safe)
    pickled = base / "pickled"
    hf.save_pretrained(pickled)
    torch.save(safetensors.torch.load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    # both: the safetensors are read; the .bin is garbage, so reading it would fail the load
    both = base / "both"
    hf.save_pretrained(both)
    (both / "pytorch_model.bin").write_bytes(b"not a pickle either")
    lone = base / "lone" / "model.pt"
    lone.parent.mkdir()
    torch.save({"w": torch.zeros(2)}, lone)
    return {"safe": safe, "pickled": pickled, "both": both, "pt-file": lone, "bin-file": pickled / "pytorch_model.bin"}


PICKLES = [
    ("pickled", "its weights are pickles (pytorch_model.bin), no .safetensors; sptui loads weights from "
                "safetensors only"),
    ("pt-file", "a pickle file; sptui loads weights from safetensors only"),
    ("bin-file", "a pickle file; sptui loads weights from safetensors only"),
]


@pytest.mark.parametrize("which, expected", PICKLES, ids=[p[0] for p in PICKLES])
@pytest.mark.parametrize("kind, key", [("neuroscope", "model"), ("neuron-geometry", "model"), ("sae", "source")])
def test_a_pickle_model_is_refused_when_the_job_file_is_checked(capsys, tmp_path, hf_folders, which, expected, kind, key):
    path = tmp_path / "job.toml"
    path.write_text(f'[[job]]\nkind = "{kind}"\nname = "m"\n{key} = "{hf_folders[which]}"\n')
    root = tmp_path / "artifacts"
    for command in ("validate", "submit"):
        code, out, err = run_cli(capsys, "--artifacts", str(root), command, str(path))
        assert code == 2 and one_line(err), err
        assert f'job "m": {key}: {hf_folders[which]}: {expected}' in err, err
    assert queued(root) == 0


@pytest.mark.parametrize("which", ["pickled", "pt-file", "bin-file"])
def test_the_loader_never_unpickles_weights(hf_folders, which):
    """The root: sptui.models refuses before transformers or torch.load could read a pickle (a cached hub
    snapshot reaches the loader without the job file's check)."""
    from sptui.errors import SptuiError
    from sptui.models import _load_hf_folder, load_model

    with pytest.raises(SptuiError, match="safetensors only"):
        load_model(str(hf_folders[which]))
    if which == "pickled":
        with pytest.raises(SptuiError, match="safetensors only"):
            _load_hf_folder(hf_folders[which], "cpu", processing=False)


def test_a_folder_with_safetensors_beside_a_pickle_loads_the_safetensors(hf_folders):
    import torch

    from sptui.models import load_model

    tokens = torch.arange(10).unsqueeze(0)
    with torch.no_grad():
        got = load_model(str(hf_folders["both"]), processing=False)(tokens)
        expected = load_model(str(hf_folders["safe"]), processing=False)(tokens)
    torch.testing.assert_close(got, expected)


# ---------------------------------------------------------------- Slurm and the queue

def test_slurm_that_cannot_be_reached_is_one_line_naming_the_default_partition(capsys, tmp_path, monkeypatch):
    """A workstation with the Slurm clients but no cluster (here: a configuration scontrol cannot use). Was
    'partition None: ...'."""
    conf = tmp_path / "slurm.conf"
    conf.write_text("")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    if subprocess.run(["which", "scontrol"], capture_output=True).returncode != 0:
        pytest.skip("no scontrol on PATH (the Slurm clients are not installed)")
    path = tmp_path / "tiny.toml"
    path.write_text(tms_job())
    root = tmp_path / "artifacts"
    for command in ("submit", "batch"):
        code, out, err = run_cli(capsys, "--artifacts", str(root), command, "--executor", "slurm", str(path))
        assert code == 2 and one_line(err), err
        assert "partition None" not in err
        assert err.startswith("sptui: error: cannot ask Slurm for its default partition (scontrol: "), err
        assert err.endswith("is this a Slurm login node, with slurmctld up?\n"), err
    assert queued(root) == 0


LOCKER = textwrap.dedent("""
    import sqlite3, sys, time
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.readline()  # held until the test says
    con.execute("COMMIT")
""")


@pytest.mark.slow
def test_a_queue_locked_by_another_process_is_one_line_then_works_when_released(tmp_path, finished_run):
    """Another process (a stuck worker, an sqlite3 shell) holds the queue: submit waits its busy timeout (30 s),
    says so in one line and queues nothing; once the lock is gone the same command works, and `ls` reads
    throughout (WAL readers are not blocked by a writer)."""
    import shutil

    source, run_id = finished_run
    root = tmp_path / "artifacts"
    shutil.copytree(source, root)
    path = tmp_path / "tiny.toml"
    path.write_text(tms_job("other"))
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(root / "queue.db")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert locker.stdout.readline().strip() == "locked"
        listed = sptui("ls", root=root, timeout=60)
        assert listed.returncode == 0 and run_id in listed.stdout, listed.stderr
        refused = sptui("submit", str(path), root=root, timeout=120)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stderr == f"sptui: error: {root}/queue.db: cannot write the queue database (database is locked)\n"
    finally:
        locker.communicate("\n", timeout=30)
    assert queued(root) == 1
    done = sptui("submit", str(path), root=root, timeout=60)
    assert done.returncode == 0, done.stderr
    assert queued(root) == 2


# ---------------------------------------------------------------- a full disk (a real tmpfs, filled)

@pytest.fixture
def full_disk(tmp_path, finished_run):
    """A copy of the finished run's artifacts on a small tmpfs, then the tmpfs filled to its last byte."""
    import shutil

    from .helpers import fill_disk, mount_tmpfs

    mount = tmp_path / "disk"
    unmount = mount_tmpfs(mount, "8m")
    source, run_id = finished_run
    root = mount / "artifacts"
    shutil.copytree(source, root)
    filler = fill_disk(mount)
    yield root, run_id, filler
    unmount()


def files_of(root) -> dict:
    """Every file's bytes, but SQLite's -wal and -shm (made empty by any reader that opens the queue)."""
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


def test_recover_on_a_full_disk_leaves_the_queue_as_it_was(capsys, full_disk):
    """recover set the old queue.db aside before writing the new one: on a full disk that left an empty
    queue.db, `sptui ls` then listed no runs and a second recover found nothing to recover."""
    root, run_id, filler = full_disk
    before = files_of(root)
    code, out, err = run_cli(capsys, "--artifacts", str(root), "recover", "--force")
    assert code == 2 and one_line(err), err
    assert err == (f"sptui: error: disk full: no room to rebuild {root / 'queue.db'} beside it; it is left as it "
                   "was. Free some space, then recover again\n")
    assert files_of(root) == before  # nothing set aside, nothing left half-made
    code, out, err = run_cli(capsys, "--artifacts", str(root), "ls")
    assert code == 0 and run_id in out, (out, err)
    filler.unlink()
    code, out, err = run_cli(capsys, "--artifacts", str(root), "recover", "--force")
    assert code == 0 and "1 job read back from the old file" in out, (out, err)
    code, out, err = run_cli(capsys, "--artifacts", str(root), "ls")
    assert run_id in out


def test_a_new_queue_on_a_full_disk_says_disk_full(capsys, full_disk):
    """SQLite leaves an empty queue.db when the disk is too full to make one: read as an empty queue (it said
    'no such table: jobs'), so the line says what is wrong."""
    root, run_id, filler = full_disk
    fresh = root.parent / "fresh"
    path = root.parent / "tiny.toml"
    filler.unlink()
    path.write_text(tms_job())
    from .helpers import fill_disk

    fill_disk(root.parent)
    for command in ("submit", "batch"):
        code, out, err = run_cli(capsys, "--artifacts", str(fresh), command, str(path))
        assert code == 2 and one_line(err), err
        assert err == (f"sptui: error: disk full: the queue {fresh / 'queue.db'} cannot be written (the disk holding "
                       "it has no space left); free some space\n")
    code, out, err = run_cli(capsys, "--artifacts", str(fresh), "ls")
    assert code == 0 and err == "", err


def test_export_on_a_full_disk_keeps_the_old_figures_and_says_to_run_it_again(capsys, full_disk):
    root, run_id, filler = full_disk
    before = files_of(root)
    code, out, err = run_cli(capsys, "--artifacts", str(root), "export", run_id)
    assert code == 2 and one_line(err), err
    assert err.startswith("sptui: error: disk full: No space left on device writing "), err
    assert err.endswith("; free some space, then run `sptui export` again\n"), err  # not "requeue the run"
    assert files_of(root) == before


# ---------------------------------------------------------------- an SAE of the wrong width

@pytest.mark.parametrize("d_in", [16, 40])
def test_an_sae_of_another_width_than_its_hook_is_one_line(d_in):
    """The Neuroscope over SAE latents runs the SAE's recorded model: if that folder now holds another model
    (or summary.json was edited), the SAE's width no longer fits the hook. Was a matmul RuntimeError."""
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from sptui.errors import SptuiError
    from sptui.neuroscope.units import SAELatents
    from sptui.sae.saelens_format import SavedSAE

    cfg = HookedTransformerConfig(n_layers=1, d_model=32, n_ctx=16, d_head=8, n_heads=4, d_mlp=64, d_vocab=50,
                                  act_fn="relu", model_name="tiny")
    model = HookedTransformer(cfg)
    d_sae = 24
    sae = SavedSAE("standard", W_enc=torch.randn(d_in, d_sae), b_enc=torch.zeros(d_sae), W_dec=torch.randn(d_sae, d_in),
                   b_dec=torch.zeros(d_in), apply_b_dec_to_input=False)
    units = SAELatents(model, "blocks.0.hook_resid_post", sae, 0, {"model": "/data/lm"})
    tokens = torch.randint(0, 50, (2, 8))
    with pytest.raises(SptuiError) as caught:
        units.activations(tokens, torch.ones_like(tokens, dtype=torch.bool))
    assert str(caught.value) == (f"the SAE reads {d_in}-wide activations, but blocks.0.hook_resid_post of the model "
                                 "/data/lm is 32 wide: this is not the model the SAE was trained on")
    fitting = SavedSAE("standard", W_enc=torch.randn(32, d_sae), b_enc=torch.zeros(d_sae), W_dec=torch.randn(d_sae, 32),
                       b_dec=torch.zeros(32), apply_b_dec_to_input=False)
    got = SAELatents(model, "blocks.0.hook_resid_post", fitting, 0).activations(tokens, torch.ones_like(tokens, dtype=torch.bool))
    assert got[0].shape == (2, 8, d_sae)


def test_a_neuroscope_site_exported_on_a_full_disk_keeps_the_last_exports_pages_whole(capsys, tmp_path):
    """Re-exporting a site over an older one: each page was rewritten in place, so a full disk left a page cut
    short where the old one had been. Pages are now written whole or not at all."""
    from .helpers import fill_disk, mount_tmpfs
    from .test_neuroscope import job, make_corpus, make_model, run_job

    model = make_model(tmp_path / "model")
    corpus = make_corpus(tmp_path / "stories.txt", n=20, seed=1)
    run = run_job(job(model, corpus, layers=[0], top_k=2), tmp_path / "runs" / "ns-0001")
    mount = tmp_path / "disk"
    unmount = mount_tmpfs(mount, "2m")
    try:
        out = mount / "site"
        code, _, err = run_cli(capsys, "neuroscope", "export", str(run.root), "--out", str(out))
        assert code == 0, err
        pages = sorted(p.relative_to(out) for p in out.rglob("*.html"))
        assert len(pages) > 40
        for page in pages:  # an older export, smaller than this one: rewriting it needs more room than it frees
            (out / page).write_text(f"<p>old export of {page}</p>\n")
        before = files_of(out)
        fill_disk(mount)
        code, _, err = run_cli(capsys, "neuroscope", "export", str(run.root), "--out", str(out))
        assert code == 2 and one_line(err), err
        assert err.startswith("sptui: error: disk full: No space left on device") and "run `sptui neuroscope` again" in err
        assert files_of(out) == before  # every page of the last export whole, no temp file left
    finally:
        unmount()


def test_logs_print_what_a_model_generated_without_letting_it_drive_the_terminal(capsys, tmp_path, finished_run):
    """An lm job logs its samples (a young model's continuations hold any byte: ESC, carriage returns, bidi
    overrides) and a worker appends its child's raw output: `sptui logs` shows them escaped, lines and tabs kept."""
    import shutil

    source, run_id = finished_run
    root = tmp_path / "artifacts"
    shutil.copytree(source, root)
    log = root / "runs" / run_id / "log.txt"
    hostile = "sample @ 100: Once|\x1b]0;owned\x07\x1b[2J red \x1b[31mtext\rover\u202eevil\tcol\n"
    with open(log, "a") as f:
        f.write(hostile)
    lines = log.read_bytes().count(b"\n")
    code, out, err = run_cli(capsys, "--artifacts", str(root), "logs", run_id)
    assert code == 0, err
    assert not any(c in out for c in "\x1b\x07\r\u202e"), out
    assert out.count("\n") == lines
    assert out.endswith("sample @ 100: Once|\\x1b]0;owned\\x07\\x1b[2J red \\x1b[31mtext\\rover\\u202eevil\tcol\n")


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_a_worker_asked_for_gpus_it_would_not_use_says_so(capsys, tmp_path, device):
    """`sptui worker --gpus 0,1` where torch sees no GPU (a driver problem) ran every job on the CPU, unsaid."""
    import torch

    if device == "auto" and torch.cuda.is_available():
        pytest.skip("a GPU is visible here: auto picks it")
    root = tmp_path / "artifacts"
    code, out, err = run_cli(capsys, "--artifacts", str(root), "worker", "--device", device, "--gpus", "0,1", "--once")
    assert code == 2 and one_line(err), err
    assert err == ("sptui: error: --gpus 0,1: this worker would run on the CPU (--device cpu, or auto with no CUDA GPU "
                   "visible to torch); drop --gpus, or check the driver and CUDA_VISIBLE_DEVICES\n")
    assert out == "" and queued(root) == 0
