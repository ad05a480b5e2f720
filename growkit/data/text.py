"""Token streams for language models: the embedded corpus, a user's text file, nanoGPT-style token files.

A token dataset is one long sequence of integer token ids cut once into a training part and a
validation part (contiguous: the last ``val_fraction`` of the sequence is validation, so no window ever
straddles text the model trained on). A model sees windows of ``context`` consecutive tokens and predicts
each next token: the input of a window starting at ``s`` is ``tokens[s : s + context]`` and its target
``tokens[s + 1 : s + context + 1]``.

Dataset names (``--dataset``):

* ``shakespeare`` (the default, embedded): 42 plays and poems of Shakespeare from Project Gutenberg,
  5,057,321 characters, shipped compressed in ``growkit/data/corpora/shakespeare.txt.xz`` (1.6 MB);
  character-level tokens over its 84 distinct characters (the sorted characters of the whole corpus);
  nothing is downloaded. Provenance: docs/datasets.md.
* ``text:PATH``: a UTF-8 text file of your own, character-level, its vocabulary the file's sorted
  distinct characters.
* ``tokens:DIR``: nanoGPT's format, ``DIR/train.bin`` and ``DIR/val.bin`` of little-endian uint16 token
  ids (the split is the files'), the vocabulary size from ``DIR/meta.json`` (``{"vocab_size": N}``), else
  ``DIR/meta.pkl`` (nanoGPT's; read with an unpickler that builds nothing but plain containers), else
  the ``vocab_size`` argument. The files are memory-mapped: OpenWebText's 9 B tokens stay on disk.
* ``openwebtext`` / ``tinystories``: ``tokens:`` folders under the data root (``<root>/openwebtext``,
  ``<root>/tinystories``), GPT-2 BPE ids (vocabulary 50257) unless a meta file says otherwise.

Windows are drawn from a seed and a step number alone (:meth:`TokenData.train_batch`), so a resumed
run draws exactly the windows an uninterrupted one draws, with no generator state to save.
Validation uses a fixed set of evenly spaced windows (:meth:`TokenData.val_starts`).
"""
from __future__ import annotations

import io
import json
import lzma
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import GrowkitError, MissingData

CORPORA = Path(__file__).resolve().parent / "corpora"
TEXT_DATASETS = {
    # name: (file in growkit/data/corpora, one line on what it is)
    "shakespeare": ("shakespeare.txt.xz", "42 plays and poems of Shakespeare (Project Gutenberg), characters"),
}
TOKEN_DATASETS = {
    # name: (folder under the data root, vocabulary size when no meta file says, how to make the files)
    "openwebtext": ("openwebtext", 50257, "nanoGPT's data/openwebtext/prepare.py (GPT-2 BPE, about 17 GB of "
                                          "train.bin)"),
    "tinystories": ("tinystories", 50257, "tokenize TinyStories with GPT-2 BPE into uint16 train.bin / val.bin "
                                          "(the layout of nanoGPT's prepare.py scripts)"),
}
DEFAULT_VAL_FRACTION = 0.1
MAX_UINT16_VOCAB = 65536


@dataclass(frozen=True)
class TextInfo:
    """What a token dataset is: its name, vocabulary size, where it came from, and (character-level data)
    the characters of its vocabulary in id order."""
    name: str
    vocab_size: int
    source: str
    chars: str | None = None  # id i is chars[i]; None for token files

    def encode(self, text: str) -> list[int]:
        if self.chars is None:
            raise GrowkitError(f"{self.name} holds token ids; it has no character vocabulary to encode with")
        table = {c: i for i, c in enumerate(self.chars)}
        bad = next((c for c in text if c not in table), None)
        if bad is not None:
            raise GrowkitError(f"character {bad!r} is not in the vocabulary of {self.name}")
        return [table[c] for c in text]

    def decode(self, ids) -> str:
        if self.chars is None:
            raise GrowkitError(f"{self.name} holds token ids; it has no character vocabulary to decode with")
        return "".join(self.chars[int(i)] for i in ids)


def text_names() -> list[str]:
    """The names token datasets answer to (``text:`` and ``tokens:`` take a path after the colon)."""
    return [*TEXT_DATASETS, *TOKEN_DATASETS, "text:PATH", "tokens:DIR"]


