"""A training run: what its checkpoint holds (Run), and how it is committed into its folder and loaded back,
whole whatever happens (a kill at any moment, a full disk). The folder itself, its files, lock and checks, are
util/run_folder.py's.

Every file is written to a temporary file and renamed into place (files.atomic_write), so the checkpoint is
the old one or the new one; it holds everything a resume needs, so the folder always holds a whole state, and
what the other files lack is completed from it (Run.write_derived). Nothing here prints: errors are raised as
files.ModelFileError, with a one-line reason.
"""

import csv
import io
import json
import os

import numpy as np

import data
import engine
from util import checkpoint, cli, files, npz, position, reading, weights
from util.checkpoint import LOG_HEADER, in_order
from util.run_folder import BEST, CHECKPOINT, LOG, LOOKUP, MAX_LOG_BYTES, WEIGHTS
from util.settings import DEFAULTS


class Incomplete(files.ModelFileError):
    """The checkpoint was committed but a file derived from it could not be written (Run.write_derived
    completes it)."""


def log_rows(path):
    """The rows of an existing training_log.csv (adopted by a checkpoint written before checkpoints held
    them)."""
    if not os.path.lexists(path):
        return []
    raw = reading.read_bytes(path, 'training log', MAX_LOG_BYTES)
    rows = list(csv.reader(io.StringIO(raw.decode('utf-8', errors='replace'), newline='')))
    return rows[1:] if rows and rows[0] == LOG_HEADER else rows


def log_text(rows):
    out = io.StringIO()
    csv.writer(out, lineterminator='\n').writerows([LOG_HEADER, *rows])
    return out.getvalue()


# --- the run ------------------------------------------------------------------------------------------------


class Run:
    """Everything a checkpoint holds.

    settings     the run's settings (a dict of the script's options)
    chars        the lookup table: chars[i] is the character of index i
    params, opt  the weights and their RMSprop optimizer; ema the moving average of the weights, or None
    state        the hidden state carried into the next window, [(h, c) per layer], each (chunks, H)
    pos          the position: epoch, window (within the epoch), step, seconds trained, val_loss (of the last
                 epoch), best_val and best_step (of the best epoch so far), epoch_loss_sum and epoch_steps
                 (the training losses of this epoch so far, for its mean)
    rng          the random generator of the dropout masks
    log          the rows of training_log.csv, as text
    corpus_chars, windows  the corpus's length and the windows per epoch it gives (None until known)
    corpus_fingerprint     the corpus's data.fingerprint (None until known, and in runs saved before it)
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
        corpus_fingerprint=None,
    ):
        self.settings, self.chars, self.params, self.opt = settings, chars, params, opt
        self.state, self.ema, self.pos, self.rng, self.log = state, ema, pos, rng, list(log)
        self.corpus_chars, self.windows, self.commit = corpus_chars, windows, commit
        self.corpus_fingerprint = corpus_fingerprint
        self.plan = plan if plan is not None else engine.Plan()

    def model(self):
        """The weights to validate, sample and save: the average where one is kept."""
        return self.params if self.ema is None else self.ema

    def epoch(self):
        """How far the run is, in epochs (a fraction within an epoch)."""
        return self.pos.epoch + self.pos.window / self.windows

    def corpus_file(self):
        """The corpus file: the one the run names (relative paths are inside the repo), else the shipped tiny
        Shakespeare, checked by its SHA-256 (data.CorpusError if it is not right). A checkpoint that names a
        tiny Shakespeare file which is not here (as one written in another folder may) resumes on the shipped
        copy."""
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
        """Commit a checkpoint of kind 'epoch', 'periodic', 'interrupted', ... into folder, with `row` added
        to the log, then write the files derived from it (and best/ if this is the best epoch's state). Raises
        ModelFileError if the checkpoint could not be written (the previous one is then the folder's state),
        Incomplete if only a derived file could not be (Run.write_derived then completes it)."""
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
        self.write_derived(folder)

    def write_derived(self, folder):
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
            corpus_fingerprint=self.corpus_fingerprint,
            windows_per_epoch=self.windows,
            block_widths=self.plan.widths(),
            chars=self.chars,
            log=log,
            commit=self.commit,
        )
        checkpoint.save(path, self.params, self.opt, self.state, meta, self.ema)


def _saved(path, what, *keys):
    """A field of an .npz file's metadata (keys: the path to it), or None where the file or field is
    missing."""
    try:
        value = npz.load(path, what, only_meta=True)[1]
        for key in keys:
            value = value[key]
        return value
    except (files.ModelFileError, KeyError, TypeError):
        return None


def _write_if_changed(path, text):
    """Write a derived text file unless it already holds text (read only where its size is text's)."""
    raw = text.encode('utf-8')
    try:
        with open(path, 'rb') as f:
            if os.fstat(f.fileno()).st_size == len(raw) and f.read(len(raw) + 1) == raw:
                return
    except OSError:
        pass
    files.write_text(path, text)


def _shipped_fingerprint(settings, meta):
    """The fingerprint of a run saved before checkpoints held one, where it is known: tiny Shakespeare's, for
    a run that names no corpus (the shipped model's); else None (its length alone is checked)."""
    if settings['corpus'] is None and meta.get('corpus_chars') == data.TINY_SHAKESPEARE_CHARS:
        return data.TINY_SHAKESPEARE_FINGERPRINT
    return None


def load_run(folder, make_optimizer):
    """The run committed in folder, checked whole (util/checkpoint.py): its metadata field by field, its
    arrays, and the one against the other. make_optimizer(params, settings) makes the optimizer whose state is
    restored. Returns a Run with the saved settings. Raises ModelFileError."""
    path = os.path.join(folder, CHECKPOINT)
    _, meta = npz.load(path, 'checkpoint', only_meta=True)
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
    log = meta['log'] if 'log' in meta else log_rows(os.path.join(folder, LOG))
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
        position.Position.from_json(pos),
        rng,
        log,
        meta.get('corpus_chars'),
        windows,
        meta.get('commit', 0),
        plan,
        meta.get('corpus_fingerprint', _shipped_fingerprint(settings, meta)),
    )
    run.on_disk = True
    return run
