"""A training run's folder (the --out of _training.py): its files, its lock, and the checks made before a
training writes in it.

    ShakespeareOptimizer.npz  the checkpoint: weights, RMSprop state, carried hidden state, moving average,
                              and as JSON the settings, the position in the data, the random state, the
                              lookup table, every row of the log and the best epoch so far. It is the commit
                              point.
    ShakespeareNet.npz        the weights to sample from     }  derived from the checkpoint, written after
    ShakespeareLookup.json    the lookup table               }  it, and written again by Run.write_derived if
    training_log.csv          one row per epoch and per stop }  a stop or a full disk left them behind it
    best/                     the same files for the best epoch so far (its checkpoint written last)
    .lock                     locked by the process that trains in the folder

One writer at a time (Lock); before any work, every file the run writes is checked writable (check_outputs),
so that a refusal comes before the training, not at its first checkpoint. Errors are raised as
files.ModelFileError, with a one-line reason.
"""

import contextlib
import errno
import fcntl
import os
import re
import stat

from util import files

WEIGHTS, CHECKPOINT, LOOKUP, LOG, BEST, LOCK = (
    'ShakespeareNet.npz',
    'ShakespeareOptimizer.npz',
    'ShakespeareLookup.json',
    'training_log.csv',
    'best',
    '.lock',
)
MAX_LOG_BYTES = 64 << 20  # the most of a training log read: 64 MiB would hold about a million epochs

# The temporary files of files.atomic_write are named '.' + the file's name + '.' + 8 random characters +
# '.tmp' (tempfile.mkstemp; files.temporary_name): only those of the run's own files are ever removed. (Not
# files.check_folder's named probes, where a file system has no unnamed files: a process that is about to find
# the folder locked may be making one.)
_TEMPORARY = re.compile(
    r'\.(%s)\.[a-z0-9_]{8}\.tmp' % '|'.join(map(re.escape, (WEIGHTS, CHECKPOINT, LOOKUP, LOG)))
)


class Busy(Exception):
    """Another process holds the run folder's lock."""


class Moved(files.ModelFileError):
    """The run folder was moved or removed while the training ran: it is no longer the folder locked."""


# --- the folder: its lock, its temporaries, its files -------------------------------------------------------


class Lock:
    """An exclusive lock on a run folder, taken before anything in it is read. The system drops it when the
    process ends, however it ends, so a killed run never blocks its folder. Raises Busy if another process
    holds it, OSError if the lock file cannot be opened."""

    made = ()  # the folders above the run folder made for it, the deepest first

    def __init__(self, folder):
        self.folder, self.path = folder, os.path.join(folder, LOCK)
        self.created = not os.path.lexists(self.path)  # the lock file is this process's own
        for _ in range(5):
            f = _open_lock(self.path)
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                raise Busy(folder) from None
            try:  # still the file of that name (not one removed meanwhile)?
                if os.path.samestat(os.fstat(f.fileno()), os.stat(self.path)):
                    self.file, self.where = f, os.stat(folder)
                    return
            except FileNotFoundError:
                pass
            f.close()
        raise Busy(folder)

    def check(self, saved=True):
        """Raise Moved unless the folder at this path is still the one locked, with its lock file in it (a
        folder moved, removed or replaced while the training ran would otherwise be made again, unlocked)."""
        try:
            same = os.path.samestat(os.stat(self.folder), self.where) and os.path.samestat(
                os.stat(self.path), os.fstat(self.file.fileno())
            )
        except OSError:
            same = False
        if not same:
            what = (
                'resume the run from where the folder now is (--out that folder --resume)'
                if saved
                else 'no checkpoint had been saved yet: run the same command again'
            )
            raise Moved(
                f'the run folder {self.folder} was moved, removed or replaced while this training ran, so '
                f'nothing more was written; {what}'
            )

    def release(self):
        self.file.close()

    def give_up(self):
        """Release the lock of a run refused before it wrote anything: its lock file goes too, if this process
        made it, so that a folder that was there is left as it was."""
        if self.created:
            with contextlib.suppress(OSError):  # gone, or a folder that does not let it go
                os.remove(self.path)
        self.file.close()

    def discard(self):
        """Remove the lock file and the folder, if nothing else is in it (for a folder this process made and
        then wrote nothing into), with the folders above it that were made for it (made), and release the
        lock."""
        remove_temporaries(self.folder)
        os.remove(self.path)
        files.remove_empty([self.folder, *self.made])
        self.file.close()


