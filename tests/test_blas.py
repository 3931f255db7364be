"""blas.py: OpenBLAS's thread count and kernel name read and set at run time, and None where it is not
found."""

import builtins
import os
import subprocess
import sys

import pytest

from util import blas
from helpers import ROOT

needs_openblas = pytest.mark.skipif(blas.get_threads() is None, reason="numpy's BLAS here is not OpenBLAS")


@needs_openblas
def test_set_threads_returns_the_previous_count_and_sets_the_new_one():
    previous = blas.get_threads()
    try:
        assert blas.set_threads(1) == previous
        assert blas.get_threads() == 1
        assert blas.set_threads(previous) == 1
        assert blas.get_threads() == previous
    finally:
        blas.set_threads(previous)


@needs_openblas
def test_the_thread_count_read_is_the_one_the_environment_asked_for():
    code = 'import sys; sys.path.insert(0, sys.argv[1]); from util import blas; print(blas.get_threads())'
    r = subprocess.run(
        [sys.executable, '-c', code, ROOT],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, OPENBLAS_NUM_THREADS='1'),
    )
    assert r.returncode == 0 and r.stdout == '1\n', r.stderr


@needs_openblas
def test_the_kernel_name_is_the_one_in_the_build_description():
    name, config = blas.core_name(), blas.config()
    assert name and config.startswith('OpenBLAS')
    assert name in config.split()  # e.g. '... DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64'


def test_without_openblas_every_function_answers_none_and_changes_nothing(monkeypatch):
    real_open = builtins.open

    def no_maps(path, *args, **kwargs):
        if path == '/proc/self/maps':
            raise OSError('not Linux')
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(blas, '_found', [])
    monkeypatch.setattr(builtins, 'open', no_maps)
    assert blas.set_threads(1) is None
    assert blas.get_threads() is None and blas.core_name() is None and blas.config() is None
    assert blas._found == [None]  # looked up once
