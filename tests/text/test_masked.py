"""The masked (discrete) diffusion LM: CLI round trip on the tiny config, exact clamping, CFG, the ELBO, bad input.

Exactness of the process, bound and sampler is tested in tests/core/test_discrete.py against enumerated truth;
here the app's wiring is checked against what it must be by construction.
"""

import json
import math

import pytest
import torch

from omnidiffusion.core.io import load_tensors
from omnidiffusion.text.checker import keeps_words, word_count
from omnidiffusion.text.cli import cli
from omnidiffusion.text.corpus import generate_corpus
from omnidiffusion.text.data import encode
from omnidiffusion.text.masked import MaskedDiffusionLM, pick_labels
from omnidiffusion.text.pipeline import load_lm

TINY = ["--config", "tiny", "--set", "model.kind=masked"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("masked") / "run"
    assert cli.main(["train", *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def lm(checkpoint):
    return load_lm(checkpoint)


def test_train_writes_a_masked_checkpoint_that_resumes(checkpoint, lm):
    assert isinstance(lm, MaskedDiffusionLM) and lm.labels  # conditional on the MR labels, no classifier dir
    assert (checkpoint / "run_config.json").is_file() and lm.config.model.kind == "masked"
    assert not (checkpoint / "classifier").exists() and (checkpoint / "teacher" / "config.json").is_file()
    before = load_tensors(checkpoint / "model.safetensors")
    assert cli.main(["train", *TINY, "--out", str(checkpoint)]) == 0
    after = load_tensors(checkpoint / "model.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_infilling_and_length_are_exact_by_construction(lm):
    template = ["The", "Eagle", None, "a", None, "near", "Burger", "King", "."]
    filled = lm.infill_many([template] * 6, steps=3, seed=1)
    assert all(keeps_words(template, x) for x in filled)
    texts = lm.generate(6, steps=4, control=[{"length": k} for k in (1, 3, 5, 8, 12, 30)])
    assert [word_count(x) for x in texts] == [1, 3, 5, 8, 12, 30]


def test_unmasking_rule_reaches_the_core_sampler(lm, monkeypatch):
    """generate and infill pass sampler.unmasking (default fixed-count) or the keyword to core.discrete.sample;
    with fixed-count and steps = seq_len - 1 every step reveals exactly one of the free positions."""
    from omnidiffusion.core import discrete

    seen = []
    real = discrete.sample

    def spy(*args, **kwargs):
        seen.append(kwargs["unmasking"])
        return real(*args, **kwargs)

    monkeypatch.setattr(discrete, "sample", spy)
    assert lm.config.sampler.unmasking == "fixed-count"
    lm.generate(2, steps=3)
    lm.generate(2, steps=3, unmasking="independent")
    lm.infill_many([["The", None, "is", "."]], steps=2, unmasking="independent")
    assert seen == ["fixed-count", "independent", "independent"]
    monkeypatch.setattr(discrete, "sample", real)
    mask = lm.process.mask_id
    counts = []
    frame = lm._frame(3)
    real(lm._model(torch.full((3,), -1), 1.0, frame[2]), (3, lm.seq_len), lm.process, lm.seq_len - 1,
         x_known=frame[1], known=frame[0], unmasking="fixed-count",
         callback=lambda i, t, x, p0: counts.append((x == mask).sum(1).tolist()))  # fmt: skip
    free = lm.seq_len - 1  # START is clamped
    assert counts == [[free - 1 - i] * 3 for i in range(free)]
    with pytest.raises(ValueError, match="unmasking: expected one of"):
        lm.generate(1, steps=2, unmasking="greedy")


def test_classifier_free_guidance_combines_the_two_log_probs(lm):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, lm.net.vocab_size + 1, (3, lm.seq_len), generator=g)
    t = torch.tensor([0.3, 0.6, 0.9])
    label = torch.tensor([0, 1, -1])
    cond = torch.log_softmax(lm.net(x, t, label.clamp(min=0)), -1)
    uncond = torch.log_softmax(lm.net(x, t), -1)
    words = torch.zeros(3, lm.seq_len, dtype=torch.bool)
    for w in (0.0, 1.0, 2.5):
        got = lm._model(label, w, words)(x, t)
        want = torch.where(torch.isfinite(cond), uncond + w * (cond - uncond), cond)
        torch.testing.assert_close(got[:2], want[:2])
        torch.testing.assert_close(got[2], uncond[2])  # no label: the unconditional model, whatever w


def test_one_step_elbo_is_the_all_masked_cross_entropy(lm):
    """With T = 1, x_1 is all [MASK] (alpha(1) = 0), so the bound is -sum_l log p(x0^l | all masked) exactly."""
    texts = [e.text for e in generate_corpus(3, seed=5)]
    ids = encode(lm.tokenizer, texts, lm.seq_len)
    masked = torch.full_like(ids, lm.net.mask_id)
    logp = torch.log_softmax(lm.net(masked, torch.ones(len(ids))).double(), -1)
    want = -logp.gather(-1, ids[..., None])[..., 0].sum(1)
    torch.testing.assert_close(lm.nelbo(texts, steps=1), want, rtol=1e-6, atol=1e-6)
    cont = lm.nelbo(texts, n_times=8)
    assert bool((cont > 0).all()) and bool(torch.isfinite(cont).all())
    bound = lm.perplexity_bound(texts, n_times=8)
    words = torch.tensor([len(t.split()) + 1 for t in texts], dtype=torch.float64)
    assert bound["bits_per_token"] == pytest.approx(float(cont.sum() / words.sum()) / math.log(2), rel=1e-6)


def test_label_dropout_picks_a_present_label_or_none():
    y = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]).repeat(200, 1)
    picked = pick_labels(y, null=3, dropout=0.25, generator=torch.Generator().manual_seed(0))
    rows = picked.view(200, 3)
    assert set(rows[:, 0].tolist()) <= {1, 2, 3} and set(rows[:, 1].tolist()) == {3}
    assert set(rows[:, 2].tolist()) <= {0, 3}
    assert 0.15 < (rows[:, 2] == 3).float().mean() < 0.35  # dropped with probability 0.25


def test_cli_generate_infill_evaluate_on_a_masked_checkpoint(checkpoint, capsys, tmp_path):
    args = ["--checkpoint", str(checkpoint), "--set", "sampler.steps=4"]
    assert cli.main(["generate", *args, "--n", "3", "--control", "food=Italian", "--control", "length=7"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[-3:]
    assert [word_count(x) for x in lines] == [7, 7, 7]
    assert cli.main(["infill", *args, "--n", "2", "--template", "The Eagle is a _ _ ."]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[-2:]
    assert all(keeps_words(["The", "Eagle", "is", "a", None, None, "."], x) for x in lines)
    data = tmp_path / "valid.txt"
    data.write_text("\n".join(e.line() for e in generate_corpus(5, seed=9)) + "\n")
    assert cli.main(["evaluate", *args, "--data", str(data), "--n", "4"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"]["infill_keep_rate"] == 1.0 and result["model"]["length_exact"] == 1.0
    assert result["model"]["elbo_ppl"] > 1.0 and "semantic_success" in result["model"]


def test_bad_input_on_the_masked_model(checkpoint, lm, cli_error):
    ck = ["--checkpoint", str(checkpoint)]
    cli_error(cli, ["generate", *ck, "--set", "sampler.method=dpm++2m"], "sampler.method", "ancestral", "dpm++2m")
    cli_error(cli, ["generate", *ck, "--control", "food=Martian"], "control", "Martian")
    cli_error(cli, ["generate", *ck, "--set", "sampler.guidance_scale=-1"], "sampler.guidance_scale", "-1")
    cli_error(cli, ["generate", *ck, "--set", "sampler.unmasking=greedy"], "sampler.unmasking", "greedy")
    cli_error(cli, ["generate", *TINY, *ck], "--config", "not used with --checkpoint")
    cli_error(cli, ["train", "--config", "tiny", "--set", "model.kind=discrete", "--out", "x"], "model.kind", "masked")
    cli_error(cli, ["train", *TINY, "--set", "masked.schedule=sqrt", "--out", "x"], "masked.schedule", "sqrt")
    cli_error(cli, ["train", *TINY, "--set", "masked.cond_dropout=2", "--out", "x"], "masked.cond_dropout", "2")
    cli_error(cli, ["infill", *ck, "--template", "The Eagle"], "template", "blank")
    with pytest.raises(ValueError, match="guidance_scale: expected a finite number"):
        lm.generate(1, guidance_scale=float("nan"))
    with pytest.raises(ValueError, match="steps: expected an integer >= 1, got 0"):
        lm.generate(1, steps=0)
    with pytest.raises(ValueError, match="texts: expected a non-empty list"):
        lm.nelbo([])


def test_a_masked_checkpoint_without_run_config_still_loads(checkpoint, tmp_path, capsys):
    """Written before run_config.json: load_lm picks the masked pipeline by the stored class, on the command line
    too (where the default config says model.kind = continuous)."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(checkpoint, old)
    (old / "run_config.json").unlink()
    lm_old, lm_new = load_lm(old), load_lm(checkpoint)
    assert isinstance(lm_old, MaskedDiffusionLM) and lm_old.config.model.kind == "masked"
    assert lm_old.generate(2, steps=3) == lm_new.generate(2, steps=3)
    assert cli.main(["generate", "--checkpoint", str(old), "--n", "2", "--set", "sampler.steps=3"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-2:] == lm_new.generate(2, steps=3)
