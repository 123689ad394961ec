"""The LJSpeech layout (Ito & Johnson 2017) and its vocoder split, read as plain text: nothing is unpickled.

    LJSpeech-1.1/
      metadata.csv     one row per clip, UTF-8, '|'-separated, no quoting:  LJ001-0001|raw text|normalized text
      wavs/<id>.wav    22,050 Hz mono 16-bit PCM
      training.txt     optional split files (HiFi-GAN's LJSpeech split, Kong et al. 2020: 12,950 / 150 clips),
      validation.txt   one clip per line, the id first: `LJ001-0001|...` or just `LJ001-0001`

`read_ljspeech(root)` checks every row (2 or 3 fields, a plain file-name id, no duplicate ids) and that each
wav exists; errors name the file and the line. `ljspeech_split(root, "train" | "validation" | "all")` returns
the clips of a split in the split file's order. The split files can live elsewhere (`split_dir`), since they
are not part of the LJSpeech archive: copy them from the HiFi-GAN repository (`LJSpeech-1.1/training.txt`,
`validation.txt`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

METADATA = "metadata.csv"
WAVS = "wavs"
SPLIT_FILES = {"train": "training.txt", "validation": "validation.txt"}
SPLITS = ("train", "validation", "all")
_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class LJSpeechClip:
    """One metadata row: the clip id, its raw and normalized transcriptions, and the wav's path."""

    id: str
    text: str
    normalized_text: str
    path: Path


def _lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file (a BOM and CRLF endings are accepted)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: expected UTF-8 text, got an undecodable byte at offset {e.start}") from None
    return text.splitlines()


def _check_id(value: str, path: Path, line: int) -> str:
    if not _ID.fullmatch(value):
        raise ValueError(
            f"{path}: line {line}: expected a clip id made of letters, digits, '_', '.' and '-' (a wav file "
            f"name without .wav), got {value!r}"
        )
    return value


def read_ljspeech(root: str | Path, *, check_wavs: bool = True) -> list[LJSpeechClip]:
    """Every row of `root`/metadata.csv in order, with wavs/<id>.wav; ValueError/FileNotFoundError name the file."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (expected LJSpeech-1.1 with metadata.csv and wavs/)")
    meta = root / METADATA
    if not meta.is_file():
        raise FileNotFoundError(f"{meta}: not found (expected the LJSpeech layout: metadata.csv and wavs/)")
    if not (root / WAVS).is_dir():
        raise FileNotFoundError(f"{root / WAVS}: not found (expected the LJSpeech layout: metadata.csv and wavs/)")
    clips: list[LJSpeechClip] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(_lines(meta), start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) not in (2, 3):
            raise ValueError(
                f"{meta}: line {number}: expected 3 '|'-separated fields (id|text|normalized text), "
                f"got {len(fields)}: {line[:80]!r}"
            )
        clip_id = _check_id(fields[0].strip(), meta, number)
        if clip_id in seen:
            raise ValueError(f"{meta}: line {number}: clip id {clip_id!r} repeats line {seen[clip_id]}")
        seen[clip_id] = number
        text = fields[1]
        normalized = fields[2] if len(fields) == 3 else text
        path = root / WAVS / f"{clip_id}.wav"
        if check_wavs and not path.is_file():
            raise FileNotFoundError(f"{meta}: line {number}: lists {clip_id!r} but {path} does not exist")
        clips.append(LJSpeechClip(clip_id, text, normalized, path))
    if not clips:
        raise ValueError(f"{meta}: expected at least one 'id|text|normalized text' row, got none")
    return clips


def read_split_file(path: str | Path, known: dict[str, LJSpeechClip]) -> list[LJSpeechClip]:
    """The clips listed in a split file (the id is the first '|' field of each non-blank line), in its order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such split file")
    out: list[LJSpeechClip] = []
    seen: set[str] = set()
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        clip_id = _check_id(line.split("|", 1)[0].strip(), path, number)
        if clip_id not in known:
            raise ValueError(f"{path}: line {number}: clip {clip_id!r} is not in {METADATA}")
        if clip_id in seen:
            raise ValueError(f"{path}: line {number}: clip {clip_id!r} is listed twice")
        seen.add(clip_id)
        out.append(known[clip_id])
    if not out:
        raise ValueError(f"{path}: expected at least one clip id, got an empty split file")
    return out


def ljspeech_split(
    root: str | Path, split: str = "train", *, split_dir: str | Path | None = None
) -> list[LJSpeechClip]:
    """The clips of `split`: "all" (every metadata row), "train" (training.txt) or "validation" (validation.txt).

    The split files are read from `split_dir` (default: `root`). The two splits must not share a clip.
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {list(SPLITS)}, got {split!r}")
    clips = read_ljspeech(root)
    if split == "all":
        return clips
    known = {c.id: c for c in clips}
    folder = Path(root if split_dir is None else split_dir)
    path = folder / SPLIT_FILES[split]
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: split file not found (copy HiFi-GAN's LJSpeech-1.1/{SPLIT_FILES[split]} there, point "
            f"data.split_dir at its folder, or use data.split = 'all' to train on every clip)"
        )
    chosen = read_split_file(path, known)
    other = folder / SPLIT_FILES["validation" if split == "train" else "train"]
    if other.is_file():
        shared = {c.id for c in chosen} & {c.id for c in read_split_file(other, known)}
        if shared:
            raise ValueError(
                f"{path}: shares {len(shared)} clip(s) with {other.name}, e.g. {sorted(shared)[0]!r} "
                "(the training and validation splits must be disjoint)"
            )
    return chosen
