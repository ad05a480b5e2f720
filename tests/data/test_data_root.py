"""One data-root rule for the command line, Python and the notebooks: --data-root / data_root, then $GROWKIT_DATA,
then data/ of the growkit checkout holding the working directory (./data outside one), always absolute; a missing
dataset's message suits where it is shown."""
import pytest

from growkit import cli
from growkit import data as D
from growkit.errors import GrowkitError, MissingData


@pytest.fixture
def checkout(tmp_path):
    """A growkit checkout's shape: growkit/__init__.py and notebooks/."""
    root = tmp_path / "clone"
    (root / "growkit").mkdir(parents=True)
    (root / "growkit" / "__init__.py").write_text("")
    (root / "notebooks" / "sub").mkdir(parents=True)
    return root


def test_an_explicit_root_wins_and_comes_back_absolute(tmp_path, monkeypatch, checkout):
    monkeypatch.setenv("GROWKIT_DATA", str(tmp_path / "env"))
    monkeypatch.chdir(checkout / "notebooks")
    assert D.resolve_root("mine") == checkout / "notebooks" / "mine"
    assert D.resolve_root(tmp_path / "abs") == tmp_path / "abs"


def test_the_environment_variable_comes_next(tmp_path, monkeypatch, checkout):
    monkeypatch.setenv("GROWKIT_DATA", str(tmp_path / "env"))
    monkeypatch.chdir(checkout / "notebooks")
    assert D.resolve_root(None) == tmp_path / "env"
    monkeypatch.setenv("GROWKIT_DATA", "rel")  # relative: to the working directory, made absolute
    assert D.resolve_root(None) == checkout / "notebooks" / "rel"


@pytest.mark.parametrize("where", [".", "notebooks", "notebooks/sub", "growkit"])
def test_without_either_the_checkouts_data_folder_from_anywhere_inside_it(monkeypatch, checkout, where):
    """A kernel runs in notebooks/, a shell at the root: both get the checkout's data/ (the old rule gave the
    kernel notebooks/data)."""
    monkeypatch.delenv("GROWKIT_DATA", raising=False)
    monkeypatch.chdir(checkout / where)
    assert D.resolve_root(None) == checkout / "data"
    assert D.find_checkout() == checkout


def test_outside_a_checkout_the_working_directorys_data(tmp_path, monkeypatch):
    monkeypatch.delenv("GROWKIT_DATA", raising=False)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert D.find_checkout() is None
    assert D.resolve_root(None) == tmp_path / "elsewhere" / "data"


def test_loading_from_a_notebook_folder_looks_in_the_checkouts_data(monkeypatch, checkout):
    monkeypatch.delenv("GROWKIT_DATA", raising=False)
    monkeypatch.chdir(checkout / "notebooks")
    with pytest.raises(MissingData) as e:
        D.load("cifar10")
    msg = str(e.value)
    assert f"missing 7 file(s) under {checkout / 'data'}:" in msg
    # in Python and in a notebook: the call that downloads, never a command-line flag
    assert "--download" not in msg
    assert f"growkit.data.load('cifar10', '{checkout / 'data'}', download=True)" in msg
    assert "cifar-10-python.tar.gz" in msg


def test_the_command_line_advises_its_flag(tmp_path, capsys):
    code = cli.main(["train", "--dataset", "cifar10", "--data-root", str(tmp_path / "empty"),
                     "--device", "cpu", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"under {tmp_path / 'empty'}:" in err and "rerun with --download" in err and "download=True" not in err
    assert not (tmp_path / "run").exists()


def test_a_dataset_that_cannot_be_downloaded_says_where_to_get_it(tmp_path):
    with pytest.raises(GrowkitError) as e:
        D.check_files(D.dataset_info("imagenet"), tmp_path)
    assert "image-net.org" in str(e.value) and "download" not in str(e.value).replace("downloaded", "")
    assert e.value.cli == str(e.value)