def is_text_dataset(name: str) -> bool:
    n = str(name)
    return n.lower() in TEXT_DATASETS or n.lower() in TOKEN_DATASETS or n.startswith(("text:", "tokens:"))


# ----------------------------------------------------------------------------- reading

def char_vocab(text: str) -> str:
    """The vocabulary of character-level tokens: the text's distinct characters, sorted by code point."""
    return "".join(sorted(set(text)))


def encode_chars(text: str, chars: str) -> np.ndarray:
    """``text`` as ids into ``chars`` (uint16 when the vocabulary fits, else int32)."""
    dtype = np.uint16 if len(chars) <= MAX_UINT16_VOCAB else np.int32
    if all(ord(c) < 256 for c in chars) and text.isascii():  # the fast path: a byte lookup table
        table = np.zeros(256, dtype=dtype)
        table[[ord(c) for c in chars]] = np.arange(len(chars), dtype=dtype)
        return table[np.frombuffer(text.encode("latin-1"), dtype=np.uint8)]
    index = {c: i for i, c in enumerate(chars)}
    return np.fromiter((index[c] for c in text), dtype=dtype, count=len(text))


def read_embedded(name: str) -> str:
    """The embedded corpus ``name`` as text."""
    path = CORPORA / TEXT_DATASETS[name][0]
    try:
        return lzma.decompress(path.read_bytes()).decode("ascii")
    except FileNotFoundError:
        raise GrowkitError(f"{name}: the embedded corpus {path} is missing from this growkit installation; "
                           "reinstall growkit") from None
    except (lzma.LZMAError, UnicodeDecodeError, OSError) as e:
        raise GrowkitError(f"{name}: the embedded corpus {path} is damaged ({e}); reinstall growkit") from None


def read_text_file(path: str | Path) -> str:
    p = Path(path).expanduser()
    if not p.exists():
        raise MissingData(f"text file {p} does not exist; give the path of a UTF-8 text file "
                          "(--dataset text:/path/to/file.txt)")
    if not p.is_file():
        raise GrowkitError(f"{p} is not a regular file; --dataset text: takes a UTF-8 text file")
    try:
        return p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise GrowkitError(f"{p} is not UTF-8 text (byte {e.start}: {e.reason}); convert it to UTF-8") from None
    except OSError as e:
        raise GrowkitError(f"cannot read {p}: {e.strerror}") from None


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles plain containers, strings and numbers only: any class or function is refused, so a
    meta.pkl cannot run code."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"it refers to {module}.{name}")


def read_meta(folder: Path) -> int | None:
    """The vocabulary size a token folder's meta.json or meta.pkl states, or None when it has neither."""
    mj, mp = folder / "meta.json", folder / "meta.pkl"
    if mj.exists():
        try:
            meta = json.loads(mj.read_text())
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise GrowkitError(f"{mj} is not readable JSON ({' '.join(str(e).split())[:120]})") from None
        where = mj
    elif mp.exists():
        try:
            meta = _PlainUnpickler(io.BytesIO(mp.read_bytes())).load()
        except Exception as e:  # (any damage: truncated, foreign, or naming classes)
            raise GrowkitError(f"{mp} is not a plain pickled dict ({' '.join(str(e).split())[:120]}); "
                               "write meta.json with {\"vocab_size\": N} instead") from None
        where = mp
    else:
        return None
    v = meta.get("vocab_size") if isinstance(meta, dict) else None
    if not isinstance(v, int) or isinstance(v, bool) or not 1 < v <= MAX_UINT16_VOCAB:
        raise GrowkitError(f"{where}: vocab_size must be an integer in 2..{MAX_UINT16_VOCAB}, got {v!r}")
    return v


