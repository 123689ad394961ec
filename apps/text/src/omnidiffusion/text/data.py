"""Text data: the formats users have, the word-level tokenizer, and fixed-length token-id datasets.

Formats (each reader returns a list of `Example(mr, text)`; `mr` is {} when the format has none):
- E2E (`MR||text` per line, MR `field : value | ...` as in Diffusion-LM, or E2E's CSV-style `name[The Eagle], ...`),
- E2E's own CSV release (`trainset.csv`: columns mr, ref; MRs `name[The Eagle], eatType[pub], ...`),
- ROCStories CSV (columns sentence1..sentence5, as released; a story becomes one text),
- plain text, one sentence per line.

The tokenizer is word-level (Diffusion-LM keeps words seen more than 10 times in E2E train): a `tokenizers`
WordLevel model on whitespace-split words with PAD/UNK/START/END, saved as tokenizer.json beside the weights.
A sequence is `START w_1 .. w_n END PAD ... PAD` of fixed length (Diffusion-LM's `padding_mode pad`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from tokenizers.trainers import WordLevelTrainer
from torch import Tensor
from torch.utils.data import Dataset

from .checker import normalise_field
from .corpus import Example

PAD, UNK, START, END = "[PAD]", "[UNK]", "[START]", "[END]"
SPECIALS = (PAD, UNK, START, END)  # ids 0, 1, 2, 3
TOKENIZER_FILE = "tokenizer.json"
TRAIN_TEXTS = "train_texts.txt"  # the training sentences beside a checkpoint (memorisation rate)
FORMATS = ("auto", "e2e", "e2e-csv", "rocstories", "plain")


# ----------------------------------------------------------------------------------------------------------------
# Readers


def _check_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory (expected {what})")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected {what})")
    return path


def named(error: OSError | ValueError, name: str) -> OSError | ValueError:
    """`error` again with the argument that named the file (`--data`, `data.root`) before its message."""
    if isinstance(error, FileNotFoundError):
        return FileNotFoundError(f"{name}: {error}")
    return OSError(f"{name}: {error}") if isinstance(error, OSError) else ValueError(f"{name}: {error}")


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (expected {what}): {e}") from None


def _read_lines(path: Path, what: str) -> list[str]:
    return _read_text(path, what).splitlines()


def parse_mr(text: str) -> dict[str, str]:
    """An MR string in Diffusion-LM's `field : value | ...` or E2E's `field[value], ...` form -> {field: value}."""
    text = text.strip()
    pairs: list[tuple[str, str]]
    if "[" in text:
        pairs = re.findall(r"([^,\[\]]+)\[([^\]]*)\]", text)
    else:
        pairs = [tuple(p.split(":", 1)) for p in text.split("|") if p.strip()]  # type: ignore[misc]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"mr: expected `field : value | field : value`, got {text!r}")
    return {normalise_field(f): v.strip() for f, v in pairs}


def read_e2e(path: str | Path) -> list[Example]:
    """Read `MR||text` lines (blank lines skipped). ValueError names the first malformed line."""
    path = _check_file(path, "an E2E file with `MR||text` lines")
    out = []
    for i, line in enumerate(_read_lines(path, "E2E lines"), 1):
        if not line.strip():
            continue
        if "||" not in line:
            raise ValueError(f"{path}:{i}: expected `MR||text`, got {line[:80]!r}")
        mr, text = line.split("||", 1)
        try:
            out.append(Example(parse_mr(mr), " ".join(text.split())))
        except ValueError as e:
            raise ValueError(f"{path}:{i}: {e}") from None
    return _nonempty(out, path)


def read_plain(path: str | Path) -> list[Example]:
    """Read one sentence per line (blank lines skipped)."""
    path = _check_file(path, "a text file with one sentence per line")
    lines = _read_lines(path, "one sentence per line")
    return _nonempty([Example({}, " ".join(s.split())) for s in lines if s.strip()], path)


def read_e2e_csv(path: str | Path) -> list[Example]:
    """Read the E2E NLG challenge's CSV release (`trainset.csv`, `devset.csv`, `testset_w_refs.csv`): columns
    `mr` (`name[The Eagle], eatType[coffee shop], ...`) and `ref`; one example per (MR, reference) row."""
    path = _check_file(path, "an E2E CSV with columns mr,ref")
    reader = csv.DictReader(io.StringIO(_read_text(path, "an E2E CSV"), newline=""))
    if reader.fieldnames is None or not {"mr", "ref"} <= set(reader.fieldnames):
        raise ValueError(f"{path}: expected CSV columns mr and ref, got {reader.fieldnames}")
    out = []
    for i, row in enumerate(reader, 2):  # line 1 is the header
        text = " ".join((row["ref"] or "").split())
        if not text:
            continue
        try:
            out.append(Example(parse_mr(row["mr"] or ""), text))
        except ValueError as e:
            raise ValueError(f"{path}:{i}: {e}") from None
    return _nonempty(out, path)


def read_e2e_any(path: str | Path) -> list[Example]:
    """E2E examples with their MRs (the control targets) from either E2E form: a `.csv` with columns mr,ref
    (the challenge's release) or `MR||text` lines."""
    return read_e2e_csv(path) if Path(path).suffix.lower() == ".csv" else read_e2e(path)


def read_rocstories(path: str | Path) -> list[Example]:
    """Read the ROCStories CSV (columns sentence1 .. sentence5); each story is one text."""
    path = _check_file(path, "a ROCStories CSV with columns sentence1..sentence5")
    cols = [f"sentence{i}" for i in range(1, 6)]
    reader = csv.DictReader(io.StringIO(_read_text(path, "a ROCStories CSV"), newline=""))
    if reader.fieldnames is None or not set(cols) <= set(reader.fieldnames):
        raise ValueError(f"{path}: expected CSV columns {cols}, got {reader.fieldnames}")
    out = [Example({}, " ".join(" ".join(row[c] or "" for c in cols).split())) for row in reader]
    return _nonempty(out, path)


def _nonempty(examples: list[Example], path: Path) -> list[Example]:
    if not examples:
        raise ValueError(f"{path}: the corpus is empty (no non-blank lines)")
    return examples


def read_corpus(path: str | Path, fmt: str = "auto") -> list[Example]:
    """Read a corpus in `fmt` = e2e | e2e-csv | rocstories | plain | auto (a `.csv` with columns mr,ref is E2E's
    release, another `.csv` ROCStories; else `||` in the first line means E2E lines, otherwise plain)."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt: expected one of {FORMATS}, got {fmt!r}")
    path = _check_file(path, "a corpus file")
    if fmt == "auto":
        if path.suffix.lower() == ".csv":
            header = next(csv.reader(io.StringIO(_read_text(path, "a CSV corpus"))), [])
            fmt = "e2e-csv" if {"mr", "ref"} <= {h.strip() for h in header} else "rocstories"
        else:
            first = next((ln for ln in _read_lines(path, "a corpus") if ln.strip()), "")
            fmt = "e2e" if "||" in first else "plain"
    readers = {"e2e": read_e2e, "e2e-csv": read_e2e_csv, "rocstories": read_rocstories, "plain": read_plain}
    return readers[fmt](path)


# ----------------------------------------------------------------------------------------------------------------
# Tokenizer


def train_tokenizer(texts: Iterable[str], min_frequency: int = 1) -> Tokenizer:
    """A word-level tokenizer over whitespace-split words seen at least `min_frequency` times (ids 0-3: specials)."""
    texts = list(texts)
    if not any(t.strip() for t in texts):
        raise ValueError("texts: the corpus is empty; cannot build a vocabulary")
    if min_frequency < 1:
        raise ValueError(f"min_frequency: expected an integer >= 1, got {min_frequency}")
    tok = Tokenizer(WordLevel(unk_token=UNK))
    tok.pre_tokenizer = WhitespaceSplit()
    trainer = WordLevelTrainer(min_frequency=min_frequency, special_tokens=list(SPECIALS), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def save_tokenizer(tok: Tokenizer, directory: str | Path) -> Path:
    """Write `directory`/tokenizer.json (the tokenizers library's JSON; nothing pickled)."""
    path = Path(directory) / TOKENIZER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """Read `directory`/tokenizer.json written by `save_tokenizer`."""
    path = _check_file(Path(directory) / TOKENIZER_FILE, "a tokenizer.json saved with the model")
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # the tokenizers library raises a plain Exception on bad JSON
        raise ValueError(f"{path}: not a readable tokenizers JSON file: {e}") from None
    for i, s in enumerate(SPECIALS):
        if tok.token_to_id(s) != i:
            raise ValueError(f"{path}: expected special token {s} at id {i}, got {tok.token_to_id(s)}")
    return tok


def encode(tok: Tokenizer, texts: Sequence[str], seq_len: int) -> Tensor:
    """(N,) texts -> (N, seq_len) ids `START w.. END PAD..`; ValueError when a text does not fit."""
    rows = []
    for i, text in enumerate(texts):
        ids = tok.encode(text).ids
        if len(ids) + 2 > seq_len:
            raise ValueError(f"texts[{i}]: {len(ids)} words + START/END exceed seq_len={seq_len}")
        rows.append([2, *ids, 3] + [0] * (seq_len - len(ids) - 2))
    return torch.tensor(rows, dtype=torch.long).reshape(len(rows), seq_len)


def decode(tok: Tokenizer, ids: Tensor) -> list[str]:
    """(N, L) ids -> N texts: the words in slots 1..L-2 up to the first END (slot 0 is START's, L-1 END's at most;
    PAD/START/UNK inside are dropped), so a decoded text always fits START + words + END in L."""
    if ids.ndim != 2:
        raise ValueError(f"ids: expected shape (N, L), got {tuple(ids.shape)}")
    out = []
    for row in ids.tolist():
        words = []
        for j in row[1:-1]:
            if j == 3:
                break
            if j >= len(SPECIALS):
                words.append(tok.id_to_token(j))
        out.append(" ".join(words))
    return out


def fits(tok: Tokenizer, texts: Sequence[str], seq_len: int) -> list[str]:
    """The texts whose word count + 2 fits in seq_len (longer ones are dropped from training data)."""
    return [t for t in texts if len(tok.encode(t).ids) + 2 <= seq_len]


class TokenDataset(Dataset):
    """Fixed-length token ids (N, L) as a map-style dataset of (L,) long tensors."""

    def __init__(self, ids: Tensor, labels: Tensor | None = None) -> None:
        if ids.ndim != 2 or ids.dtype != torch.long:
            raise ValueError(f"ids: expected a (N, L) long tensor, got {tuple(ids.shape)} {ids.dtype}")
        if labels is not None and labels.shape[0] != ids.shape[0]:
            raise ValueError(f"labels: expected {ids.shape[0]} rows like ids, got {labels.shape[0]}")
        self.ids, self.labels = ids, labels

    def __len__(self) -> int:
        return self.ids.shape[0]

    def __getitem__(self, i: int):
        return self.ids[i] if self.labels is None else (self.ids[i], self.labels[i])
