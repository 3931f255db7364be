"""Every option's mistyped values, and sizes no machine has: one line (exit 2) before any work."""

import pytest

from helpers import TINY, assert_one_line_error, run_here


HUGE = 2**70


@pytest.mark.parametrize(
    'name, args, words',
    [
        ('_training.py', ['--hidden', 10**7], ['--hidden 10000000', 'TiB', "this machine's"]),
        ('_training.py', ['--hidden', HUGE], ['--hidden', 'needs about']),
        ('_training.py', ['--chunks', HUGE], ['--chunks', 'needs about']),
        ('_training.py', ['--window', HUGE], ['--window', 'needs about']),
        ('_training.py', ['--layers', HUGE], ['--layers', 'needs about']),
        ('_training.py', ['--lr-decay', '1e200'], ['--lr-decay', '(0, 1]']),
        ('_benchmark.py', ['--hidden', 10**7], ['--hidden 10000000', 'needs about']),
        ('_benchmark.py', ['--vocab', HUGE], ['--vocab', 'needs about']),
        ('_benchmark.py', ['--layers', HUGE], ['--layers', 'needs about']),
        ('_benchmark.py', ['--chunks', HUGE], ['--chunks', 'needs about']),
        ('_sample.py', ['--num-samples', 10**9], ['--num-samples 1000000000', 'needs about']),
        ('_sample.py', ['--beam', 10**9], ['--beam 1000000000', 'needs about']),
        ('_sample.py', ['--length', HUGE], ['--length', 'needs about']),
        ('_evaluate.py', ['--blocks', 256, '--num-blocks', HUGE], ['--num-blocks', 'needs about']),
        ('_evaluate.py', ['--ngram', 10**9], ['--ngram 1000000000', 'needs about']),
    ],
)
def test_sizes_no_machine_has_are_refused_before_any_work_naming_the_memory(name, args, words, tmp_path):
    r = run_here(name, *args, '--out', tmp_path / 'run') if name == '_training.py' else run_here(name, *args)
    assert_one_line_error(r, *words)
    assert not (tmp_path / 'run').exists()


BAD_VALUES = {
    '_sample.py': [
        ('--length', ['0', '-5', 'ten', '1.5', '']),
        ('--temperature', ['-1', 'nan', 'inf', 'hot']),
        ('--top-k', ['-1', '2.5', 'x']),
        ('--top-p', ['0', '1.5', '-0.1', 'nan']),
        ('--seed', ['-1', '1.5', 'x']),
        ('--num-samples', ['0', '-2', 'x']),
        ('--start', ['']),
        ('--stop', ['']),
        ('--start-file', ['no/such.txt']),
        ('--weights', ['no/such.npz', '']),
        ('--lookup', ['no/such.json', '']),
    ],
    '_training.py': [
        ('--lr', ['0', '-1', 'nan', 'x']),
        ('--rho', ['0', '1', '1.5']),
        ('--eps', ['0', '-1']),
        ('--clip', ['-1', 'inf']),
        ('--weight-decay', ['-0.1']),
        ('--dropout', ['1', '-0.1', '2']),
        ('--weight-drop', ['1', '-1']),
        ('--variational', ['maybe', '']),
        ('--lr-decay', ['0', '-1']),
        ('--decay-after', ['-1', '2.5']),
        ('--epochs', ['0', '-1']),
        ('--ema', ['1', '-0.5']),
        ('--dtype', ['float16', '']),
        ('--seed', ['-1', '1.5']),
        ('--threads', ['0', '-1']),
        ('--max-steps', ['-1']),
        ('--layers', ['0']),
        ('--hidden', ['0', '-8']),
        ('--chunks', ['0']),
        ('--window', ['0']),
        ('--val-fraction', ['0', '1', '1.5']),
        ('--val-chars', ['-1']),
        ('--checkpoint-minutes', ['-1', 'nan']),
        ('--sample-length', ['-1']),
        ('--corpus', ['no/such.txt', '']),
    ],
    '_evaluate.py': [
        ('--val-fraction', ['0', '1', 'x']),
        ('--text', ['no/such.txt', '']),
        ('--corpus', ['no/such.txt']),
        ('--weights', ['no/such.npz']),
    ],
    '_visualize.py': [
        ('--layer', ['0', '-1', '3']),
        ('--state', ['x']),
        ('--neuron', ['-1', '16', 'x']),
        ('--html-chars', ['0']),
        ('--top', ['0']),
        ('--text', ['no/such.txt', '']),
    ],
    '_plot.py': [('--out', ['']), ('--ymax', ['0', '-1', 'nan', 'x']), ('--compare', ['no/such.csv', ''])],
    '_benchmark.py': [
        ('--threads', ['0']),
        ('--rounds', ['0']),
        ('--hidden', ['0']),
        ('--sample-length', ['0']),
        ('--warmup', ['-1']),
    ],
}


@pytest.mark.slow  # about 150 refusals: the sweep is in the full run
@pytest.mark.parametrize('name', sorted(BAD_VALUES))
def test_every_option_refuses_its_mistyped_values(made, tmp_path, name):
    run = made / 'run'
    model = ['--weights', run / 'ShakespeareNet.npz', '--lookup', run / 'ShakespeareLookup.json']
    base = {
        '_sample.py': model + ['--length', '5'],
        '_evaluate.py': model + ['--text', made / 'corpus.txt'],
        '_visualize.py': model + ['--text', made / 'corpus.txt', '--html', tmp_path / 'x.html'],
        '_training.py': ['--corpus', made / 'corpus.txt', '--out', tmp_path / 'out', *TINY],
        '_plot.py': [run / 'training_log.csv', '--out', tmp_path / 'x.svg'],
        '_benchmark.py': ['--hidden', '8', '--chunks', '2', '--window', '3', '--rounds', '1', '--no-torch'],
    }[name]
    cases = []
    for option, values in BAD_VALUES[name]:
        for value in values:
            args = [a for a in base]
            if option in args:  # the bad value replaces the good one
                k = args.index(option)
                args[k + 1] = value
            else:
                args += [option, value]
            cases.append((option, value, args))
    results = [run_here(name, *args) for _, _, args in cases]
    for (option, value, _), r in zip(cases, results):
        assert_one_line_error(r)
        assert option in r.stderr or 'does not exist' in r.stderr or 'empty' in r.stderr, (
            option,
            value,
            r.stderr,
        )
    for (option, value, _), r in zip(cases, results):  # refused for its value, not as an option out of place
        assert 'goes with' not in r.stderr, (option, value, r.stderr)
    assert not any((tmp_path / name).exists() for name in ('out', 'x.svg', 'x.html'))
