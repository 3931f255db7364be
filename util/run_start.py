"""A training run's start: its folder checked and locked, the run in it new or resumed (its settings merged
with the command line's), its corpus read and its model made, the GPU's memory checked. Every refusal is one
line (a UserError), before any training."""

import contextlib
import os

import numpy as np

import data
import lstm
from optimizer import RMSprop
from util import cli, devices, files, memory, position, repo, run_folder, runs, weights
from util.progress import Progress
from util.run_folder import CHECKPOINT
from util.settings import settings_from
from util.errors import UserError


def check_out(args):
    """Refuse an --out that no training may write: empty, the shipped model's saves/ (unless asked for), or
    the best/ folder of a run (which that run writes)."""
    out = args.out
    if not out:
        raise UserError('--out is empty: give a folder for the run')
    saves = os.path.realpath(cli.SAVES)
    inside = [
        os.path.realpath(p) for p in (out, os.path.join(out, run_folder.BEST))
    ]  # best/ may be a link into it
    into_saves = any(p == saves or p.startswith(saves + os.sep) for p in inside)
    if inside[0].startswith(saves + os.sep):  # below saves/ itself: no run's folder
        raise UserError(
            f'--out {out} is inside the shipped model\'s folder saves/: give a folder of its own, e.g. '
            '--out runs/mine'
        )
    if into_saves and not args.overwrite_shipped_model:
        raise UserError(
            f'--out {out} writes into the shipped model\'s folder saves/, overwriting it; train a copy '
            '(mkdir -p runs && cp -r saves runs/mine, then --out runs/mine --resume), or add '
            '--overwrite-shipped-model if that is what you mean'
        )
    if repo.in_repo(out) and not into_saves:  # the repository's folder or one of its own (saves/: above)
        raise UserError(
            f'--out {out} is {repo.where_in_repo(out)}: the run\'s files would go among its files; give a '
            'folder of its own, e.g. --out runs/mine'
        )
    parent = run_folder.parent_run(out)
    if parent:
        raise UserError(
            f'--out {out} is the best/ folder of the run in {parent}, which writes it: copy it to another '
            f'folder first (cp -r {out} runs/from-best) and continue that one'
        )
    return out


def lock_folder(out):
    """Make the run folder and lock it before anything in it is read; check that every file the run writes can
    be written. Returns the lock. A refusal leaves no folder it made behind. (The temporary files a killed run
    left are cleared once the run is accepted: run_folder.remove_temporaries.)"""
    made = files.missing_folders(out)
    try:
        files.check_folder(out, '--out folder')
        lock = run_folder.Lock(out)
        lock.made = made[1:]  # above the run folder
        try:
            run_folder.check_outputs(out)
        except BaseException:
            lock.discard() if made else lock.give_up()
            raise
    except run_folder.Busy:
        raise UserError(
            f'another training is running in {out}: wait for it to end, or choose another --out folder'
        )
    except OSError as e:
        files.remove_empty(made)
        raise UserError(f'--out folder {out}: {e.strerror or e}')
    except BaseException:
        files.remove_empty(made)
        raise
    return lock


@contextlib.contextmanager
def saving(out, step):
    """A run's files that could not be written (a full disk), as the one line that says what is kept and what
    to do; step(): the run's step."""
    try:
        yield
    except run_folder.Moved:  # nothing written: the folder is wherever it went
        raise
    except runs.Incomplete as e:  # the checkpoint was written, a file derived from it not
        raise UserError(
            f'{e}; the checkpoint at step {step()} is saved in {out}: {run_folder.fix_for(e)} and '
            'continue with --resume, which completes the other files'
        ) from None
    except files.ModelFileError as e:  # the last whole checkpoint stays
        if not os.path.exists(os.path.join(out, CHECKPOINT)):  # the run's first checkpoint failed
            raise UserError(
                f'{e}; no checkpoint was saved in {out}: {run_folder.fix_for(e)} and run the same command '
                'again'
            ) from None
        raise UserError(
            f'{e}; the previous checkpoint in {out} is kept: {run_folder.fix_for(e)} and continue with '
            '--resume'
        ) from None


