"""A training run's folder (the --out of _training.py): one writer at a time, and a whole checkpoint whatever
happens (a kill at any moment, a full disk, a second process started beside the first).

    ShakespeareOptimizer.npz  the checkpoint: weights, RMSprop state, carried hidden state, moving average, and
                              as JSON the settings, the position in the data, the random state, the lookup table,
                              every row of the log and the best epoch so far. It is the commit point.
    ShakespeareNet.npz        the weights to sample from     }  derived from the checkpoint, written after it,
    ShakespeareLookup.json    the lookup table               }  and written again by Run.recover if a stop or a
    training_log.csv          one row per epoch and per stop }  full disk left them behind it
    best/                     the same files for the best epoch so far (its checkpoint written last)
    .lock                     locked by the process that trains in the folder

Every file is written to a temporary file and renamed into place (files.atomic_write), so the checkpoint is
the old one or the new one; it holds everything a resume needs, so the folder always holds a whole state, and
what the other files lack is completed from it. A Stopper turns the signals that end a training into a
checkpoint. Nothing here prints: errors are raised as files.ModelFileError, with a one-line reason.
"""

import csv
import errno
import fcntl
import io
import json
import os
import re
import signal

import numpy as np

import data
import engine
from util import checkpoint, cli, files, weights
from util.checkpoint import LOG_HEADER, in_order
from util.settings import DEFAULTS

WEIGHTS, CHECKPOINT, LOOKUP, LOG, BEST, LOCK = (
    'ShakespeareNet.npz',
    'ShakespeareOptimizer.npz',
    'ShakespeareLookup.json',
    'training_log.csv',
    'best',
    '.lock',
)

# The temporary files of files.atomic_write are named '.' + the file's name + '.' + 8 random characters + '.tmp'
# (tempfile.mkstemp): only those of the run's own files are ever removed. (Not files.check_folder's probes: a
# process that is about to find the folder locked may be making one.)
_TEMPORARY = re.compile(
    r'\.(%s)\.[a-z0-9_]{8}\.tmp' % '|'.join(map(re.escape, (WEIGHTS, CHECKPOINT, LOOKUP, LOG)))
)


class Busy(Exception):
    """Another process holds the run folder's lock."""


class Incomplete(files.ModelFileError):
    """The checkpoint was committed but a file derived from it could not be written (Run.recover completes it)."""


class Moved(files.ModelFileError):
    """The run folder was moved or removed while the training ran: it is no longer the folder locked."""


# --- the folder: its lock, its temporaries, its files ------------------------------------------------------------


class Lock:
    """An exclusive lock on a run folder, taken before anything in it is read. The system drops it when the
    process ends, however it ends, so a killed run never blocks its folder. Raises Busy if another process holds
    it, OSError if the lock file cannot be opened."""

    def __init__(self, folder):
        self.folder, self.path = folder, os.path.join(folder, LOCK)
        for _ in range(5):
            f = open(self.path, 'a+')
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

    def discard(self):
        """Remove the lock file and the folder, if nothing else is in it (for a folder this process made and then
        wrote nothing into), and release the lock."""
        remove_temporaries(self.folder)
        os.remove(self.path)
        try:
            os.rmdir(self.folder)
        except OSError:
            pass
        self.file.close()


def remove_temporaries(folder):
    """Remove the temporary files that a killed process of this repo left in folder and in its best/; nothing
    else (a user's own `.notes.tmp` stays, and so does a folder of any name)."""
    for where in (folder, os.path.join(folder, BEST)):
        if os.path.isdir(where):
            for entry in os.scandir(where):
                if _TEMPORARY.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    os.remove(entry.path)


