"""CLI smoke test on the tiny config, the pipeline API and its input errors."""

import json

import pytest
import torch

from omnidiffusion.core.config import load_config
from omnidiffusion.core.io import load_run_config, load_tensors
from omnidiffusion.text import DiffusionLM
from omnidiffusion.text.checker import keeps_words
from omnidiffusion.text.cli import cli
from omnidiffusion.text.corpus import generate_corpus
from omnidiffusion.text.settings import TextConfig


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("text") / "run"
    assert cli.main(["train", "--config", "tiny", "--out", str(out)]) == 0
    return out


def test_train_writes_a_loadable_resumable_checkpoint(checkpoint):
    for name in ("config.json", "model.safetensors", "tokenizer.json", "train_texts.txt", "run_config.json"):
        assert (checkpoint / name).is_file()
    tiny = load_config(TextConfig, "tiny", package="omnidiffusion.text")
    stored = load_run_config(checkpoint, TextConfig)
    assert stored.schedule == tiny.schedule and stored.sampler == tiny.sampler and stored.model == tiny.model
    assert (checkpoint / "classifier" / "config.json").is_file() and (checkpoint / "teacher" / "config.json").is_file()
    before = load_tensors(checkpoint / "model.safetensors")
    assert cli.main(["train", "--config", "tiny", "--out", str(checkpoint)]) == 0  # finished: nothing retrained
    after = load_tensors(checkpoint / "model.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert cli.main(["train", "--config", "tiny", "--out", str(checkpoint), "--resume"]) == 0
    lm = DiffusionLM.from_pretrained(checkpoint)
    assert lm.seq_len == 32 and lm.classifier is not None
    assert lm.schedule.T == 200 and lm.config.sampler.steps == 10  # the tiny config's [schedule] and [sampler]


def test_train_refuses_no_resume_on_a_checkpoint(checkpoint, cli_error):
    cli_error(cli, ["train", "--config", "tiny", "--out", checkpoint, "--no-resume"], "resume=False", "checkpoint")


def test_generate_and_infill_commands(checkpoint, capsys, tmp_path):
    out = tmp_path / "g.txt"
    args = ["--checkpoint", str(checkpoint), "--set", "sampler.steps=4"]
    assert cli.main(["generate", *args, "--n", "3", "--control", "food=Italian", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 3
    assert cli.main(["infill", *args, "--n", "2", "--template", "The Eagle is a _ _ ."]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[-2:]
    assert all(keeps_words(["The", "Eagle", "is", "a", None, None, "."], ln) for ln in lines)


def test_command_line_and_python_sample_alike(checkpoint, capsys, tmp_path):
    """The stored run config + --set on the command line = from_pretrained's defaults + the same keywords."""
    out = tmp_path / "g.txt"
    sets = ["--set", "sampler.steps=3", "--set", "sampler.seed=7", "--set", "sampler.method=dpm++2m"]
    assert cli.main(["generate", "--checkpoint", str(checkpoint), "--n", "3", *sets, "--out", str(out)]) == 0
    lm = DiffusionLM.from_pretrained(checkpoint)
    assert out.read_text().splitlines() == lm.generate(3, steps=3, seed=7, method="dpm++2m")
    assert lm.generate(2, steps=3) == lm.generate(2, steps=3, seed=0, method="ddpm", grid="time-uniform")


def test_evaluate_prints_model_and_baselines(checkpoint, capsys, tmp_path):
    data = tmp_path / "valid.txt"
    data.write_text("\n".join(e.line() for e in generate_corpus(5, seed=9)) + "\n")
    code = cli.main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "--n", "4",
                     "--set", "sampler.steps=3"])  # fmt: skip
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
    argv = ["train", "--config", "tiny", "--set", f"data.root={empty}", "--out", tmp_path / "o"]
    cli_error(cli, argv, "data.root", "empty")


def test_a_checkpoint_without_run_config_still_loads(checkpoint, tmp_path, capsys):
    """Checkpoints written before run_config.json: the schedule comes from the weights' old metadata."""
    import shutil

    from omnidiffusion.core.io import load_pretrained, save_pretrained

    old = tmp_path / "old"
    shutil.copytree(checkpoint, old)
    (old / "run_config.json").unlink()
    save_pretrained(load_pretrained(checkpoint), old, metadata={"schedule": "sqrt", "T": 200, "seq_len": 32})
    lm = DiffusionLM.from_pretrained(old)
    assert lm.schedule.T == 200 and lm.config.sampler.steps == 200  # the default [sampler]
    new = DiffusionLM.from_pretrained(checkpoint)
    assert lm.generate(2, steps=3) == new.generate(2, steps=3)
    assert cli.main(["generate", "--checkpoint", str(old), "--n", "2", "--set", "sampler.steps=3"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-2:] == new.generate(2, steps=3)


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_help(command, capsys):
    assert cli.main([command, "--help"]) == 0
    assert "--set" in capsys.readouterr().out
