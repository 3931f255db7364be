"""Where a training run is in its data (Position): epoch, window, step, the seconds trained, the validation
losses and the best epoch so far, with the operations that move it and the check of a saved one
(check_position), which util/checkpoint.py calls on a checkpoint's metadata."""

import math

COUNT_MAX = 2**53  # steps, epochs, windows and integer settings: beyond it a float or an int64 loses them
SECONDS_MAX = 1e12  # 30,000 years of training: a larger clock is damage (and would overflow as it runs)


def whole(value, least=0):
    """Whether value is a JSON integer (not a boolean) from `least` to COUNT_MAX."""
    return isinstance(value, int) and not isinstance(value, bool) and least <= value <= COUNT_MAX


def finite(value):
    """Whether value is a JSON number (not a boolean) that is finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_position(pos, bad):
    """The position's fields: counts that the run can still advance (at most COUNT_MAX), finite losses, a
    clock."""
    for name in ('epoch', 'window', 'step'):
        if not whole(pos.get(name)):
            bad(f'position.{name}', pos.get(name), 'not a whole number from 0 to 2**53')
    for name in ('best_val', 'val_loss'):
        if pos.get(name) is not None and not finite(pos[name]):
            bad(f'position.{name}', pos[name], 'not a finite number')
    if not finite(pos.get('seconds', 0.0)) or not 0 <= pos.get('seconds', 0.0) <= SECONDS_MAX:
        bad('position.seconds', pos['seconds'], f'not a number of seconds from 0 to {SECONDS_MAX:.0e}')
    if (
        not finite(pos.get('epoch_loss_sum', 0.0))
        or abs(pos.get('epoch_loss_sum', 0.0)) > 1e300
        or not whole(pos.get('epoch_steps', 0))
    ):
        bad(
            'position.epoch_loss_sum',
            [pos.get('epoch_loss_sum'), pos.get('epoch_steps')],
            'not a finite sum and a whole number of steps',
        )
    if pos.get('best_step') is not None and not (whole(pos['best_step']) and pos['best_step'] <= pos['step']):
        bad('position.best_step', pos['best_step'], 'not a step of the run')


def is_best(val_loss, best_so_far):
    """Whether an epoch's validation loss goes into best/: strictly lower than every earlier epoch's."""
    return best_so_far is None or val_loss < best_so_far


class Position:
    """Where a run is: whole epochs done, the window within the epoch, the step (windows trained in all), the
    seconds trained; the last epoch's validation loss, the best one so far and its step; the training losses
    of the epoch so far (for its mean, across resumes). Saved in the checkpoint as the JSON dict
    `position`."""

    def __init__(
        self,
        epoch=0,
        window=0,
        step=0,
        seconds=0.0,
        best_val=None,
        best_step=None,
        val_loss=None,
        epoch_loss_sum=0.0,
        epoch_steps=0,
    ):
        self.epoch, self.window, self.step, self.seconds = epoch, window, step, seconds
        self.best_val, self.best_step, self.val_loss = best_val, best_step, val_loss
        self.epoch_loss_sum, self.epoch_steps = epoch_loss_sum, epoch_steps

    def advance(self, loss):
        """One window trained, with this training loss."""
        self.window += 1
        self.step += 1
        self.epoch_loss_sum += float(loss)
        self.epoch_steps += 1

    def mean_loss(self):
        """The epoch's mean training loss so far (None before a step)."""
        return self.epoch_loss_sum / self.epoch_steps if self.epoch_steps else None

    def finish_epoch(self, val_loss):
        """The epoch validated with val_loss: the next one starts at its first window. Returns (the epoch's
        mean training loss, or None; whether val_loss is the best so far, which best_val and best_step then
        hold)."""
        train_loss = self.mean_loss()
        self.epoch_loss_sum, self.epoch_steps = 0.0, 0
        self.epoch, self.window, self.val_loss = self.epoch + 1, 0, val_loss
        improved = is_best(val_loss, self.best_val)
        if improved:
            self.best_val, self.best_step = val_loss, self.step
        return train_loss, improved

    def to_json(self):
        """The `position` dict of the checkpoint's metadata (check_meta checks it): the fields that hold a
        value."""
        pos = dict(
            epoch=self.epoch, window=self.window, step=self.step, best_val=self.best_val, seconds=self.seconds
        )
        if self.epoch_steps:
            pos.update(epoch_loss_sum=self.epoch_loss_sum, epoch_steps=self.epoch_steps)
        for name in ('val_loss', 'best_step'):
            if getattr(self, name) is not None:
                pos[name] = getattr(self, name)
        return pos

    @classmethod
    def from_json(cls, pos):
        """A Position from a checked `position` dict."""
        names = (
            'epoch',
            'window',
            'step',
            'seconds',
            'best_val',
            'best_step',
            'val_loss',
            'epoch_loss_sum',
            'epoch_steps',
        )
        return cls(**{k: pos[k] for k in names if k in pos})