def check_outputs(folder):
    """Refuse, before any work, a run folder in which a file the run writes could not be written: a folder where
    a file goes, a file where best/ goes, a read-only file, a pipe or a device (or a link to one: reading it
    could wait for ever, writing it would lose the file). Raises ModelFileError."""

    def check_file(path):
        if os.path.lexists(path) and not os.path.isdir(path) and files.writes_in_place(path):
            raise files.ModelFileError(
                f'{path} is not a file (a pipe, a device or a link to one), but the run '
                'writes a file of that name there: move it away or choose another run folder'
            )
        if os.path.isdir(path):
            raise files.ModelFileError(
                f'{path} is a folder, but the run writes a file of that name there: move '
                'it away or choose another run folder'
            )
        if os.path.isfile(path) and not os.access(path, os.W_OK):
            raise files.ModelFileError(
                f'{path} is read-only: make it writable (chmod u+w) or choose another run folder'
            )

    for name in (CHECKPOINT, WEIGHTS, LOOKUP, LOG):
        check_file(os.path.join(folder, name))
    check_lengths(folder)
    best = os.path.join(folder, BEST)
    if os.path.lexists(best) and not os.path.isdir(best):
        raise files.ModelFileError(
            f'{best} is a file, but the run keeps its best epoch in a folder of that name: '
            'move it away or choose another run folder'
        )
    if os.path.isdir(best):
        files.check_folder(best, 'best-epoch folder')
        for name in (CHECKPOINT, WEIGHTS, LOOKUP):
            check_file(os.path.join(best, name))


def check_lengths(folder):
    """Refuse, before any work, a run folder whose path is too long for a file the run writes there or in best/
    (with the temporary name it is first written under): the system's limits on a path and on a name."""
    where = os.path.abspath(folder)
    try:
        path_max, name_max = os.pathconf(where, 'PC_PATH_MAX'), os.pathconf(where, 'PC_NAME_MAX')
    except (OSError, ValueError):  # the system does not say: nothing to check against
        return
    longest = '.' + CHECKPOINT + '.' + 8 * 'x' + '.tmp'  # files.atomic_write's temporary, the longest name
    for path in (os.path.join(where, longest), os.path.join(where, BEST, longest)):
        if len(os.fsencode(path)) >= path_max or len(os.fsencode(longest)) > name_max:
            raise files.ModelFileError(
                f'the run folder {folder} has a path too long for the files the run writes '
                f'in it ({len(os.fsencode(path))} bytes for {os.path.relpath(path, where)}, '
                f'the system allows {path_max - 1}): choose a shorter --out path'
            )


def parent_run(folder):
    """The run folder whose best/ folder is `folder`, or None: that run writes it, so no other may."""
    real = os.path.realpath(folder)
    parent = os.path.dirname(real)
    if os.path.basename(real) == BEST and (
        os.path.exists(os.path.join(parent, CHECKPOINT)) or os.path.exists(os.path.join(parent, LOCK))
    ):
        return parent
    return None


def stray_files(folder):
    """The run's file names present in a folder that holds no checkpoint (files of no run that can continue)."""
    names = [WEIGHTS, LOOKUP, LOG, *(f'{BEST}/{name}' for name in (WEIGHTS, CHECKPOINT, LOOKUP))]
    return [name for name in names if os.path.lexists(os.path.join(folder, name))]


def read_log(path):
    """The rows of an existing training_log.csv (adopted by a checkpoint written before checkpoints held them)."""
    try:
        with open(path, newline='', encoding='utf-8', errors='replace') as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise files.ModelFileError(f'{path} cannot be read: {e.strerror or e}') from None
    return rows[1:] if rows and rows[0] == LOG_HEADER else rows


def log_text(rows):
    out = io.StringIO()
    csv.writer(out, lineterminator='\n').writerows([LOG_HEADER, *rows])
    return out.getvalue()


# --- stopping --------------------------------------------------------------------------------------------------


class Stopped(Exception):
    """A signal arrived during validation or sampling, which then stop at once (Stopper.check)."""


class Stopper:
    """Turns Ctrl-C, SIGTERM and SIGHUP (a closed terminal, a dropped connection) into a flag that the training
    loop reads after every step, and that check() turns into Stopped inside validation and sampling (which change
    nothing of the run, so the run stops as it was before them)."""

    def __init__(self):
        self.signal = None
        self.previous = {
            s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }

    def handle(self, signum, frame):
        self.signal = signal.Signals(signum).name

    def check(self, done=None):
        """Raise Stopped if a signal has arrived (done: how far the caller is, as a progress callable gets it)."""
        if self.signal:
            raise Stopped(self.signal)

    def restore(self):
        for s, h in self.previous.items():
            signal.signal(s, h)


