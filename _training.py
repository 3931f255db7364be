"""Train the character-level LSTM with truncated backpropagation through time, or resume a saved run.

    python _training.py --out runs/shakespeare            # a new run on tiny Shakespeare (saves/)
    python _training.py --out runs/shakespeare --resume   # continue it exactly where it stopped

The run folder (--out) receives, at every epoch, on Ctrl-C / SIGTERM / SIGHUP and every --checkpoint-minutes:
  ShakespeareOptimizer.npz  the full training checkpoint: weights, RMSprop state, carried hidden state,
                            position in the data, random state, settings, lookup table and log; --resume
                            continues from it
  ShakespeareNet.npz        the latest weights (the format _sample.py reads)
  ShakespeareLookup.json    the lookup table
  training_log.csv          one line per epoch (and per interruption)
  best/                     the same files for the epoch with the lowest validation loss so far
The checkpoint is written first, the other files from it, so a kill or a full disk leaves a whole run
(util/runs.py); one training at a time writes a folder; saves/ (the shipped model) only with
--overwrite-shipped-model.
"""

import util.startup  # noqa: F401  first: Ctrl-C while the script starts is one line (util/startup.py)
from util import cli
import os
import signal
import time

import numpy as np

import data
import lstm
from optimizer import update_average
from util import devices, memory, run_folder
from util.blas import set_threads as set_blas_threads
from util.run_start import (
    check_out,
    complete_stop,
    leave,
    load_data,
    lock_folder,
    new_run,
    rescore_best,
    resumed_run,
    saving,
    training_size,
)
from util.settings import HELP, SETTINGS, lr_at, settings_from
from util.training_report import nats, report, will_train
from util.training_progress import Stopped, Stopper, TrainingProgress
from util.errors import UserError


def _add_settings(p):
    """An option for each setting of the table (util/settings.py), in its group. Returns the groups by
    name."""
    groups = {}
    for group, name, default, kind in SETTINGS:
        if group not in groups:
            groups[group] = p.add_argument_group(group)
        shown = '' if name == 'corpus' else f' (default {default})'
        groups[group].add_argument(
            cli.option_name(name),
            type=kind,
            help=HELP[name] + shown,
            metavar=getattr(kind, 'metavar', None),
        )
    return groups


def _add_output_options(g):
    """Where the run is written, how often, and what it prints."""
    g.add_argument(
        '--out',
        type=cli.path,
        default='checkpoints',
        help='run folder for checkpoints and the log '
        '(default %(default)s; saves/ is only written if named here)',
    )
    g.add_argument(
        '--overwrite-shipped-model',
        action='store_true',
        help='allow --out saves (the shipped model, which the run then overwrites)',
    )
    g.add_argument(
        '--resume', action='store_true', help='continue the run saved in --out exactly where it stopped'
    )
    g.add_argument(
        '--checkpoint-minutes',
        type=cli.non_negative_float,
        default=10.0,
        help='also checkpoint every this many minutes within an epoch (default %(default)s; 0: only '
        'per epoch)',
    )
    g.add_argument(
        '--sample-length',
        type=cli.non_negative_int,
        default=200,
        help='characters of sample printed after each epoch (default %(default)s)',
    )
    g.add_argument(
        '--quiet',
        action='store_true',
        help='print only errors: no progress line, no epoch report and no sample',
    )


def parse_args(argv):
    p = cli.Parser(
        description='Train the character-level LSTM (truncated BPTT, RMSprop), or resume a run.',
        epilog='Ctrl-C, SIGTERM or SIGHUP writes a checkpoint, then ends the training with the status of '
        'a program stopped by that signal, 128 + its number: 130, 143 or 129.',
    )
    groups = _add_settings(p)
    g = groups['optimisation']
    g.add_argument(
        '--threads',
        type=cli.one_or_two,
        help='threads on the CPU, 1 or 2 (a run on the GPU takes none): 2 runs half of the chunks on each of '
        'two cores (default: 2 on a multi-core machine, 1 if OPENBLAS_NUM_THREADS=1)',
    )
    g.add_argument(
        '--max-steps',
        type=cli.non_negative_int,
        help='stop (with a checkpoint) once this many steps '
        'are done in all, e.g. for a short trial; 0 saves the untrained model '
        '(default: none, --epochs decides)',
    )
    g = p.add_argument_group('output')
    _add_output_options(g)
    return p.parse_args(argv)


# --- training -----------------------------------------------------------------------------------------------