def leave(lock, out, created, accepted):
    """After a refusal or a failure: a folder made for a run that saved nothing is removed (and the folders
    made above it), one that was there is left as it was (the lock file this process made goes); a refused
    resume leaves its run as it was; a run that saved a checkpoint keeps it."""
    if not os.path.exists(os.path.join(out, CHECKPOINT)):  # nothing saved
        lock.discard() if created else lock.give_up()
    elif not accepted:
        lock.give_up()


def new_run(args, out, plan=None):
    if os.path.exists(os.path.join(out, CHECKPOINT)):
        raise UserError(
            f'{out} already holds a run: continue it with --resume, or choose another --out folder'
        )
    stray = run_folder.stray_files(out)
    if stray:
        raise UserError(
            f'{out} holds {stray[0]} but no checkpoint ({CHECKPOINT}), so no run that can continue: move '
            'those files away, or choose another --out folder'
        )
    return runs.Run(settings_from(args), pos=position.Position(), plan=plan)


def make_optimizer(params, settings):
    return RMSprop(
        params,
        lr=settings['lr'],
        rho=settings['rho'],
        eps=settings['eps'],
        clip=settings['clip'],
        weight_decay=settings['weight_decay'],
    )


def resumed_run(args, out):
    """The run committed in out, with the files that a stop left behind it completed, then the resumable
    settings of the command line. Returns (run, the settings that changed: name -> (old, new))."""
    if not os.path.exists(os.path.join(out, CHECKPOINT)):
        raise UserError(
            f'cannot resume: {out} holds no run ({CHECKPOINT} is missing); start one without --resume'
        )
    try:
        run = runs.load_run(out, make_optimizer)
    except files.ModelFileError as e:
        raise UserError(f'cannot resume from {out}: {e}')
    saved, settings = run.settings, settings_from(args, run.settings)  # refused before anything is written
    try:
        cli.open_device(settings['device'])  # the run's device, on this machine
    except devices.DeviceError as e:
        if args.device:
            raise
        raise devices.DeviceError(
            f'the run in {out} was trained with --device {settings["device"]}, which '
            f'cannot be used here ({e}); continue it with --resume --device cpu'
        ) from None
    run.settings = settings
    for k in ('rho', 'eps', 'clip', 'weight_decay'):  # the learning rate is set every epoch
        setattr(run.opt, k, settings[k])
    return run, {k: (saved[k], v) for k, v in run.settings.items() if v != saved[k]}


def complete_stop(out):
    """Write what a stop left unwritten of the files derived from the committed checkpoint (the weights, the
    log, best/), once a resumed run is accepted (a refused one writes nothing): from the checkpoint as it was
    committed, not from the run as the command line's settings changed it."""
    run = runs.load_run(out, make_optimizer)
    if run.windows is not None:  # a checkpoint that holds its log
        try:
            run.write_derived(out)
        except runs.Incomplete as e:
            raise UserError(
                f'{e}; the checkpoint in {out} is whole: {run_folder.fix_for(e)} and resume again'
            ) from None


def rescore_best(run, out, val_ids, changed, device):
    """The best validation loss so far was measured on another validation text where --val-chars changed on
    --resume: score the best epoch's model (best/) on this one, so that later epochs are compared with it on
    the same text. Returns (the old loss, the new one), or None where nothing changed."""
    if 'val_chars' not in changed or run.pos.best_val is None:
        return None
    try:
        params, _ = weights.load_params(
            os.path.join(out, run_folder.BEST, run_folder.WEIGHTS), chars=run.chars
        )
    except files.ModelFileError as e:
        raise UserError(
            f'cannot resume from {out} with another --val-chars ({e}): best/ is scored on the new validation '
            f'text first; restore it, or resume with the run\'s --val-chars {changed["val_chars"][0]}'
        ) from None
    old = run.pos.best_val
    with Progress('scoring best/ on the new validation text', len(val_ids) - 1) as progress:
        run.pos.best_val = lstm.evaluate(params, val_ids, progress=progress, device=device)
    return old, run.pos.best_val


