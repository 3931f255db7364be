"""Beam search (beam.py, `_sample.py --beam N`): the likeliest string an exhaustive search finds when the beam
holds every prefix, greedy decoding at width 1, and the same answer every time."""

import itertools

import numpy as np
import pytest

from extras import beam
from util.weights import load_params
import layers
import lstm
from helpers import assert_one_line_error, run_here
from reference import tiny_model


def all_scores(params, prime, seqs):
    """The total log-probability of each continuation in seqs (a list of equally long tuples) after prime, by
    layers.py's plain forward pass, all of them as one batch."""
    x = np.array([list(prime) + list(s) for s in seqs]).T  # (T, B)
    logits, _, _ = lstm.forward(params, x, lstm.zero_state(params, len(seqs)), reference=True)
    logp = np.log(layers.softmax(logits))  # (T, B, V): row t predicts character t + 1
    n = len(prime)
    return np.array([sum(logp[n - 1 + t, b, ch] for t, ch in enumerate(s)) for b, s in enumerate(seqs)])


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_a_beam_that_holds_every_prefix_finds_the_likeliest_string(seed):
    V, L = 3, 4
    params = tiny_model(np.random.default_rng(seed), V=V, H=4)
    prime = [1, 0]
    seqs = list(itertools.product(range(V), repeat=L))
    scores = all_scores(params, prime, seqs)
    ids, score = beam.search(params, prime, L, V ** (L - 1))
    assert tuple(ids) == seqs[int(np.argmax(scores))]
    assert score == pytest.approx(scores.max(), rel=1e-12)
    greedy, greedy_score = beam.search(params, prime, L, 1)
    assert greedy_score <= score  # greedy finds it only when it is also the likeliest
    assert greedy_score == pytest.approx(scores[seqs.index(tuple(greedy))], rel=1e-12)


@pytest.mark.parametrize('seed', [0, 3])
def test_with_a_stop_the_likeliest_finished_or_full_length_string(seed):
    V, L, stop = 3, 4, [2, 0]
    params = tiny_model(np.random.default_rng(seed), V=V, H=4)
    prime = [0]
    finished = set()  # every string the sampler could write: cut at the stop
    for s in itertools.product(range(V), repeat=L):
        for t in range(len(stop), L + 1):
            if list(s[t - len(stop) : t]) == stop:
                s = s[:t]
                break
        finished.add(s)
    best = max(finished, key=lambda s: all_scores(params, prime, [s])[0])
    ids, score = beam.search(params, prime, L, V ** (L - 1), stop)
    assert tuple(ids) == best
    assert score == pytest.approx(all_scores(params, prime, [best])[0], rel=1e-12)


def test_the_search_ends_once_the_best_is_finished_and_no_other_can_pass_it():
    """A stop reached by the best continuation settles the answer (the search's answers are checked against
    every string above): the search ends there, not at --length."""
    r = run_here('_sample.py', '--beam', 3, '--start', 'ROMEO:', '--stop', 'honour?', '--length', 100000)
    assert r.returncode == 0, r.stderr
    assert r.stdout == 'ROMEO:\nWhat says your honour?\n'


def test_width_one_is_greedy_decoding_as_sampling_at_temperature_zero():
    for dtype in (np.float64, np.float32):
        params = {k: v.astype(dtype) for k, v in tiny_model(np.random.default_rng(5), V=6, H=8).items()}
        prime = np.array([3, 1, 4, 1, 5])
        ids, _ = beam.search(params, prime, 40, 1)
        assert list(ids) == [int(ix[0]) for ix in lstm.sample(params, prime, 40, temperature=0)]
        stopped, _ = beam.search(params, prime, 40, 1, stop=list(ids[6:8]))
        assert list(stopped) == list(ids[: len(stopped)]) and list(stopped[-2:]) == list(ids[6:8])


def test_ties_are_broken_the_same_way_every_time():
    params = tiny_model(np.random.default_rng(0), V=4, H=3)
    params['dense.W'][:] = 0.0  # every character equally likely at every step
    params['dense.b'][:] = 0.0
    first = beam.search(params, [1], 6, 3)
    assert list(first[0]) == [0] * 6  # the first character in the alphabet, as np.argmax takes
    assert first[1] == pytest.approx(6 * np.log(0.25))
    again = beam.search(params, [1], 6, 3)
    assert list(again[0]) == list(first[0]) and again[1] == first[1]


def test_sample_beam_one_equals_temperature_zero_with_the_shipped_model():
    common = ['--length', 60, '--start', 'ROMEO:']
    a = run_here('_sample.py', *common, '--beam', 1)
    b = run_here('_sample.py', *common, '--temperature', 0)
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout and a.stdout.startswith('ROMEO:')


def test_sample_beam_prints_the_likeliest_and_its_log_probability(small_model):
    weights, lookup, chars = small_model
    model = ['--weights', weights, '--lookup', lookup, '--start', 'to be', '--length', 30]
    a = run_here('_sample.py', *model, '--beam', 4, '--seed', 1, '--show-logprob')
    b = run_here('_sample.py', *model, '--beam', 4, '--seed', 2)
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout  # nothing is drawn: the seed changes nothing
    params, _ = load_params(weights)
    prime = [chars.index(ch) for ch in 'to be']
    ids, score = beam.search(params, prime, 30, 4)
    assert a.stdout == 'to be' + ''.join(chars[i] for i in ids) + ('' if chars[ids[-1]] == '\n' else '\n')
    mean = float(a.stderr.split('mean log-probability ')[1].split()[0])
    assert mean == pytest.approx(score / 30, abs=6e-5)  # printed to 4 places
    assert 'over the 30 generated' in a.stderr


@pytest.mark.parametrize(
    'extra, words',
    [
        (['--temperature', '1'], '--temperature would do nothing'),
        (['--top-k', '3', '--top-p', '0.9'], '--top-k and --top-p would do nothing'),
        (['--num-samples', '2'], '--num-samples would do nothing'),
        (['--beam', '0'], 'not a positive integer'),
    ],
)
def test_sample_beam_refuses_the_options_it_would_ignore(small_model, extra, words):
    weights, lookup, _ = small_model
    r = run_here('_sample.py', '--weights', weights, '--lookup', lookup, '--beam', 2, *extra)
    assert_one_line_error(r, words)


def test_show_logprob_of_drawn_samples(small_model):
    weights, lookup, chars = small_model
    r = run_here(
        '_sample.py',
        '--weights',
        weights,
        '--lookup',
        lookup,
        '--start',
        'to',
        '--length',
        20,
        '--num-samples',
        2,
        '--seed',
        3,
        '--show-logprob',
        '--temperature',
        1,
    )
    assert r.returncode == 0, r.stderr
    params, _ = load_params(weights)
    texts = [block.split('\n', 1)[1][2:22] for block in r.stdout.split('=== sample ')[1:]]
    assert len(texts) == 2
    for k, text in enumerate(texts, start=1):
        ids = [chars.index(ch) for ch in 'to' + text]
        expected = -lstm.char_losses(params, ids)[1:].mean()
        shown = float(r.stderr.split(f'sample {k}: mean log-probability ')[1].split()[0])
        assert shown == pytest.approx(expected, abs=6e-5)
