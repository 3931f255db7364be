"""Writing safely, for every script: the one check of outputs before any work (check_writable, check_folder),
and atomic writing, each problem in one line (the one bounded reader of inputs is util/reading.py).

Every file written here (weights, checkpoints, lookup tables, logs, figures, pages) goes to a temporary file
in the same folder, flushed to disk and renamed into place, so a crash at any moment leaves either the old
file or the new one, never half of one. (A run folder's .lock is opened elsewhere, in run_folder.py: it is
locked, never written.) The .npz format (arrays, JSON metadata, never pickle) is util/npz.py's; the
checkpoint's schema util/checkpoint.py's.
"""

import contextlib
import errno
import fcntl
import os
import stat
import sys
import tempfile

from util import kinds
from util.errors import UserError


class ModelFileError(UserError, ValueError):
    """A weights, checkpoint or output file that cannot be used; the message says what is wrong. errno: the
    system's error number where a write failed (ENOSPC a full disk, EPERM or EACCES no permission), else
    None."""

    def __init__(self, message, errno=None):
        super().__init__(message)
        self.errno = errno


def _umask():
    """The process's umask (read without changing it for longer than the call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def writes_in_place(path):
    """True for an output that is not a file to replace: a device, a pipe or a socket (/dev/null, /dev/full, a
    FIFO), or a name reached through /proc (/dev/stdout, /dev/fd/1). Renaming a temporary file over such a
    name would replace the device or the link itself (as root, /dev/null), so it is opened and written as it
    is."""
    path = os.path.abspath(os.fspath(path))
    for _ in range(40):  # follow the name's links, one at a time
        folder = os.path.realpath(os.path.dirname(path))
        if folder == '/proc' or folder.startswith('/proc/'):
            return True
        if not os.path.islink(path):
            break
        path = os.path.join(folder, os.readlink(path))
    try:
        return not stat.S_ISREG(os.stat(path).st_mode) and not os.path.isdir(path)
    except OSError:
        return False  # no such file yet (or a broken link): a new file


def own_descriptor(path):
    """1 or 2 where path is this process's stdout or stderr (/dev/stdout, /dev/fd/2, ...), else None."""
    for fd in (1, 2):
        try:
            if os.path.samestat(os.stat(path), os.fstat(fd)):
                return fd
        except OSError:
            pass
    return None


def _write_in_place(path, write):
    """Open path (a device, pipe, ...) for writing and call write(f) on it; no temporary, no rename. stdout or
    stderr itself is written through its descriptor, as the shell opened it: `>> file` appends, never
    truncates."""
    fd = own_descriptor(path)
    try:
        if fd is not None:
            (sys.stdout if fd == 1 else sys.stderr).flush()
            with os.fdopen(os.dup(fd), 'wb') as f:
                write(f)
            return
        with open(path, 'wb') as f:
            write(f)
    except OSError as e:
        if fd == 1 and isinstance(e, BrokenPipeError):
            raise  # whoever read stdout went away (| head): cli.run stops quietly
        raise ModelFileError(f'cannot write {path}: {e.strerror or e}', e.errno) from None


def atomic_write(path, write):
    """Call write(f) on a temporary binary file beside path, fsync it, and rename it to path.

    Raises ModelFileError with a one-line reason when the folder cannot be made or written (a full disk, a
    read-only file system, a parent that is a file); the previous file at path is then left as it was.
    A device or pipe (writes_in_place) is written directly instead: it is not a file that could be replaced.
    A link is followed: its target is replaced, the link kept (target(path)).
    """
    path = os.fspath(path)
    if writes_in_place(path):
        return _write_in_place(path, write)
    real = target(path)
    folder = os.path.dirname(real)
    made = missing_folders(folder)
    tmp, written = None, False
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(real) + '.', suffix='.tmp')
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, real)
        written = True
    except OSError as e:
        raise ModelFileError(f'cannot write {path}: {e.strerror or e}', e.errno) from None
    finally:
        if not written:  # an error or a signal: the temporary and the folders made for it go
            if tmp is not None and os.path.exists(tmp):
                with contextlib.suppress(OSError):  # (a folder made append-only since it was checked)
                    os.remove(tmp)
            remove_empty(made)
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def target(path):
    """The file that writing path replaces: a link's target (also a link to nothing yet), and a path through a
    folder and '..' taken as the system takes it (no folder made on the way)."""
    return os.path.realpath(path)


def same_file(a, b):
    """Whether two output names are one file (/dev/null aside: it takes anything, any number of times)."""
    if os.devnull in (a, b):
        return False
    try:
        return os.path.realpath(a) == os.path.realpath(b) or os.path.samefile(a, b)
    except OSError:
        return False


def write_text(path, text):
    """Write a str as UTF-8, atomically."""
    atomic_write(path, lambda f: f.write(text.encode('utf-8')))