def load_data(run):
    """Read the corpus; make the model on a new run. Returns (chunked training text (B, L), validation
    ids)."""
    s = run.settings
    path = run.corpus_file()
    try:
        ids, run.chars = data.read_corpus(path, run.chars)
    except data.CorpusError as e:
        if run.params is None or os.path.exists(path):
            raise
        raise UserError(f'{e}; if it has moved, give its new path: --resume --corpus NEWPATH') from None
    fingerprint = data.fingerprint(ids)
    train_ids, val_ids = data.split(ids, s['val_fraction'])
    if s['val_chars']:
        val_ids = val_ids[: s['val_chars']]
    chunked = data.chunks(train_ids, s['chunks'])
    n_windows = data.n_windows(chunked.shape[1], s['window'])
    if n_windows == 0:
        raise UserError(
            f'the training text ({cli.count(len(train_ids), "character")}) is too short for {s["chunks"]} '
            f'chunks of more than {s["window"]} characters: use a longer corpus, or lower --chunks, --window '
            'or --val-fraction'
        )
    if len(val_ids) < 2 and s['val_chars']:
        raise UserError(
            f'--val-chars {s["val_chars"]} keeps less than the 2 characters validation needs: give 2 or more'
        )
    if len(val_ids) < 2:
        raise UserError(
            'the validation text is shorter than 2 characters: use a longer corpus or a larger --val-fraction'
        )
    if run.params is None:  # a new run: the model is made from the lookup table
        run.rng = np.random.default_rng(s['seed'])
        run.params = lstm.init_params(len(run.chars), s['hidden'], s['layers'], rng=run.rng, dtype=s['dtype'])
        run.opt = make_optimizer(run.params, s)
        run.state = lstm.zero_state(run.params, s['chunks'])
    else:
        check_same_corpus(run, ids, fingerprint)
    if run.pos.window > n_windows:
        raise UserError(
            f'cannot resume: the checkpoint\'s position.window = {run.pos.window} is past the '
            f'{n_windows} windows of an epoch'
        )
    run.corpus_chars, run.corpus_fingerprint, run.windows = len(ids), fingerprint, n_windows
    if not s['ema']:
        run.ema = None
    elif run.ema is None:  # an average starts from the current weights
        run.ema = {k: v.copy() for k, v in run.params.items()}
    return chunked, val_ids


def check_same_corpus(run, ids, fingerprint):
    """Refuse to resume a run on another text than it was trained on: another length, or the same length with
    other characters (a fingerprint of the text; runs saved before they held one are checked by length)."""
    if run.corpus_chars not in (None, len(ids)):
        raise UserError(
            f'the corpus has {len(ids):,} characters but the run was trained on one of '
            f'{run.corpus_chars:,}: resume with the same --corpus, as it was (a file that changed since is '
            'another text)'
        )
    if run.corpus_fingerprint not in (None, fingerprint):
        fix = (
            'the run was trained on tiny Shakespeare: resume without --corpus'
            if run.corpus_fingerprint == data.TINY_SHAKESPEARE_FINGERPRINT
            else 'resume with the same --corpus, as it was'
        )
        raise UserError(
            f'the corpus is not the text the run was trained on (its {len(ids):,} characters are others, '
            f'or in another order): {fix}'
        )


def training_size(s, V=1):
    """About how much memory a training of these settings needs (bytes), and what that training is, in
    words. V: the number of distinct characters, once the corpus is read (before, 1 gives a floor)."""
    needed = memory.model_bytes(
        V,
        s['hidden'],
        s['layers'],
        s['chunks'],
        s['window'],
        training=True,
        itemsize=8 if s['dtype'] == 'float64' else 4,
    )
    return (
        needed,
        f'training --layers {s["layers"]} --hidden {s["hidden"]} on --chunks {s["chunks"]} x '
        f'--window {s["window"]}',
    )
