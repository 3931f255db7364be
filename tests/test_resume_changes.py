"""A resume that changes a setting: the learning rate that a changed schedule gives, and the best epoch scored
again where the validation text changed, so that best/ stays the best on the text the run validates on."""

import pytest

import data
import lstm
from util import runs
from util.run_start import make_optimizer
from util.weights import load_params

from helpers import TINY_LOUD, train

QUIET = ['--sample-length', '0']


def test_a_schedule_changed_on_resume_gives_the_rate_of_its_epoch_and_says_it(tmp_path, corpus, capsys):
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--epochs', '3', *TINY_LOUD, *QUIET) == 0
    capsys.readouterr()
    assert (
        train('--out', out, '--resume', '--epochs', '4', '--lr-decay', '0.5', '--decay-after', '0', *QUIET)
        == 0
    )
    printed = capsys.readouterr().out
    assert 'learning rate 0.001 -> 0.000125 in epoch 4' in printed, printed  # 0.001 x 0.5 ** 3
    assert [r[4] for r in runs.log_rows(out / runs.LOG)] == ['0.001'] * 3 + ['0.000125']
    assert train('--out', out, '--resume', '--epochs', '5', *QUIET) == 0
    assert 'learning rate' not in capsys.readouterr().out  # nothing changed
    assert train('--out', out, '--resume', '--epochs', '6', '--lr-decay', '1', *QUIET) == 0
    printed = capsys.readouterr().out
    assert 'lr_decay 0.5 -> 1.0' in printed and 'learning rate 3.125e-05 -> 0.001 in epoch 6' in printed, (
        printed
    )
    assert train('--out', out, '--resume', '--epochs', '7', '--decay-after', '9', *QUIET) == 0
    printed = capsys.readouterr().out  # no decay either way: the same rate
    assert 'decay_after 0 -> 9' in printed and 'learning rate' not in printed, printed


def test_another_val_chars_on_resume_scores_best_on_the_new_text_first(tmp_path, corpus, capsys):
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--epochs', '2', *TINY_LOUD, *QUIET) == 0
    old = runs.load_run(out, make_optimizer).pos.best_val
    ids, _ = data.read_corpus(corpus)
    val = data.split(ids, 0.1)[1][:40]
    best_before = lstm.evaluate(load_params(out / 'best' / 'ShakespeareNet.npz')[0], val)
    capsys.readouterr()
    assert train('--out', out, '--resume', '--epochs', '2', '--val-chars', '40', *QUIET) == 0
    assert 'the validation text changed' not in capsys.readouterr().out  # nothing left to train: no change
    assert train('--out', out, '--resume', '--epochs', '3', '--val-chars', '40', *QUIET) == 0
    printed = capsys.readouterr().out
    assert f'scores {best_before:.4f} nats/char on it ({old:.4f} on the old one)' in printed, printed
    epoch3 = float(printed.split('epoch 3: ')[1].split('validation loss ')[1].split()[0])
    pos = runs.load_run(out, make_optimizer).pos
    assert pos.best_val == pytest.approx(min(best_before, epoch3), abs=1e-4)  # on the same 40 characters
    best_now = lstm.evaluate(load_params(out / 'best' / 'ShakespeareNet.npz')[0], val)
    assert best_now == pytest.approx(pos.best_val, abs=1e-12)
