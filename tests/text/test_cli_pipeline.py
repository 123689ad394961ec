"""CLI smoke test on the tiny config, the pipeline API and its input errors."""

import json

import pytest
import torch

from omnidiffusion.core.io import load_tensors
from omnidiffusion.text import DiffusionLM
from omnidiffusion.text.checker import keeps_words
from omnidiffusion.text.cli import cli
from omnidiffusion.text.corpus import generate_corpus


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("text") / "run"
    assert cli.main(["train", "--config", "tiny", "--out", str(out)]) == 0
    return out


def test_train_writes_a_loadable_resumable_checkpoint(checkpoint):
    for name in ("config.json", "model.safetensors", "tokenizer.json", "train_texts.txt"):
        assert (checkpoint / name).is_file()
    assert (checkpoint / "classifier" / "config.json").is_file() and (checkpoint / "teacher" / "config.json").is_file()
    before = load_tensors(checkpoint / "model.safetensors")
    assert cli.main(["train", "--config", "tiny", "--out", str(checkpoint)]) == 0  # finished: nothing retrained
    after = load_tensors(checkpoint / "model.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)
    lm = DiffusionLM.from_pretrained(checkpoint)
    assert lm.seq_len == 32 and lm.classifier is not None


def test_generate_and_infill_commands(checkpoint, capsys, tmp_path):
    out = tmp_path / "g.txt"
    args = ["--config", "tiny", "--checkpoint", str(checkpoint), "--steps", "4"]
    assert cli.main(["generate", *args, "--n", "3", "--control", "food=Italian", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 3
    assert cli.main(["infill", *args, "--n", "2", "--template", "The Eagle is a _ _ ."]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[-2:]
    assert all(keeps_words(["The", "Eagle", "is", "a", None, None, "."], ln) for ln in lines)


def test_evaluate_prints_model_and_baselines(checkpoint, capsys, tmp_path):
    data = tmp_path / "valid.txt"
    data.write_text("\n".join(e.line() for e in generate_corpus(5, seed=9)) + "\n")
    code = cli.main(["evaluate", "--config", "tiny", "--checkpoint", str(checkpoint), "--data", str(data),
                     "--n", "4", "--steps", "3"])  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"model", "baselines", "protocol"}
    assert {"semantic_success", "length_exact", "infill_keep_rate", "unguided_teacher_ppl"} <= set(result["model"])
    assert {"unigram", "teacher_lm", "unguided_diffusion"} <= set(result["baselines"])
    assert result["model"]["infill_keep_rate"] == 1.0  # known words come back exactly, even untrained
    assert result["protocol"]["steps"] == 3 and result["protocol"]["n"] == 4


def test_infill_keeps_given_words_exactly(checkpoint):
    lm = DiffusionLM.from_pretrained(checkpoint)
    template = ["There", "is", "a", None, "called", None, None, "."]
    for text in lm.infill(template, n=3, steps=5):
        assert keeps_words(template, text)


def test_bad_inputs(checkpoint, cli_error):
    lm = DiffusionLM.from_pretrained(checkpoint)
    with pytest.raises(ValueError, match="field"):
        lm.generate(2, steps=3, control={"cuisine": "Thai"})
    with pytest.raises(ValueError, match="not a known value"):
        lm.generate(2, steps=3, control={"food": "Martian"})
    with pytest.raises(ValueError, match="length"):
        lm.generate(2, steps=3, control={"length": 31})
    with pytest.raises(ValueError, match="one dict per sample"):
        lm.generate(2, steps=3, control=[{"length": 3}])
    with pytest.raises(ValueError, match="expected at most 30 words and blanks"):
        lm.infill(" ".join(["_"] * 31))
    with pytest.raises(ValueError, match="vocabulary"):
        lm.infill("The Zorblax is _ .")
    with pytest.raises(FileNotFoundError):
        DiffusionLM.from_pretrained(checkpoint / "nope")
    cli_error(cli, ["train", "--config", "tiny", "--set", "model.depth=3", "--out", checkpoint], "'depth'", "[model]")


def test_empty_corpus_is_refused(tmp_path, cli_error):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    argv = ["train", "--config", "tiny", "--set", f"data.path={empty}", "--out", tmp_path / "o"]
    cli_error(cli, argv, "data.path", "empty")
