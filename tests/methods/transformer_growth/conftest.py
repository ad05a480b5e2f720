"""A small text corpus for the language-model tests (a user's own file, read through `text:FILE`)."""
import pytest

TEXT = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, "
        "must be in want of a wife.\n") * 12


@pytest.fixture
def corpus(tmp_path):
    f = tmp_path / "corpus.txt"
    f.write_text(TEXT)
    return f
