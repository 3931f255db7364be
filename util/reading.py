"""Reading safely, for every script: the one bounded reader of inputs (read_bytes), and the one line for an OS
error met reading a file (read_error). Writing is util/files.py's."""

import os
import select
import stat

from util import memory, run_folder
from util.files import ModelFileError


def stream_limit():
    """The most bytes read into memory from a stream that cannot be read twice (a pipe, /dev/stdin, a FIFO): a
    quarter of the machine's physical memory (2**38 where the system does not say)."""
    have = memory.machine_bytes()
    return 1 << 38 if have is None else have // 4


def not_yet_written(path):
    """For a missing file in a run's best/ folder that the run has not written yet: when it comes."""
    folder = os.path.dirname(os.path.abspath(path))
    run = os.path.dirname(folder)
    if (
        os.path.basename(folder) != run_folder.BEST
        or not os.path.exists(os.path.join(run, run_folder.CHECKPOINT))
        or os.path.exists(os.path.join(folder, run_folder.CHECKPOINT))  # best/ was written
    ):
        return ''
    return (
        f': the run in {run} has no {run_folder.BEST}/ yet (a run writes it at the end of an epoch with a '
        'finite validation loss): use its own files until then'
    )


def read_error(e, path, what, hint=''):
    """The one line for an OSError met reading path, a `what` ('weights file', 'lookup table', ...); hint:
    what to do, added where the file is missing."""
    if isinstance(e, FileNotFoundError):
        return f'{what} {path} does not exist' + (not_yet_written(path) or hint)
    if isinstance(e, IsADirectoryError):
        return f'{what} {path} is a folder, not a file'
    if isinstance(e, PermissionError):
        return f'{what} {path} cannot be read: permission denied'
    return f'{what} {path} cannot be read: {e.strerror or e}'


def read_bytes(path, what, limit=None, *, error=ModelFileError, hint='', first=None, opened=None):
    """Every byte of path, read once, bounded: the one reader of every small input (a lookup table, a training
    log, the original's weights, weights from a pipe) and of every stream that cannot be read twice (a corpus
    from a pipe). More than limit bytes (default: a quarter of the machine's memory, as for any stream) is
    refused, and so is a file whose first 64 KiB `first` (a function that raises) finds to be no such file, so
    that an endless stream of something else (/dev/zero) is refused at once. Every problem raises error (a
    UserError kind) in one line. limit: a whole number of MiB. opened: path already open (a FIFO, whose writer
    would lose what it wrote if it were opened twice), read and closed here."""
    too_large = (
        f'is larger than {limit >> 20} MiB, more than any {what}{hint or ": give another file"}'
        if limit is not None
        else 'is more than a quarter of this machine\'s memory: save it to a file and give that'
    )
    limit = stream_limit() if limit is None else limit
    blocks, size = [], 0
    try:
        with opened if opened is not None else open(path, 'rb') as f:
            read = _reader(f)
            while True:
                block = read(min(1 << 16 if not blocks else 1 << 24, limit + 1 - size))
                if first is not None and not blocks:
                    first(block)
                if not block:
                    return b''.join(blocks)
                blocks.append(block)
                size += len(block)
                if size > limit:
                    raise error(f'{what} {path} {too_large}')
    except OSError as e:
        raise error(read_error(e, path, what, hint)) from None
    except MemoryError:  # more than the memory this process may use
        raise error(f'{what} {path} is too large for the memory available: give another file') from None


def _reader(f):
    """read(n) for an open file: f.read for a file; for a stream (a pipe, a FIFO, a terminal), what has come,
    waited for in turns of half a second. A signal may reach another thread of the process (OpenBLAS's), which
    does not interrupt a read that waits in the main thread: between two turns, Python acts on it (Ctrl-C,
    SIGTERM)."""
    if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        return f.read

    def read(n):
        while not select.select([f], [], [], 0.5)[0]:
            pass
        return os.read(f.fileno(), n)

    return read
