"""Control of the OpenBLAS that numpy uses, at run time, through ctypes: its thread count and its kernel's
name.

numpy's wheels bundle OpenBLAS under a prefixed name (scipy_openblas64_...); the library is found among the
shared objects this process has loaded (/proc/self/maps, Linux), the first time it is asked for.
Where it cannot be found (another BLAS, another system), every function answers None and changes nothing.
"""

import ctypes

_PREFIXES = (('scipy_openblas', '64_'), ('openblas', '64_'), ('scipy_openblas', ''), ('openblas', ''))
_found = []  # [(library, prefix, suffix)] once looked up


def _library():
    """(library, prefix, suffix) of the loaded OpenBLAS, or None."""
    if not _found:
        _found.append(_look_up())
    return _found[0]


def _look_up():
    import numpy  # noqa: F401  (loads numpy's OpenBLAS into the process)

    try:
        with open('/proc/self/maps') as f:
            paths = sorted({line.split()[-1] for line in f if 'openblas' in line.lower() and '/' in line})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in _PREFIXES:
            if getattr(lib, f'{prefix}_get_num_threads{suffix}', None) is not None:
                return lib, prefix, suffix
    return None


def _function(name):
    found = _library()
    if found is None:
        return None
    lib, prefix, suffix = found
    return getattr(lib, f'{prefix}_{name}{suffix}', None)


def set_threads(n):
    """Set OpenBLAS's number of threads. Returns the previous number, or None where OpenBLAS is not found.
    The engine's two-thread paths want 1: each of their threads then runs its products alone, and OpenBLAS's
    idle threads do not spin on the other core."""
    get, put = _function('get_num_threads'), _function('set_num_threads')
    if get is None or put is None:
        return None
    previous = int(get())
    put(ctypes.c_int(n))
    return previous


def get_threads():
    """OpenBLAS's number of threads, or None."""
    get = _function('get_num_threads')
    return None if get is None else int(get())


def _string(name):
    """The text an OpenBLAS function of no arguments returns, or None."""
    f = _function(name)
    if f is None:
        return None
    f.restype = ctypes.c_char_p
    return f().decode('ascii', 'replace')


def core_name():
    """The name of the CPU kernel OpenBLAS chose (e.g. 'SkylakeX', 'Haswell', 'Zen'), or None."""
    return _string('get_corename')


def config():
    """OpenBLAS's build description (version, threading, ...), or None."""
    return _string('get_config')