# --- the run ---------------------------------------------------------------------------------------------------


class Run:
    """Everything a checkpoint holds.

    settings     the run's settings (a dict of the script's options)
    chars        the lookup table: chars[i] is the character of index i
    params, opt  the weights and their RMSprop optimizer; ema the moving average of the weights, or None
    state        the hidden state carried into the next window, [(h, c) per layer], each (chunks, H)
    pos          the position: epoch, window (within the epoch), step, seconds trained, val_loss (of the last
                 epoch), best_val and best_step (of the best epoch so far), epoch_loss_sum and epoch_steps (the
                 training losses of this epoch so far, for its mean)
    rng          the random generator of the dropout masks
    log          the rows of training_log.csv, as text
    corpus_chars, windows  the corpus's length and the windows per epoch it gives (None until known)
    commit       how many checkpoints the run has committed; the weights file names the one it comes from
    plan         how the engine computes its windows (engine.Plan): the widths it measured, kept for a resume
    on_disk      whether a checkpoint of the run is in its folder (one was loaded, or saved)
    lock         the folder's Lock, checked before every checkpoint (None: not checked)
    """

    on_disk, lock = False, None

    def __init__(
        self,
        settings,
        chars=None,
        params=None,
        opt=None,
        state=None,
        ema=None,
        pos=None,
        rng=None,
        log=(),
        corpus_chars=None,
        windows=None,
        commit=0,
        plan=None,
    ):
        self.settings, self.chars, self.params, self.opt = settings, chars, params, opt
        self.state, self.ema, self.pos, self.rng, self.log = state, ema, pos, rng, list(log)
        self.corpus_chars, self.windows, self.commit = corpus_chars, windows, commit
        self.plan = plan if plan is not None else engine.Plan()

    def model(self):
        """The weights to validate, sample and save: the average where one is kept."""
        return self.params if self.ema is None else self.ema

    def epoch(self):
        """How far the run is, in epochs (a fraction within an epoch)."""
        return self.pos.epoch + self.pos.window / self.windows

    def corpus_file(self):
        """The corpus file: the one the run names (relative paths are inside the repo), else the shipped tiny
        Shakespeare, checked by its SHA-256 (data.CorpusError if it is not right). A checkpoint that names a tiny
        Shakespeare file which is not here (as one written in another folder may) resumes on the shipped copy."""
        path = self.settings['corpus']
        if path is not None:
            path = os.path.join(cli.ROOT, path)  # inside the repo; an absolute path stays as it is
            if (
                not os.path.exists(path)
                and self.corpus_chars == data.TINY_SHAKESPEARE_CHARS
                and 'shakespeare' in os.path.basename(path).lower()
            ):
                path = None
        return path if path is not None else data.tiny_shakespeare()

    def save(self, folder, kind, row=None):
        """Commit a checkpoint of kind 'epoch', 'periodic', 'interrupted', ... into folder, with `row` added to
        the log, then write the files derived from it (and best/ if this is the best epoch's state).
        Raises ModelFileError if the checkpoint could not be written (the previous one is then the folder's
        state), Incomplete if only a derived file could not be (Run.recover then completes it)."""
        if self.lock is not None:
            self.lock.check(self.on_disk)  # raises Moved: the folder is no longer the one locked
        log = self.log + [row] if row is not None else self.log
        self.commit += 1
        try:
            self._write_checkpoint(os.path.join(folder, CHECKPOINT), kind, log)  # the commit
        except files.ModelFileError:
            self.commit -= 1
            raise
        self.log, self.on_disk = log, True
        self.recover(folder)

    def recover(self, folder):
        """Write the files derived from the committed checkpoint that do not match it yet: the weights, the
        lookup table, the log, and best/ where the checkpoint is the best epoch's state."""
        try:
            if _saved(os.path.join(folder, WEIGHTS), 'weights', 'commit') != self.commit:
                weights.save_params(
                    os.path.join(folder, WEIGHTS), self.model(), self._weights_meta(), self.chars
                )
            _write_if_changed(os.path.join(folder, LOOKUP), json.dumps(self.chars, ensure_ascii=True))
            _write_if_changed(os.path.join(folder, LOG), log_text(self.log))
            best = os.path.join(folder, BEST)
            if (
                self.pos.best_step == self.pos.step
                and _saved(os.path.join(best, CHECKPOINT), 'checkpoint', 'position', 'step') != self.pos.step
            ):
                weights.save_params(
                    os.path.join(best, WEIGHTS), self.model(), self._weights_meta(), self.chars
                )
                data.save_lookup(os.path.join(best, LOOKUP), self.chars)
                # Last: best/ is whole.
                self._write_checkpoint(os.path.join(best, CHECKPOINT), 'best', self.log)
        except files.ModelFileError as e:
            raise Incomplete(str(e), e.errno) from None

    def _weights_meta(self):
        # The alphabet is saved so that another lookup table is refused at load.
        return dict(
            step=self.pos.step,
            epoch=self.epoch(),
            val_loss=self.pos.val_loss,
            commit=self.commit,
            alphabet=list(self.chars),
        )

    def _write_checkpoint(self, path, kind, log):
        meta = dict(
            settings=self.settings,
            position=self.pos.to_json(),
            rng=self.rng.bit_generator.state,
            saved=kind,
            corpus_chars=self.corpus_chars,
            windows_per_epoch=self.windows,
            block_widths=self.plan.widths(),
            chars=self.chars,
            log=log,
            commit=self.commit,
        )
        checkpoint.save(path, self.params, self.opt, self.state, meta, self.ema)


