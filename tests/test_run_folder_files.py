"""What may stand where a training writes: never a link (it could lead out of the run folder), a lock file
that is a plain file, never the repository's own folders; a refused run leaves none of the folders it made,
and a folder that was there as it was."""

import os
import shutil
import subprocess
import types

import pytest

from util import cli, repo, run_folder, run_start, runs

from helpers import (
    SAVES,
    SHIPPED_CURVE,
    SHIPPED_LOG,
    TINY,
    assert_one_line_error,
    fails,
    read_bytes,
    run_here,
    train,
)


@pytest.mark.parametrize('name', [runs.CHECKPOINT, runs.WEIGHTS, runs.LOG])
def test_a_link_where_the_run_writes_a_file_is_refused(tmp_path, corpus, capsys, name):
    out = tmp_path / 'run'
    out.mkdir()
    (out / name).symlink_to(
        tmp_path / 'nothing'
    )  # a link to nothing yet: written, it would make a file there
    line = fails(capsys, '--corpus', corpus, '--out', out, *TINY)
    assert 'is not a file but a link' in line and 'choose another run folder' in line, line
    assert (out / name).is_symlink() and not (tmp_path / 'nothing').exists()


def make_link(path, outside):
    path.symlink_to(outside)


def make_folder(path, outside):
    path.mkdir()


def make_fifo(path, outside):
    os.mkfifo(path)


@pytest.mark.parametrize(
    'make, words', [(make_link, 'is a link'), (make_folder, 'is a folder'), (make_fifo, 'not a file')]
)
def test_a_lock_that_is_not_a_plain_file_is_refused_and_nothing_is_made_outside(
    tmp_path, corpus, capsys, make, words
):
    out = tmp_path / 'run'
    out.mkdir()
    make(out / '.lock', tmp_path / 'outside')
    line = fails(capsys, '--corpus', corpus, '--out', out, *TINY)
    assert words in line and 'remove it, or choose another run folder' in line, line
    assert not (tmp_path / 'outside').exists() and sorted(os.listdir(out)) == ['.lock']


def test_a_refused_run_leaves_none_of_the_folders_it_made(tmp_path, capsys):
    (tmp_path / 'latin1.txt').write_bytes('caf\xe9 au lait'.encode('latin-1'))
    line = fails(capsys, '--corpus', tmp_path / 'latin1.txt', '--out', tmp_path / 'a' / 'b' / 'run', *TINY)
    assert 'not UTF-8' in line
    assert os.listdir(tmp_path) == ['latin1.txt']


@pytest.mark.parametrize('to', ['elsewhere', '.'])
def test_a_best_folder_that_is_a_link_is_refused(tmp_path, corpus, capsys, to):
    """best/ is the run's own: a link would have the run write its best epoch elsewhere, or over itself."""
    out = tmp_path / 'run'
    out.mkdir()
    (tmp_path / 'elsewhere').mkdir()
    (out / 'best').symlink_to(tmp_path / to if to != '.' else '.')
    line = fails(capsys, '--corpus', corpus, '--out', out, *TINY)
    assert 'best is a link' in line and 'choose another run folder' in line, line
    assert os.listdir(tmp_path / 'elsewhere') == []


def test_a_refused_run_leaves_a_folder_that_was_there_as_it_was(tmp_path, corpus, capsys):
    out = tmp_path / 'run'
    out.mkdir()
    (out / 'notes.txt').write_text('mine')
    assert 'holds no run' in fails(capsys, '--out', out, '--resume')
    assert sorted(p.name for p in out.iterdir()) == ['notes.txt']  # no lock file left
    temporary = (
        out / '.ShakespeareNet.npz.abcdefgh.tmp'
    )  # named as this repo's: cleared by a run, not a refusal
    temporary.write_text('x')
    assert 'holds no run' in fails(capsys, '--out', out, '--resume')
    assert temporary.read_text() == 'x'
    temporary.unlink()
    (out / runs.CHECKPOINT).write_bytes(b'damaged')
    assert 'is not an .npz file' in fails(capsys, '--out', out, '--resume')
    assert sorted(p.name for p in out.iterdir()) == sorted(['notes.txt', runs.CHECKPOINT])
    (out / run_folder.LOCK).write_text('')  # a lock file of an earlier run stays
    assert 'is not an .npz file' in fails(capsys, '--out', out, '--resume')
    assert (out / run_folder.LOCK).exists()


def test_a_refused_resume_writes_nothing_not_even_what_a_stop_left(tmp_path, corpus, capsys):
    """The files a kill left unwritten are completed by a resume that goes on, not by one that is refused."""
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--max-steps', '3', *TINY) == 0
    for name in (runs.WEIGHTS, runs.LOG):  # killed before it wrote them
        (out / name).unlink()
    (tmp_path / 'other.txt').write_text(corpus.read_text() * 2)
    assert 'same --corpus' in fails(capsys, '--out', out, '--resume', '--corpus', tmp_path / 'other.txt')
    (tmp_path / 'reversed.txt').write_text(corpus.read_text()[::-1])  # its length and alphabet, not its text
    line = fails(capsys, '--out', out, '--resume', '--corpus', tmp_path / 'reversed.txt')
    assert 'not the text the run was trained on' in line and 'same --corpus' in line, line
    assert sorted(p.name for p in out.iterdir()) == sorted([run_folder.LOCK, runs.CHECKPOINT, runs.LOOKUP])
    assert train('--out', out, '--resume', '--max-steps', '3', '--quiet') == 0  # nothing to train: completes
    assert (out / runs.WEIGHTS).exists() and len(runs.log_rows(out / runs.LOG)) == 1


