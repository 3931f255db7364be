"""Fuzzing the three loaders (lookup table, weights, checkpoint): a clean error or a valid load, never a crash
or a hang."""

import io
import zipfile

from hypothesis import HealthCheck, given, settings, strategies as st
import numpy as np
import pytest

import data
from optimizer import RMSprop
from util import checkpoint, files
from util.weights import load_params

from helpers import write_bytes


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def mutate(raw, edits):
    b = bytearray(raw)
    for pos, value in edits:
        if b:
            b[pos % len(b)] = value
    return bytes(b)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_fuzz_lookup_random_bytes(tmp_path, raw):
    try:
        chars = data.load_lookup(write_bytes(tmp_path / 'l.json', raw))
    except data.CorpusError:
        return
    assert chars and all(isinstance(c, str) and len(c) == 1 for c in chars)


@FUZZ
@given(
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.integers(0, 10**6),
)
def test_fuzz_weights_and_checkpoint_mutations(made, tmp_path, edits, cut):
    for name in ('ShakespeareNet.npz', 'ShakespeareOptimizer.npz'):
        raw = mutate((made / 'run' / name).read_bytes(), edits)
        if cut % 3 == 0:
            raw = raw[: cut % max(len(raw), 1)]
        path = write_bytes(tmp_path / name, raw)
        try:
            if name == 'ShakespeareNet.npz':
                params, _ = load_params(path)
            else:
                params, _, _, _, _ = checkpoint.load(path, lambda p: RMSprop(p))
        except files.ModelFileError:
            continue
        assert all(np.all(np.isfinite(p)) for p in params.values())


@FUZZ
@given(raw=st.binary(max_size=2000))
def test_fuzz_weights_random_bytes_in_a_zip(tmp_path, raw):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as z:
        z.writestr('dense.W.npy', raw)
    with pytest.raises(files.ModelFileError):
        load_params(write_bytes(tmp_path / 'w.npz', buf.getvalue()))
