"""What records say about where they came from: the commit is the one a process started with."""

import subprocess

from ddgan_ref import provenance


def git(root, *args) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_git_commit_names_the_commit_a_process_started_with(tmp_path):
    """A commit made while a long run works (an hour's training) does not change what its later records name."""
    git(tmp_path, "init", "-q")
    for name, text in (("a", "1"), ("b", "2")):
        (tmp_path / name).write_text(text)
        git(tmp_path, "add", name)
        git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", name)
        if name == "a":
            started = git(tmp_path, "rev-parse", "HEAD")
            assert provenance.git_commit(tmp_path) == started
    assert git(tmp_path, "rev-parse", "HEAD") != started
    assert provenance.git_commit(tmp_path) == started


def test_git_commit_outside_a_checkout_is_none(tmp_path):
    assert provenance.git_commit(tmp_path / "nowhere") is None