def _saved(path, what, *keys):
    """A field of an .npz file's metadata (keys: the path to it), or None where the file or field is missing."""
    try:
        value = files.load_npz(path, what, only_meta=True)[1]
        for key in keys:
            value = value[key]
        return value
    except (files.ModelFileError, KeyError, TypeError):
        return None


def _write_if_changed(path, text):
    try:
        with open(path, encoding='utf-8') as f:
            if f.read() == text:
                return
    except (OSError, ValueError):
        pass
    files.write_text(path, text)


def load(folder, make_optimizer):
    """The run committed in folder, checked whole (util/checkpoint.py): its metadata field by field, its arrays,
    and the one against the other. make_optimizer(params, settings) makes the optimizer whose state is restored.
    Returns a Run with the saved settings. Raises ModelFileError."""
    path = os.path.join(folder, CHECKPOINT)
    _, meta = files.load_npz(path, 'checkpoint', only_meta=True)
    checkpoint.check_meta(meta, path)
    settings = {**DEFAULTS, **meta['settings']}
    params, opt, state, _, ema = checkpoint.load(path, lambda p: make_optimizer(p, settings))
    if 'chars' in meta:
        chars = meta['chars']
    else:  # written before checkpoints held their lookup table
        try:
            chars = data.load_lookup(os.path.join(folder, LOOKUP))
        except data.CorpusError as e:
            raise files.ModelFileError(str(e)) from None
        if not in_order(chars):
            raise files.ModelFileError(
                f'{os.path.join(folder, LOOKUP)} does not list its characters in code-point '
                'order, as the corpus gave them to the run: it is not the run\'s lookup table'
            )
    pos, windows = meta['position'], meta.get('windows_per_epoch')
    checkpoint.check_against_arrays(path, settings, params, state, chars, pos, windows)
    rng = np.random.default_rng()
    rng.bit_generator.state = meta['rng']
    log = meta['log'] if 'log' in meta else read_log(os.path.join(folder, LOG))
    try:
        plan = engine.Plan(widths=meta.get('block_widths', []))  # the same products as before: bit for bit
    except ValueError as e:
        raise files.ModelFileError(f'checkpoint {path}: {e}') from None
    run = Run(
        settings,
        chars,
        params,
        opt,
        state,
        ema,
        checkpoint.Position.from_json(pos),
        rng,
        log,
        meta.get('corpus_chars'),
        windows,
        meta.get('commit', 0),
        plan,
    )
    run.on_disk = True
    return run


def fix_for(error):
    """What to do about a file the run could not write, by its errno: free space, or give permission."""
    if error.errno in (errno.EPERM, errno.EACCES, errno.EROFS):
        return 'give the run write permission there (chmod u+w; chattr -a, -i for an append-only or immutable file)'
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return 'free some space'
    return 'fix that'
