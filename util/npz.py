"""The .npz files of this repo (weights, checkpoints): named arrays, and metadata as a JSON string stored in
them as a 0-d unicode array named 'meta'. Written atomically, read with allow_pickle=False and checked: never
pickle, one line for whatever is wrong (util/files.py's ModelFileError)."""

import io
import json
import os
import stat

import numpy as np

from util import files, reading


def save(path, arrays, meta=None):
    """Write named arrays (and a JSON-able dict `meta`) to path atomically."""
    arrays = dict(arrays)
    if meta is not None:
        arrays['meta'] = np.array(json.dumps(meta))
    files.atomic_write(path, lambda f: np.savez(f, **arrays))


def _seekable(path, what):
    """path itself for a file, or its bytes in memory for a stream that cannot be read twice (a pipe,
    `<(cat w.npz)`, /dev/stdin): np.load seeks in a zip file."""
    try:
        if stat.S_ISREG(os.stat(path).st_mode):
            return path
    except OSError:
        return path  # np.load says what is wrong
    return io.BytesIO(reading.read_bytes(path, f'{what} file', first=_zip_start(path, what)))


def _zip_start(path, what):
    """A check of the first bytes of an .npz stream (a zip file starts with PK)."""

    def check(block):
        if block[:2] != b'PK':
            raise files.ModelFileError(
                f'{what} file {path} is not an .npz file (it is another kind of file, or damaged)'
            )

    return check


def load(path, what, only_meta=False):
    """Read every array of an .npz file without ever running pickle. Returns (arrays, meta dict).
    only_meta reads the metadata alone (the arrays are then {})."""
    try:
        source = _seekable(path, what)
        z = np.load(source, allow_pickle=False)
        if isinstance(z, np.ndarray):  # np.load also reads a bare .npy array
            raise files.ModelFileError(
                f'{what} file {path} is a single .npy array, not an .npz file of named arrays'
            )
        with z:
            twice = _named_twice(z.zip.namelist())
            if twice:
                raise files.ModelFileError(
                    f'{what} file {path} holds two arrays named {twice}: it is damaged or was not '
                    'written by numpy.savez (which names each array once)'
                )
            names = [k for k in z.files if k == 'meta'] if only_meta else z.files
            arrays = {k: z[k] for k in names}
    except files.ModelFileError:
        raise
    except FileNotFoundError:
        raise files.ModelFileError(
            f'{what} file {path} does not exist{reading.not_yet_written(path)}'
        ) from None
    except IsADirectoryError:
        raise files.ModelFileError(f'{what} file {path} is a folder, not a file') from None
    except PermissionError:
        raise files.ModelFileError(f'{what} file {path} cannot be read: permission denied') from None
    except ValueError as e:
        if 'Object arrays' in str(e):
            raise files.ModelFileError(
                f'{what} file {path} holds arrays of Python objects, which are never loaded '
                '(they need pickle): save plain numeric arrays instead'
            ) from None
        first = source.getvalue()[:1] if isinstance(source, io.BytesIO) else None
        if first == b'\x80' or first is None and files.head(path, 1) == b'\x80':  # the mark of a pickle
            raise files.ModelFileError(
                f'{what} file {path} is a pickle file, which is never loaded: save the arrays '
                'with numpy.savez instead'
            ) from None
        raise files.ModelFileError(
            f'{what} file {path} is not an .npz file (it is another kind of file, or damaged)'
        ) from None
    except Exception as e:  # zipfile, EOF, OSError, ...: anything unreadable
        raise files.ModelFileError(
            f'{what} file {path} is corrupt or not an .npz file ({type(e).__name__})'
        ) from None
    meta = {}
    if 'meta' in arrays:
        m = arrays.pop('meta')
        try:
            meta = json.loads(str(m[()])) if m.shape == () and m.dtype.kind == 'U' else None
        except (ValueError, RecursionError):
            meta = None
        if not isinstance(meta, dict):
            raise files.ModelFileError(f'{what} file {path} has unreadable metadata')
    return arrays, meta


def _named_twice(members):
    """The first name that two members of a zip file share (numpy would load the last of them), or None."""
    seen = set()
    for name in members:
        if name in seen:
            return name[:-4] if name.endswith('.npy') else name
        seen.add(name)
    return None