def check_writable(path, what='output', kind=None, inputs=(), *, in_place=True, fix='give another name'):
    """The one check of an output file, before any work: refuse what could not be written, or should not be.

    Refused: an empty name; a folder; a read-only file; a path too long for the system (with the temporary
    name atomic_write first writes it under); a parent that is a file, or a folder that cannot be created or
    written; a device, pipe or socket where in_place is False (a run's files are read back, so they must be
    files), else one that cannot be written. Also a file this command reads (one of inputs, under any name),
    and an existing file that is not of the kind written (kind: a kinds.Kind, e.g. kinds.SVG), so that a
    log, a text or a model given as the output by mistake is never lost; and a name that ends as another
    format's (kinds.misnamed). A missing folder is made when the file is written (atomic_write), not here,
    so that a command refused later leaves nothing behind. fix: what to do, ending each message. Raises
    ModelFileError."""
    path = os.fspath(path)
    if not path:
        raise ModelFileError(f'the {what} path is empty: give a file name')
    if os.path.isdir(path):
        raise ModelFileError(f'{what} {path} is a folder: {fix}')
    if not in_place and os.path.islink(path):
        raise ModelFileError(f'{what} {path} is not a file but a link (to {os.readlink(path)}): {fix}')
    if path.endswith(os.sep):
        raise ModelFileError(f'{what} {path} names a folder: give a file name')
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ModelFileError(f'{what} {path} is a link that leads back to itself: {fix}') from None
    if os.path.lexists(path) and writes_in_place(path):
        if not in_place:
            raise ModelFileError(f'{what} {path} is not a file (a pipe, a device or a link to one): {fix}')
        if not os.access(path, os.W_OK):
            raise ModelFileError(f'{what} {path} cannot be written: it is not a writable file or device')
        if _is_own_stdin_pipe(path):
            raise ModelFileError(f'{what} {path} is the pipe this command reads as its input: {fix}')
        if os.path.isfile(path) and own_descriptor(path) is None:  # a file reached through /proc, not as
            _check_replaceable(path, path, what, kind, inputs, fix)  # stdout (/dev/stdin < notes.txt)
        _check_not_an_input(path, path, what, inputs, fix)
        return
    real = target(path)
    if os.path.isfile(real):
        _check_replaceable(path, real, what, kind, inputs, fix)
    folder = os.path.dirname(real)
    made = missing_folders(folder)  # the folders still to make: checked, not made
    existing = os.path.dirname(made[-1]) if made else folder
    if not os.path.isdir(existing):
        raise ModelFileError(
            f'{what} folder {folder} cannot be made: part of its path is a file, not a folder'
        )
    check_folder(existing, what, flags=not made)  # (a folder made for it has no flags)
    _check_length(real, existing, what)
    misnamed = kind and kinds.misnamed(path, kind)  # (curve.png: a file that no viewer would open)
    if misnamed:
        raise ModelFileError(f'{what} {path}: {misnamed}')


def _is_own_stdin_pipe(path):
    """Whether path is the pipe this process's stdin reads from (what is written there would be lost, or
    wait for ever once the pipe is full)."""
    try:
        here, stdin = os.stat(path), os.fstat(0)
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(here.st_mode) and os.path.samestat(here, stdin)


def _check_replaceable(path, real, what, kind, inputs, fix):
    """An existing output file (real: the file itself, path: its name as given) may be replaced: writable, not
    append-only or immutable, not an input, of the kind written (check_writable)."""
    try:  # opened for writing, not truncated: the system's own answer, which chattr's flags are part of
        os.close(os.open(real, os.O_WRONLY | os.O_NONBLOCK))
    except OSError as e:
        if e.errno == errno.EACCES:
            raise ModelFileError(
                f'{what} {path} is read-only: make it writable (chmod u+w), or {fix}'
            ) from None
        raise ModelFileError(
            f'{what} {path} cannot be replaced ({e.strerror}; an append-only or immutable file: chattr -a -i '
            f'it), or {fix}'
        ) from None
    _check_not_an_input(path, real, what, inputs, fix)
    if kind is None:
        return
    if not kinds.of_kind(
        os.path.getsize(real), head(real, kinds.HEAD_BYTES), tail(real, kinds.TAIL_BYTES), kind
    ):
        raise ModelFileError(
            f'{what} {path} exists and is not {kind.name}: writing it would replace it; {fix}, or remove it '
            'first'
        )


def _check_not_an_input(path, real, what, inputs, fix):
    """Refuse an output (real: what it leads to) that is a file or a pipe this command reads, under any name
    (a terminal may be both)."""
    for other in inputs:
        try:
            shared = other is not None and os.path.samefile(real, other)
            kind = os.stat(real).st_mode
        except (OSError, ValueError):
            continue
        if shared and (stat.S_ISREG(kind) or stat.S_ISFIFO(kind)):
            raise ModelFileError(
                f'{what} {path} is also read by this command: writing it would replace it; {fix}'
            )