def train_window(run, chunked, trainer=None):
    """One step of truncated BPTT on the next window of every chunk: forward, backward, RMSprop, average; on
    the GPU if a gpu.Trainer is given (which then holds the weights until trainer.to_host)."""
    s = run.settings
    x, y = data.window(chunked, s['window'], run.pos.window)
    if trainer is not None:
        _, H, n_layers = lstm.sizes(run.params)

        def draw():  # the window's dropout masks, in the order lstm.loss_and_grads draws them on the CPU
            return lstm.draw_masks(
                run.rng,
                *x.shape,
                H,
                n_layers,
                s['dtype'],
                dropout=s['dropout'],
                variational=s['variational'],
                weight_drop=s['weight_drop'],
            )

        with np.errstate(all='ignore'):  # overflow is caught below, with a clear message
            loss, finite = trainer.step(x, y, run.opt, draw, s['ema'])
    else:
        with np.errstate(all='ignore'):  # overflow is caught below, with a clear message
            loss, grads, run.state = lstm.loss_and_grads(
                run.params,
                x,
                y,
                run.state,
                dropout=s['dropout'],
                rng=run.rng,
                plan=run.plan,
                weight_drop=s['weight_drop'],
                variational=s['variational'],
            )
            run.opt.step(run.params, grads)
        if run.ema is not None:
            update_average(run.ema, run.params, s['ema'])
        finite = all(np.isfinite(p).all() for p in run.params.values())
    if not np.isfinite(loss) or not finite:
        raise UserError(
            f'the loss became non-finite (loss {loss:.4g}, or weights overflowed) at step '
            f'{run.pos.step + 1}: training stopped, and '
            + (
                'the last good checkpoint is kept; resume it'
                if run.on_disk
                else 'no checkpoint was saved yet; start the run again'
            )
            + ' with a lower --lr or --clip'
        )
    run.pos.advance(loss)
    return loss


def sample_text(params, chars, prime, length, seed, stopper):
    """A short sample at temperature 0.5 after the priming text `prime`; a signal stops it between two
    characters. Every line of it is shown after '| ', so that a blank line is seen to be blank. Windows'
    '\\r\\n' and old Macs' '\\r' end a line here as '\\n' does, so that no '\\r' sends the terminal's cursor
    back."""
    ids = []
    for ix in lstm.sample(params, data.encode(prime, chars), length, temperature=0.5, rng=seed):
        stopper.check()
        ids.append(ix[0])
    text = data.decode(ids, chars).replace('\r\n', '\n').replace('\r', '\n')
    return '\n'.join('| ' + line for line in text.split('\n'))


def log_row(run, train_loss, val_loss, chars_per_s, event):
    """A row of training_log.csv, as text: one per epoch and per interruption."""
    p = run.pos
    return [
        str(p.epoch) if p.window == 0 else f'{run.epoch():.4f}',
        str(p.step),
        '' if train_loss is None else nats(train_loss),
        '' if val_loss is None else nats(val_loss),
        f'{run.opt.lr:.6g}',
        f'{p.seconds:.0f}',
        '' if chars_per_s is None else f'{chars_per_s:.0f}',
        event,
    ]


def end_epoch(run, out, val_ids, progress, say, sample_length, stopper, device=None):
    """Validate (on the device), checkpoint (best/ too if the epoch is the best so far), report and sample."""
    # Stopped: again on --resume.
    val = lstm.evaluate(run.model(), val_ids, progress=stopper.check, device=device)
    p = run.pos
    train_loss, improved = p.finish_epoch(val)
    # The next epoch starts at the chunks' heads.
    run.state = lstm.zero_state(run.params, run.settings['chunks'])
    p.seconds += progress.lap()
    run.save(out, 'epoch', log_row(run, train_loss, val, progress.rate(), 'best' if improved else 'epoch'))
    progress.restart()
    say(
        f'{progress.end_line()}epoch {p.epoch}: train loss '
        f'{"-" if train_loss is None else nats(train_loss)}, '
        f'validation loss {nats(val)} nats/char ({nats(val / np.log(2))} '
        f'bits/char){" (best so far)" if improved else ""}'
    )
    if sample_length:
        prime = data.first_line(val_ids, run.chars)
        text = sample_text(run.model(), run.chars, prime, sample_length, p.step, stopper)
        say(f'--- sample (temperature 0.5) after {prime!r}, from the validation text ---\n{text}\n---')


def default_threads():
    return 1 if os.environ.get('OPENBLAS_NUM_THREADS') == '1' else min(2, os.cpu_count() or 1)