def test_the_repository_and_its_own_folders_are_refused_as_a_run_folder(tmp_path, corpus, capsys):
    (tmp_path / 'repo_link').symlink_to(cli.ROOT)
    for out in (cli.ROOT, cli.ROOT + '/', tmp_path / 'repo_link'):
        line = fails(capsys, '--corpus', corpus, '--out', out, *TINY)
        assert 'is the repository\'s folder:' in line and '--out runs/mine' in line, line
    assert not os.path.exists(os.path.join(cli.ROOT, run_folder.LOCK))
    for name, said in (
        ('tests', 'is the repository\'s own folder tests/:'),
        ('util', 'is the repository\'s own folder util/:'),
        (os.path.join('tests', 'robustness'), 'is inside the repository\'s own folder tests/:'),
        ('.git', 'is the repository\'s own folder .git/:'),
    ):
        line = fails(capsys, '--corpus', corpus, '--out', os.path.join(cli.ROOT, name), *TINY)
        assert said in line, line
    args = types.SimpleNamespace(out=cli.SAVES, overwrite_shipped_model=True)
    assert run_start.check_out(args) == cli.SAVES  # the shipped model, where asked for by name


def test_every_folder_of_the_repository_is_one_of_its_own():
    """A folder added to the repository must be in repo.REPO_FOLDERS: outputs and runs keep out of it."""
    if not os.path.isdir(os.path.join(cli.ROOT, '.git')):
        pytest.skip('not a git checkout')
    tracked = subprocess.run(['git', 'ls-files'], cwd=cli.ROOT, capture_output=True, text=True).stdout.split()
    assert {path.split('/')[0] for path in tracked if '/' in path} <= set(repo.REPO_FOLDERS)


def test_an_output_into_the_repositorys_own_folders_is_refused_unless_asked_for():
    """An explicit output path into images/, saves/, tests/ ... would replace the README's pictures or the
    shipped model, or go among the repository's files: refused, as a run's --out is; --overwrite-repo-files
    regenerates the repository's own figures (RESULTS.md's commands)."""
    curve = read_bytes(SHIPPED_CURVE)
    for args in (
        ('_plot.py', SHIPPED_LOG, '--out', SHIPPED_CURVE),
        ('_visualize.py', '--saturation', os.path.join(cli.ROOT, 'images', 'saturation.svg')),
        ('_convert.py', os.path.join(SAVES, runs.WEIGHTS), os.path.join(cli.ROOT, 'tests', 'x.json')),
    ):
        assert_one_line_error(run_here(*args), "is in the repository's own folder", '--overwrite-repo-files')
    assert not os.path.exists(os.path.join(cli.ROOT, 'tests', 'x.json'))
    assert read_bytes(SHIPPED_CURVE) == curve
    new = os.path.join(cli.ROOT, 'images', f'test-{os.getpid()}.svg')  # a new name: no file of the repo's
    try:
        r = run_here('_plot.py', SHIPPED_LOG, '--out', new, '--overwrite-repo-files')
        assert r.returncode == 0, r.stderr
        assert read_bytes(new) == curve
    finally:
        if os.path.exists(new):
            os.remove(new)


def test_convert_does_not_replace_a_runs_weights(tmp_path, small_model):
    """A run's weights go with its checkpoint and lookup table (in its folder and its best/): _convert.py does
    not write them, --force or not; another name in the folder is the user's."""
    weights = small_model[0]
    run = tmp_path / 'run'
    (run / run_folder.BEST).mkdir(parents=True)
    (run / runs.CHECKPOINT).write_bytes(b'')  # a run's folder
    (run / runs.WEIGHTS).write_bytes(b'kept')
    for out in (run / runs.WEIGHTS, run / run_folder.BEST / runs.WEIGHTS):
        r = run_here('_convert.py', weights, out.with_suffix('.json'))
        assert r.returncode == 0, r.stderr
        r = run_here('_convert.py', out.with_suffix('.json'), out, '--force')
        assert_one_line_error(r, 'is the weights file of the run', 'another folder')
    assert (run / runs.WEIGHTS).read_bytes() == b'kept' and not (
        run / run_folder.BEST / runs.WEIGHTS
    ).exists()


def test_a_copy_of_the_shipped_run_resumes_only_on_tiny_shakespeare(tmp_path, capsys):
    """Its checkpoint holds no fingerprint (it is older): tiny Shakespeare's is known, and checked."""
    shutil.copytree(SAVES, tmp_path / 'run')
    text = (tmp_path / 'run' / 'shakespeare.txt').read_text(encoding='utf-8')
    (tmp_path / 'edited.txt').write_text(text.replace('First', 'Fisrt', 1), encoding='utf-8')
    line = fails(capsys, '--out', tmp_path / 'run', '--resume', '--corpus', tmp_path / 'edited.txt')
    assert (
        'not the text the run was trained on' in line and 'tiny Shakespeare: resume without --corpus' in line
    )