def temporary_name(path):
    """The longest name atomic_write gives path's temporary file: '.' + its name + '.' + 8 characters +
    '.tmp'."""
    return '.' + os.path.basename(path) + '.' + 8 * 'x' + '.tmp'


def _check_length(path, existing, what):
    """Refuse a path the system cannot hold, with its temporary's name: its limits on a path and on a name."""
    try:
        path_max, name_max = os.pathconf(existing, 'PC_PATH_MAX'), os.pathconf(existing, 'PC_NAME_MAX')
    except (OSError, ValueError):  # the system does not say: nothing to check against
        return
    temporary = os.path.join(os.path.dirname(path), temporary_name(path))
    name, whole = len(os.fsencode(os.path.basename(temporary))), len(os.fsencode(temporary))
    if name > name_max:
        why = f'its name is {name} bytes as it is first written, the system allows {name_max}'
    elif whole >= path_max:
        why = f'{whole} bytes as it is first written, the system allows {path_max - 1}'
    else:
        return
    raise ModelFileError(f'{what} {path} is a path too long for this system ({why}): choose a shorter path')


def remove_empty(folders):
    """Remove the folders that are empty, in the order given (the deepest first: each is empty once those
    below it go)."""
    for path in folders:
        try:
            os.rmdir(path)
        except OSError:
            pass


def missing_folders(folder):
    """The folders of a path that do not exist yet, the deepest first."""
    made, path = [], os.path.abspath(folder)
    while not os.path.lexists(path):
        made.append(path)
        path = os.path.dirname(path)
    return made


def head(path, n):
    """The first n bytes of a file (fewer if it is shorter). Raises ModelFileError if it cannot be read."""
    return _part(path, n, at_end=False)


def tail(path, n):
    """The last n bytes of a file (fewer if it is shorter). Raises ModelFileError if it cannot be read."""
    return _part(path, n, at_end=True)


def _part(path, n, at_end):
    try:
        with open(path, 'rb') as f:
            if at_end:
                f.seek(max(0, os.fstat(f.fileno()).st_size - n))
            return f.read(n)
    except OSError as e:
        raise ModelFileError(f'{path} cannot be read: {e.strerror or e}') from None


def _probe(folder):
    """Create a file in folder, and let it go: an unnamed one where the system makes them (O_TMPFILE), so that
    nothing is left behind even by a process killed meanwhile; else a named one, removed at once."""
    unnamed = getattr(os, 'O_TMPFILE', 0)
    if unnamed:
        try:
            os.close(os.open(folder, unnamed | os.O_WRONLY, 0o600))
            return
        except OSError as e:
            if e.errno not in (
                errno.EOPNOTSUPP,
                errno.EISDIR,
                errno.EINVAL,
            ):  # kept: this file system has none
                raise
    fd, probe = tempfile.mkstemp(dir=folder, prefix='.write-test.', suffix='.tmp')
    os.close(fd)
    os.remove(probe)


FS_IOC_GETFLAGS = 0x80086601  # Linux: a file's chattr flags
FLAGS = ((0x10, 'immutable', 'i'), (0x20, 'append-only', 'a'))  # FS_IMMUTABLE_FL, FS_APPEND_FL


def _check_flags(folder, what):
    """Refuse a folder marked append-only or immutable (chattr +a, +i): a file can be created in an
    append-only folder but neither replaced nor removed, so every write (a temporary file renamed over the
    file) would fail after the work, and leave its temporary there. A system or file system without the
    flags passes."""
    if not sys.platform.startswith('linux'):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return  # a folder that can be written, not read (mode 0333): its flags are not ours to see
    try:
        flags = int.from_bytes(fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))[:4], sys.byteorder)
    except OSError:
        return  # no such flags here (ENOTTY, EOPNOTSUPP)
    finally:
        os.close(fd)
    for bit, name, letter in FLAGS:
        if flags & bit:
            raise ModelFileError(
                f'{what}: the folder {folder} is {name} (chattr +{letter}), so no file in it can be '
                f'replaced; chattr -{letter} {folder}, or give another folder'
            )


def check_folder(folder, what='output folder', *, flags=True):
    """Make sure folder exists (creating it) and that a file can be created in it, and, with flags, replaced
    (_check_flags). Raises ModelFileError."""
    folder = os.fspath(folder)
    if not folder:
        raise ModelFileError(f'the {what} is empty: give a folder name')
    try:
        os.makedirs(folder, exist_ok=True)
        if flags:
            _check_flags(folder, what)
        _probe(folder)
    except FileExistsError:
        raise ModelFileError(f'{what} {folder} cannot be made: a file of that name is in the way') from None
    except NotADirectoryError:
        raise ModelFileError(
            f'{what} {folder} cannot be made: part of its path is a file, not a folder'
        ) from None
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            raise ModelFileError(
                f'{what} {folder} is a path too long for this system: choose a shorter path'
            ) from None
        raise ModelFileError(f'{what} {folder} cannot be written: {e.strerror or e}') from None