def train(run, out, chunked, val_ids, args, say, device=None):
    """The training loop, until the last epoch, --max-steps or a signal; then the last checkpoint. device: the
    util.devices.Device, or None for the CPU. Returns True (the last epoch done), False (--max-steps reached)
    or the name of the signal that stopped it."""
    s, p = run.settings, run.pos
    trainer = None if device is None else device.trainer(run)
    to_host = (lambda: None) if trainer is None else (lambda: trainer.to_host(run))  # if steps were taken
    threads = args.threads or default_threads()
    if threads > 1 and set_blas_threads(1) is None:
        threads = 1  # OpenBLAS not found: let its own threads do the work
    run.plan.threads = threads
    max_steps = float('inf') if args.max_steps is None else args.max_steps
    progress, stopper = TrainingProgress(args.quiet), Stopper()
    last_checkpoint, first_step = time.time(), p.step
    try:  # a signal during the last checkpoint is one more flag
        try:
            while p.epoch < s['epochs'] and p.step < max_steps and not stopper.signal:
                run.opt.lr = lr_at(s, p.epoch)
                if p.window == run.windows:
                    to_host()
                    end_epoch(run, out, val_ids, progress, say, args.sample_length, stopper, device)
                    if trainer is not None:
                        trainer.from_host(run)  # the new epoch's zero state
                    continue
                t = time.time()
                loss = train_window(run, chunked, trainer)
                progress.add(loss, chunked.shape[0] * s['window'], time.time() - t)
                progress.show(run, min((s['epochs'] - p.epoch) * run.windows - p.window, max_steps - p.step))
                if args.checkpoint_minutes and time.time() - last_checkpoint > 60 * args.checkpoint_minutes:
                    p.seconds += progress.lap()
                    to_host()
                    run.save(out, 'periodic')
                    last_checkpoint = time.time()
        except Stopped:
            pass
        to_host()
        if not stopper.signal and 0 < first_step == p.step >= max_steps:  # resumed at or past --max-steps
            say(f'the run in {out} is at step {p.step} already (--max-steps {args.max_steps}): nothing to do')
            return False
        if p.epoch < s['epochs'] or args.max_steps == p.step:
            why = f'{stopper.signal} received' if stopper.signal else f'--max-steps {args.max_steps} reached'
            p.seconds += progress.lap()
            run.opt.lr = lr_at(s, p.epoch)  # the rate of the epoch it stopped in
            row = log_row(run, progress.mean_loss(), None, None, why) if p.step > 0 else None
            run.save(out, 'interrupted' if stopper.signal else 'max-steps', row)
            why = (
                f'{stopper.signal} received' if stopper.signal else why
            )  # also one that came during the save
            say(
                f'{progress.end_line()}{why}: checkpoint saved in {out} at step {p.step}; continue with '
                '--resume'
            )
            return stopper.signal or False
        if stopper.signal:  # during the last epoch's sample: its checkpoint is saved
            say(f'{progress.end_line()}{stopper.signal} received: the run is done, its files in {out}')
            return stopper.signal
        return True
    finally:
        stopper.restore()


def main(argv=None, plan=None):
    """plan: the engine.Plan of a new run (tests fix its widths with one); None measures them. A resumed run
    computes as its checkpoint's plan says."""
    args = parse_args(argv)
    memory.check_fits(64 * args.sample_length, f'--sample-length {args.sample_length}')  # its characters
    if args.device:  # before anything is written
        cli.open_device(args.device)
    out = check_out(args)
    if not args.resume:  # sizes that no machine holds: refused before any work
        memory.check_fits(*training_size(settings_from(args)))
    created = not os.path.lexists(out)
    lock, accepted = lock_folder(out), False
    try:
        with saving(out, lambda: run.pos.step):
            run, changed = resumed_run(args, out) if args.resume else (new_run(args, out, plan), {})
            run.lock = lock
            chunked, val_ids = load_data(run)
            device = cli.open_device(run.settings['device'])
            if device is not None:
                devices.check_fits(device, *training_size(run.settings, len(run.chars)))
            accepted = True
            if args.resume:
                complete_stop(out)
            run_folder.remove_temporaries(out)  # a killed run's, now that this one goes on
            rescored = rescore_best(run, out, val_ids, changed, device) if will_train(run, args) else None
            report(run, args, changed, chunked, val_ids, rescored)
            say = (lambda text: None) if args.quiet else (lambda text: cli.write(text + '\n'))
            finished = train(run, out, chunked, val_ids, args, say, device)
    except run_folder.Moved:  # nothing written: the folder is wherever it went
        raise  # (one line, as every UserError)
    except BaseException:  # refused, or stopped (before its first checkpoint, or with one kept)
        leave(lock, out, created, accepted)
        raise
    finally:
        lock.release()
    if isinstance(finished, str):  # stopped by a signal: the status that signal gives
        return 128 + signal.Signals[finished]
    if finished:
        best = 'none' if run.pos.best_val is None else f'{nats(run.pos.best_val)} nats/char'
        say(f'done: {cli.count(run.pos.epoch, "epoch")}, best validation loss {best}; files in {out}')
    return 0


if __name__ == '__main__':
    cli.run(main)
