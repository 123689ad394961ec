"""Text side: a word-level `tokenizers` tokenizer trained on the captions and a small `transformers` encoder.

The encoder is a BERT built from a `BertConfig` (random init, nothing downloaded) and trained jointly with the
denoiser, as GLIDE trains its text transformer (Nichol et al. 2022, sec. 2.3). A user may instead point
`text.pretrained` at a local folder holding a transformers encoder (config.json + model.safetensors) and its
tokenizer.json; weights are read with safetensors only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from tokenizers.processors import TemplateProcessing
from tokenizers.trainers import WordLevelTrainer
from torch import Tensor, nn

PAD, UNK, CLS, SEP = "[PAD]", "[UNK]", "[CLS]", "[SEP]"
TOKENIZER_NAME = "tokenizer.json"


def train_tokenizer(captions: Iterable[str]) -> Tokenizer:
    """Word-level tokenizer over the lower-cased captions; encodings are [CLS] words [SEP]."""
    tok = Tokenizer(WordLevel(unk_token=UNK))
    tok.pre_tokenizer = WhitespaceSplit()
    trainer = WordLevelTrainer(special_tokens=[PAD, UNK, CLS, SEP], min_frequency=1)
    tok.train_from_iterator((c.lower() for c in captions), trainer=trainer)
    _finish(tok)
    return tok


def _finish(tok: Tokenizer) -> None:
    cls_id, sep_id = tok.token_to_id(CLS), tok.token_to_id(SEP)
    if cls_id is not None and sep_id is not None and tok.post_processor is None:
        tok.post_processor = TemplateProcessing(single=f"{CLS} $A {SEP}", special_tokens=[(CLS, cls_id), (SEP, sep_id)])


def save_tokenizer(tok: Tokenizer, directory: str | Path) -> Path:
    path = Path(directory) / TOKENIZER_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def load_tokenizer(directory: str | Path) -> Tokenizer:
    path = Path(directory) / TOKENIZER_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected a tokenizers JSON file)")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # the tokenizers library raises a plain Exception on bad JSON
        raise ValueError(f"{path}: not a readable tokenizers JSON file: {e}") from None


def encode_captions(tok: Tokenizer, captions: Sequence[str], max_length: int) -> tuple[Tensor, Tensor]:
    """(input_ids, attention_mask), both (B, max_length) int64; longer captions are cut (keeping [SEP])."""
    if isinstance(captions, str) or not all(isinstance(c, str) for c in captions):
        raise ValueError("captions: expected a list of strings")
    pad = tok.token_to_id(PAD)
    pad = 0 if pad is None else pad
    ids = torch.full((len(captions), max_length), pad, dtype=torch.int64)
    mask = torch.zeros((len(captions), max_length), dtype=torch.int64)
    for i, enc in enumerate(tok.encode_batch([c.lower() for c in captions])):
        row = enc.ids
        if len(row) > max_length:
            row = row[: max_length - 1] + row[-1:]
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.int64)
        mask[i, : len(row)] = 1
    return ids, mask


def bert_config(vocab_size: int, hidden: int, layers: int, heads: int, max_length: int) -> dict[str, Any]:
    """A small BertConfig as a plain dict (JSON: it is stored in the checkpoint's config.json)."""
    from transformers import BertConfig

    cfg = BertConfig(
        vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=4 * hidden, max_position_embeddings=max_length, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, pad_token_id=0,
    )
    return _plain(cfg.to_dict())


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    """Keep the JSON-like entries of a transformers config dict (label maps with int keys are left out)."""
    keep = (type(None), bool, int, float, str, list)
    drop = {"id2label", "label2id", "transformers_version"}
    return {k: v for k, v in d.items() if isinstance(v, keep) and not k.startswith("_") and k not in drop}


def build_encoder(text_config: dict[str, Any]) -> nn.Module:
    """A transformers encoder from its config dict (random init); `model_type` picks the architecture."""
    from transformers import AutoConfig, AutoModel

    cfg = dict(text_config)
    model_type = cfg.pop("model_type", "bert")
    config = AutoConfig.for_model(model_type, **cfg)
    if model_type == "bert":
        from transformers import BertModel

        return BertModel(config, add_pooling_layer=False)
    return AutoModel.from_config(config)


def load_pretrained_encoder(folder: str | Path) -> tuple[nn.Module, dict[str, Any], Tokenizer]:
    """A local transformers encoder folder (config.json + model.safetensors + tokenizer.json), nothing pickled."""
    from transformers import AutoModel

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"text.pretrained: {folder} has no config.json (expected a transformers folder)")
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"text.pretrained: {folder} has no model.safetensors (only safetensors are read)")
    tok = load_tokenizer(folder)
    _finish(tok)
    try:
        model = AutoModel.from_pretrained(str(folder), use_safetensors=True, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"text.pretrained: {folder}: cannot load a transformers model: {e}") from None
    if hasattr(model, "pooler"):
        model.pooler = None
    return model, _plain(model.config.to_dict()), tok


def hidden_size(text_config: dict[str, Any]) -> int:
    for key in ("hidden_size", "d_model", "dim"):
        if isinstance(text_config.get(key), int):
            return text_config[key]
    raise ValueError("text_config: no hidden_size / d_model / dim entry")


def run_encoder(encoder: nn.Module, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """Token features (B, L, D): the encoder's last hidden state."""
    out = encoder(input_ids=input_ids, attention_mask=attention_mask)
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]


def null_ids(tok: Tokenizer, max_length: int) -> tuple[Tensor, Tensor]:
    """The empty caption's encoding, the classifier-free guidance null condition (GLIDE uses an empty sequence)."""
    return encode_captions(tok, [""], max_length)

