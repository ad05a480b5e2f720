"""Token datasets: the embedded corpus, text files, nanoGPT token files; split, windows, errors.

Every expected value here is computed by hand from the test's own small files (written in the real
formats), never read back from growkit."""
import hashlib
import json
import pickle

import numpy as np
import pytest
import torch

from growkit.data import text as T
from growkit.errors import GrowkitError, MissingData


def test_embedded_corpus_is_the_recorded_text():
    """The committed corpus is the one docs/datasets.md describes: its size, characters and digest."""
    s = T.read_embedded("shakespeare")
    assert len(s) == 5_057_321
    assert hashlib.sha256(s.encode("ascii")).hexdigest() == \
        "04decea0dd965df5e6cfc4a538b0c62623aaa3bfd848ac7fad6734e59c96624d"
    assert s.startswith("ALL'S WELL THAT ENDS WELL")
    assert len(set(s)) == 84


def test_split_is_contiguous_last_tenth_and_windows_are_shifted(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("abcdefghijklmnopqrst")  # 20 characters, vocabulary a..t -> 0..19
    # last ceil(0.1 * 20) = 2 tokens are validation: too few for a window of 3 + 1
    with pytest.raises(GrowkitError, match="validation split has 2 tokens"):
        T.load_text(f"text:{f}", context=3, val_fraction=0.1)
    d = T.load_text(f"text:{f}", context=3, val_fraction=0.25)  # ceil(5) -> val "pqrst"
    assert d.info.vocab_size == 20 and d.info.chars == "abcdefghijklmnopqrst"
    assert d.size("train") == 15 and d.size("val") == 5
    assert d.info.decode(d.arrays["val"]) == "pqrst"
    x, y = d.windows("train", torch.tensor([0, 11]))
    assert d.info.decode(x[0]) == "abc" and d.info.decode(y[0]) == "bcd"
    assert d.info.decode(x[1]) == "lmn" and d.info.decode(y[1]) == "mno"  # the last start: 15 - 3 - 1 = 11
    assert d.n_starts("train") == 12


def test_train_starts_are_seeded_in_range_and_independent_of_history(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("0123456789" * 10)  # 100 characters; train 90; starts 0..86 with context 3
    d = T.load_text(f"text:{f}", context=3)
    a = d.train_starts(4096, seed=7, step=5)
    assert int(a.min()) == 0 and int(a.max()) == 86  # uniform over every start, both ends reached
    d.train_starts(8, seed=7, step=4)  # drawing another step first changes nothing: no hidden generator
    assert torch.equal(d.train_starts(4096, seed=7, step=5), a)
    assert not torch.equal(d.train_starts(4096, seed=7, step=6), a)
    assert not torch.equal(d.train_starts(4096, seed=8, step=5), a)


def test_val_windows_are_evenly_spaced(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("x" * 80 + "abcdefghijklmnopqrst")  # val = last 10 = "klmnopqrst"
    d = T.load_text(f"text:{f}", context=4)
    assert d.info.decode(d.arrays["val"]) == "klmnopqrst"
    # starts 0..5 (10 - 4 - 1 = 5); 3 windows: floor(i * 5 / 2) = 0, 2, 5
    assert d.val_starts(3).tolist() == [0, 2, 5]
    assert d.val_starts(1).tolist() == [0]
    assert d.val_starts(100).tolist() == [0, 1, 2, 3, 4, 5]  # no more windows than positions
    x, y = d.windows("val", d.val_starts(3))
    assert [d.info.decode(r) for r in x] == ["klmn", "mnop", "pqrs"]
    assert [d.info.decode(r) for r in y] == ["lmno", "nopq", "qrst"]


def test_unicode_text_file(tmp_path):
    f = tmp_path / "u.txt"
    f.write_text("éa€b" * 10, encoding="utf-8")
    d = T.load_text(f"text:{f}", context=2)
    assert d.info.chars == "abé€"  # sorted by code point
    assert d.arrays["train"][:4].tolist() == [2, 0, 3, 1]


def _write_bin(folder, name, ids):
    np.asarray(ids, dtype="<u2").tofile(folder / name)


def test_token_files_with_meta_json_and_pkl(tmp_path):
    _write_bin(tmp_path, "train.bin", [5, 1, 300, 7, 2, 9])
    _write_bin(tmp_path, "val.bin", [3, 4, 0])
    (tmp_path / "meta.json").write_text(json.dumps({"vocab_size": 301}))
    d = T.load_text(f"tokens:{tmp_path}", context=2)
    assert d.info.vocab_size == 301 and d.size("train") == 6 and d.size("val") == 3
    x, y = d.windows("train", torch.tensor([1, 3]))
    assert x.tolist() == [[1, 300], [7, 2]] and y.tolist() == [[300, 7], [2, 9]]
    assert x.dtype == torch.long
    (tmp_path / "meta.json").unlink()
    with open(tmp_path / "meta.pkl", "wb") as fh:  # nanoGPT writes a dict with vocab_size, itos, stoi
        pickle.dump({"vocab_size": 400, "itos": {0: "a"}, "stoi": {"a": 0}}, fh)
    assert T.load_text(f"tokens:{tmp_path}", context=2).info.vocab_size == 400
    with pytest.raises(GrowkitError, match="disagrees"):
        T.load_text(f"tokens:{tmp_path}", context=2, vocab_size=500)


def test_meta_pkl_that_names_a_class_is_refused(tmp_path):
    _write_bin(tmp_path, "train.bin", [1, 2, 3])
    _write_bin(tmp_path, "val.bin", [1, 2, 3])
    with open(tmp_path / "meta.pkl", "wb") as fh:
        pickle.dump({"vocab_size": 10, "x": np.int64(3)}, fh)  # a numpy scalar: a class reference
    with pytest.raises(GrowkitError, match="not a plain pickled dict"):
        T.load_text(f"tokens:{tmp_path}", context=2)


@pytest.mark.parametrize("case, match", [
    ("odd", "odd count"),
    ("short", "fewer than context"),
    ("range", "token id 50 .* position 2"),
])
def test_bad_token_files_are_one_line_errors(tmp_path, case, match):
    _write_bin(tmp_path, "val.bin", [1, 2, 3, 4])
    if case == "odd":
        (tmp_path / "train.bin").write_bytes(b"\x01\x00\x02\x00\x03")
    elif case == "short":
        _write_bin(tmp_path, "train.bin", [1, 2, 3])  # 3 tokens < context 3 + 1
    else:
        _write_bin(tmp_path, "train.bin", [1, 2, 50, 3, 4])
    with pytest.raises(GrowkitError, match=match) as e:
        T.load_text(f"tokens:{tmp_path}", context=3, vocab_size=50)
    assert "\n" not in str(e.value)


def test_missing_files_say_which_and_how(tmp_path):
    _write_bin(tmp_path, "train.bin", [1, 2, 3, 4])
    with pytest.raises(MissingData, match=r"missing 1 file\(s\) under .*: val.bin; make them with"):
        T.load_text(f"tokens:{tmp_path}", context=2, vocab_size=10)
    with pytest.raises(MissingData, match="openwebtext.*does not exist.*prepare.py"):
        T.load_text("openwebtext", context=2, root=tmp_path)
    with pytest.raises(MissingData, match="does not exist"):
        T.load_text(f"text:{tmp_path / 'nope.txt'}", context=2)
    with pytest.raises(GrowkitError, match="no vocabulary size"):
        _write_bin(tmp_path, "val.bin", [1, 2, 3, 4])
        T.load_text(f"tokens:{tmp_path}", context=2)


def test_named_token_folder_under_the_data_root(tmp_path):
    (tmp_path / "tinystories").mkdir()
    _write_bin(tmp_path / "tinystories", "train.bin", [50256, 1, 2, 3])
    _write_bin(tmp_path / "tinystories", "val.bin", [4, 5, 6])
    d = T.load_text("tinystories", context=2, root=tmp_path)
    assert d.info.vocab_size == 50257 and d.size("train") == 4


def test_unknown_and_malformed_names(tmp_path):
    with pytest.raises(GrowkitError, match="unknown token dataset 'nope'"):
        T.load_text("nope", context=2)
    with pytest.raises(GrowkitError, match="text: needs a file path"):
        T.load_text("text:", context=2)
    with pytest.raises(GrowkitError, match="character-level"):
        T.load_text("shakespeare", context=2, vocab_size=10)
    (tmp_path / "b.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(GrowkitError, match="not UTF-8"):
        T.load_text(f"text:{tmp_path / 'b.txt'}", context=2)


def test_starts_for_many_steps_are_each_steps_own(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("0123456789" * 10)
    d = T.load_text(f"text:{f}", context=3)
    many = d.starts_for_steps(5, seed=2, first=7, n=3)
    assert many.shape == (3, 5)
    for i in range(3):
        assert torch.equal(many[i], d.train_starts(5, seed=2, step=7 + i))