def read_token_file(path: Path, vocab_size: int, context: int) -> np.ndarray:
    """A nanoGPT token file (little-endian uint16 ids), memory-mapped and checked: whole uint16 values, at
    least ``context + 1`` tokens, every id below ``vocab_size``. The range check reads the file once in chunks
    (about a second per GB)."""
    if not path.is_file():
        raise GrowkitError(f"{path} is not a regular file")
    size = path.stat().st_size
    if size % 2:
        raise GrowkitError(f"{path} has {size:,} bytes, an odd count: not a file of uint16 token ids "
                           "(cut short or damaged)")
    n = size // 2
    if n < context + 1:
        raise GrowkitError(f"{path} holds {n:,} tokens, fewer than context + 1 = {context + 1}: too short for "
                           "one window")
    arr = np.memmap(path, dtype="<u2", mode="r", shape=(n,))
    chunk = 1 << 26
    for i in range(0, n, chunk):
        part = arr[i:i + chunk]
        hi = int(part.max())
        if hi >= vocab_size:
            at = i + int(np.argmax(part >= vocab_size))
            raise GrowkitError(f"{path}: token id {hi} (first bad one at position {at:,}) is not below the "
                               f"vocabulary size {vocab_size}; wrong vocab_size, or not a token file")
    return arr


# ----------------------------------------------------------------------------- the dataset

