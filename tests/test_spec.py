"""Job files: sweep expansion, and one clear error (file, job, key path, expected, found) for bad input."""

import pytest

from sptui.errors import SpecError
from sptui.spec import load_file, parse_text

from .helpers import tms_job


def parse(text):
    return parse_text(text, "jobs/x.toml")


def error_of(text) -> str:
    with pytest.raises(SpecError) as info:
        parse(text)
    return str(info.value)


def test_batchable_sweep_is_one_job_with_instances_and_others_expand():
    specs = parse(tms_job(probability=None, sweep="feature_probability = [1.0, 0.1]\ndropout = [0.0, 0.2, 0.4]\n"
                                                  "n_hidden = [2, 3]").replace("n_hidden = 2\n", ""))
    assert [s.name for s in specs] == ["tiny[n_hidden=2]", "tiny[n_hidden=3]"]  # shapes differ: separate jobs
    for spec, m in zip(specs, (2, 3)):
        assert spec.params["n_hidden"] == m
        grid = spec.grid()
        assert len(grid) == 6  # 2 probabilities x 3 dropout rates, trained together
        assert {(g["feature_probability"], g["dropout"]) for g in grid} == {
            (p, d) for p in (1.0, 0.1) for d in (0.0, 0.2, 0.4)}
        assert [i.dropout for i in spec.instances()] == [g["dropout"] for g in grid]


def test_defaults_are_filled_in_and_ints_accepted_as_floats():
    (spec,) = parse('[[job]]\nkind = "tms"\nname = "d"\nlr = 1\n')
    assert spec.params["lr"] == 1.0 and isinstance(spec.params["lr"], float)
    assert spec.params["batch_size"] == 1024  # the kind's default


def test_resolved_spec_round_trips_through_job_toml():
    (spec,) = parse(tms_job(seeds=(1, 2, 3)))
    (again,) = parse_text(spec.to_toml(), "job.toml")
    assert again == spec and again.digest() == spec.digest()


@pytest.mark.parametrize(
    "text, expected",
    [
        (tms_job(extra="n_hiden = 3"), 'jobs/x.toml: job 1 ("tiny"): n_hiden: unknown parameter (did you mean "n_hidden"?)'),
        (tms_job(extra='lr = "fast"'), 'jobs/x.toml: job 1 ("tiny"): lr: expected number, found "fast" (string)'),
        (tms_job(extra="dropout = 1.5"), 'jobs/x.toml: job 1 ("tiny"): dropout: expected a value < 1, found 1.5'),
        (tms_job(sweep="dropout = [0.1, -0.2]"),
         'jobs/x.toml: job 1 ("tiny"): sweep.dropout[1]: expected a value >= 0, found -0.2'),
        (tms_job(sweep="dropout = 0.1"),
         'jobs/x.toml: job 1 ("tiny"): sweep.dropout: expected a non-empty list of values, found 0.1 (number)'),
        (tms_job(extra='output_activation = "relux"'),
         'jobs/x.toml: job 1 ("tiny"): output_activation: expected one of "relu", "gelu", "none", "leaky_relu", '
         '"sigmoid", "softplus", found "relux" (string)'),
        ('[[job]]\nkind = "tmz"\nname = "a"\n', 'jobs/x.toml: job 1 ("a"): kind: unknown kind "tmz" (did you mean "tms"?); known kinds: '),
        (tms_job(sweep="n_hiden = 3"), 'jobs/x.toml: job 1 ("tiny"): sweep.n_hiden: unknown parameter (did you mean '
                                       '"n_hidden"?)'),
        (tms_job(sweep="instance_range = [[0, 1]]"),
         'jobs/x.toml: job 1 ("tiny"): sweep.instance_range: instance_range is a setting of the job, not a parameter '
         "of tms; a sweep takes parameters (sptui kinds tms lists them)"),
        ('[[job]]\nkind = "tms"\n', "jobs/x.toml: job 1: name: expected a non-empty string, found nothing"),
        ("[[jobs]]\nkind = 'tms'\n", 'jobs/x.toml: jobs: unknown top-level key (did you mean "job"? write [[job]] tables)'),
        ("[[job]\n", "jobs/x.toml: not valid TOML: "),
        (tms_job() + tms_job(), 'jobs/x.toml: job 2 ("tiny"): name: duplicate job name (also job 1)'),
        (tms_job(probability=None, extra="feature_probability = [0.1, 0.2]"),
         'jobs/x.toml: job 1 ("tiny"): feature_probability: expected one value per feature (5), found 2'),
    ],
)
def test_bad_input_names_file_job_key_expected_and_found(text, expected):
    message = error_of(text)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SpecError, match=r"nope\.toml: no such job file"):
        load_file(tmp_path / "nope.toml")


def test_every_shipped_job_file_validates():
    from .helpers import REPO

    files = sorted((REPO / "jobs").glob("*.toml"))
    assert files, "jobs/ holds the job files users run"
    for path in files:
        assert load_file(path), path
