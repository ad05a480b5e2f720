"""A small text corpus for the language-model tests (a user's own file, read through `text:FILE`), and a run
killed at a checkpoint of one's choosing."""
import pytest

TEXT = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, "
        "must be in want of a wife.\n") * 12


@pytest.fixture
def corpus(tmp_path):
    f = tmp_path / "corpus.txt"
    f.write_text(TEXT)
    return f


class Killed(Exception):
    """Raised where a test kills a run (a KeyboardInterrupt-like stop the run does not handle)."""


def start_killed(cfg, out, kill_if) -> None:
    """Start ``growkit lm`` run ``cfg`` in ``out`` and kill it (raise :class:`Killed`) right after the first
    checkpoint at which ``kill_if(run)`` is true, as a kill signal would leave it."""
    import growkit.methods.transformer_growth.loop as loop
    from growkit.methods.transformer_growth import own_loop
    real_fit = loop.LMRun.fit

    def fit_then_kill(self, on_checkpoint=None):
        def both(run):
            if on_checkpoint is not None:
                on_checkpoint(run)
            if kill_if(run):
                raise Killed()
        return real_fit(self, on_checkpoint=both)

    loop.LMRun.fit = fit_then_kill
    try:
        with pytest.raises(Killed):
            own_loop.start(cfg, out)
    finally:
        loop.LMRun.fit = real_fit