class TokenData:
    """A train / validation pair of token sequences and the windows a language model trains on.

    ``train`` and ``val``: 1-D arrays of token ids (numpy, possibly memory-mapped). Small sequences are
    copied to ``device`` once as int64 and windows are cut there with one gather; memory-mapped ones are
    cut on the host and copied per batch (pinned, non-blocking, on CUDA)."""

    def __init__(self, info: TextInfo, train: np.ndarray, val: np.ndarray, context: int,
                 device: str | torch.device = "cpu"):
        if context < 1:
            raise GrowkitError(f"context must be at least 1, got {context}")
        self.info, self.context, self.device = info, int(context), torch.device(device)
        for split, arr in (("train", train), ("validation", val)):
            if len(arr) < context + 1:
                raise GrowkitError(f"{info.name}: the {split} split has {len(arr):,} tokens, fewer than context + "
                                   f"1 = {context + 1}; use a shorter context or more text")
        self.arrays = {"train": train, "val": val}
        self._resident = {}
        for split, arr in self.arrays.items():
            if not isinstance(arr, np.memmap):
                self._resident[split] = torch.from_numpy(np.asarray(arr, dtype=np.int64)).to(self.device)

    def size(self, split: str) -> int:
        """Tokens in a split."""
        return len(self.arrays[split])

    def n_starts(self, split: str) -> int:
        """How many window positions a split has: a window needs ``context + 1`` tokens."""
        return self.size(split) - self.context

    def windows(self, split: str, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets ``[len(starts), context]`` (int64, on the device) of the windows at ``starts``."""
        T = self.context
        if split in self._resident:
            seq = self._resident[split]
            idx = starts.to(self.device, non_blocking=True)[:, None] + torch.arange(T + 1, device=self.device)
            xy = seq[idx]
        else:
            arr = self.arrays[split]
            xy = torch.from_numpy(np.stack([np.asarray(arr[s:s + T + 1], dtype=np.int64)
                                            for s in starts.tolist()]))
            if self.device.type == "cuda":
                xy = xy.pin_memory().to(self.device, non_blocking=True)
        return xy[:, :-1], xy[:, 1:]

    def train_starts(self, batch_size: int, seed: int, step: int) -> torch.Tensor:
        """The start positions of step ``step``'s windows: uniform over ``0 .. n_starts - 1``, drawn from a
        generator seeded with (``seed``, ``step``) alone."""
        g = torch.Generator().manual_seed(zlib.crc32(f"{seed}:windows:{step}".encode()))
        return torch.randint(0, self.n_starts("train"), (batch_size,), generator=g)

    def train_batch(self, batch_size: int, seed: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.windows("train", self.train_starts(batch_size, seed, step))

    def starts_for_steps(self, batch_size: int, seed: int, first: int, n: int) -> torch.Tensor:
        """``[n, batch_size]``: :meth:`train_starts` of steps ``first .. first + n - 1``, on the device of the
        windows (one pinned, non-blocking copy on CUDA instead of a synchronous one per step)."""
        starts = torch.stack([self.train_starts(batch_size, seed, first + i) for i in range(n)])
        if "train" in self._resident and self.device.type == "cuda":
            return starts.pin_memory().to(self.device, non_blocking=True)
        return starts

    def val_starts(self, n_windows: int) -> torch.Tensor:
        """``n_windows`` evenly spaced window starts over the validation split: ``floor(i * (n_starts - 1) /
        (n_windows - 1))`` for i = 0 .. n_windows - 1 (the first window at the split's start, the last
        ending at its end; one window: at 0). Fewer when the split has fewer positions."""
        m = self.n_starts("val")
        k = max(1, min(int(n_windows), m))
        if k == 1:
            return torch.zeros(1, dtype=torch.long)
        return torch.arange(k, dtype=torch.long) * (m - 1) // (k - 1)


def split_tokens(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, val): the first ``n - ceil(val_fraction * n)`` tokens and the rest."""
    if not 0 < val_fraction < 1:
        raise GrowkitError(f"val_fraction of a token dataset must be in (0, 1), got {val_fraction}")
    n_val = int(np.ceil(val_fraction * len(ids)))
    return ids[:len(ids) - n_val], ids[len(ids) - n_val:]


def _token_folder(name: str, folder: Path, vocab_size: int | None, default_vocab: int | None, how: str,
                  context: int, device) -> TokenData:
    if not folder.is_dir():
        raise MissingData(f"{name}: folder {folder} does not exist; it should hold train.bin and val.bin "
                          f"(uint16 token ids); make them with {how}")
    missing = [f for f in ("train.bin", "val.bin") if not (folder / f).exists()]
    if missing:
        raise MissingData(f"{name}: missing {len(missing)} file(s) under {folder}: {', '.join(missing)}; "
                          f"make them with {how}")
    meta = read_meta(folder)
    if vocab_size is not None and meta is not None and vocab_size != meta:
        raise GrowkitError(f"{name}: vocab_size {vocab_size} disagrees with the {meta} of {folder}'s meta file")
    v = vocab_size or meta or default_vocab
    if v is None:
        raise GrowkitError(f"{name}: no vocabulary size: {folder} has no meta.json or meta.pkl; pass vocab_size "
                           "(--vocab-size N)")
    if not 1 < v <= MAX_UINT16_VOCAB:
        raise GrowkitError(f"vocab_size must be in 2..{MAX_UINT16_VOCAB} for uint16 token files, got {v}")
    train = read_token_file(folder / "train.bin", v, context)
    val = read_token_file(folder / "val.bin", v, context)
    return TokenData(TextInfo(name, v, str(folder)), train, val, context, device)


def load_text(name: str = "shakespeare", *, context: int, root: str | Path | None = None,
              val_fraction: float | None = None, vocab_size: int | None = None,
              device: str | torch.device = "cpu") -> TokenData:
    """A token dataset by name (see the module's docstring), windows of ``context`` tokens."""
    from .catalog import resolve_root
    name = str(name)
    if not isinstance(context, int) or isinstance(context, bool) or context < 1:
        raise GrowkitError(f"context must be a positive integer, got {context!r}")
    vf = DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction
    key = name.lower()
    if key in TEXT_DATASETS or name.startswith("text:"):
        if vocab_size is not None:
            raise GrowkitError(f"{name} is character-level: its vocabulary comes from the text, not vocab_size")
        if key in TEXT_DATASETS:
            text, source = read_embedded(key), f"embedded: growkit/data/corpora/{TEXT_DATASETS[key][0]}"
        else:
            path = name[len("text:"):]
            if not path:
                raise GrowkitError("text: needs a file path, e.g. --dataset text:/path/to/file.txt")
            text, source = read_text_file(path), str(Path(path).expanduser().resolve())
        if not text:
            raise GrowkitError(f"{name}: the text is empty")
        chars = char_vocab(text)
        train, val = split_tokens(encode_chars(text, chars), vf)
        return TokenData(TextInfo(key if key in TEXT_DATASETS else name, len(chars), source, chars),
                         train, val, context, device)
    if val_fraction is not None:
        raise GrowkitError(f"{name} comes split (train.bin / val.bin); val_fraction does not apply")
    if name.startswith("tokens:"):
        path = name[len("tokens:"):]
        if not path:
            raise GrowkitError("tokens: needs a folder, e.g. --dataset tokens:/data/openwebtext")
        return _token_folder(name, Path(path).expanduser().resolve(), vocab_size, None,
                             "nanoGPT's data/*/prepare.py scripts", context, device)
    if key in TOKEN_DATASETS:
        sub, default_vocab, how = TOKEN_DATASETS[key]
        return _token_folder(key, resolve_root(root) / sub, vocab_size, default_vocab, how, context, device)
    raise GrowkitError(f"unknown token dataset {name!r}; valid: {', '.join(text_names())}")