def _open_lock(path):
    """The lock file, opened without following a link and only if it is a plain file: a link could lead out of
    the folder (and create a file there), a pipe is no file to lock."""
    fix = 'but the run keeps its lock file there: remove it, or choose another run folder'
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise files.ModelFileError(f'{path} is a link, {fix}') from None
        if e.errno == errno.EISDIR:
            raise files.ModelFileError(f'{path} is a folder, {fix}') from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise files.ModelFileError(f'{path} is not a file (a pipe, a device), {fix}')
    return os.fdopen(fd, 'a+')


def remove_temporaries(folder):
    """Remove the temporary files that a killed process of this repo left in folder and in its best/; nothing
    else (a user's own `.notes.tmp` stays, and so does a folder of any name)."""
    for where in (folder, os.path.join(folder, BEST)):
        if os.path.isdir(where):
            for entry in os.scandir(where):
                if _TEMPORARY.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    os.remove(entry.path)


def check_outputs(folder):
    """Refuse, before any work, a run folder in which a file the run writes could not be written, or should
    not be: each one goes through files.check_writable, which also refuses a pipe or a device in its place (or
    a link to one: reading it could wait for ever, writing it would lose the file). Raises ModelFileError."""
    best = os.path.join(folder, BEST)
    if os.path.islink(best):
        raise files.ModelFileError(
            f'{best} is a link (to {os.readlink(best)}), but the run keeps its best epoch in a folder of its '
            'own there: move it away or choose another run folder'
        )
    if os.path.lexists(best) and not os.path.isdir(best):
        raise files.ModelFileError(
            f'{best} is a file, but the run keeps its best epoch in a folder of that name: '
            'move it away or choose another run folder'
        )
    paths = [os.path.join(folder, name) for name in (CHECKPOINT, WEIGHTS, LOOKUP, LOG)]
    paths += [os.path.join(best, name) for name in (CHECKPOINT, WEIGHTS, LOOKUP)]
    for path in paths:
        files.check_writable(
            path, 'run file', in_place=False, fix='move it away or choose another run folder'
        )


def holds_run(folder):
    """Whether folder is a run's: it holds a training checkpoint, or the lock of a run that has none yet."""
    return any(os.path.exists(os.path.join(folder, name)) for name in (CHECKPOINT, LOCK))


def parent_run(folder):
    """The run folder whose best/ folder is `folder`, or None: that run writes it, so no other may."""
    real = os.path.realpath(folder)
    parent = os.path.dirname(real)
    if os.path.basename(real) == BEST and holds_run(parent):
        return parent
    return None


def stray_files(folder):
    """The run's file names present in a folder that holds no checkpoint (files of no run that can
    continue)."""
    names = [WEIGHTS, LOOKUP, LOG, *(f'{BEST}/{name}' for name in (WEIGHTS, CHECKPOINT, LOOKUP))]
    return [name for name in names if os.path.lexists(os.path.join(folder, name))]


def fix_for(error):
    """What to do about a file the run could not write, by its errno: free space, or give permission."""
    if error.errno in (errno.EPERM, errno.EACCES, errno.EROFS):
        return (
            'give the run write permission there (chmod u+w; chattr -a, -i for an append-only or immutable '
            'file)'
        )
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return 'free some space'
    return 'fix that'
