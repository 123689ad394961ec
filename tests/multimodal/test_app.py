"""Multimodal app: data grammar, metrics against hand-worked cases and closed forms, the network and guidance,
save/load, the pretrained-encoder path and a CLI smoke run on the tiny config."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from omnidiffusion.core import ClassifierFreeGuidance, Denoiser
from omnidiffusion.core.latent import latent_schedule
from omnidiffusion.multimodal import cli as mm_cli
from omnidiffusion.multimodal.data import (
    HELD_OUT,
    canonical_caption,
    caption,
    labels_of,
    load_folder,
    make_split,
    parse_caption,
    sample_scenes,
    write_folder,
)
from omnidiffusion.multimodal.metrics import diversity, faithfulness, frechet_distance
from omnidiffusion.multimodal.models import TextToImageNet
from omnidiffusion.multimodal.text import bert_config, encode_captions, train_tokenizer


def tiny_net(vocab: int = 30, channels: int = 4, resolution: int = 8) -> TextToImageNet:
    torch.manual_seed(0)
    unet = {"in_channels": channels, "out_channels": channels, "base_channels": 8, "channel_mults": [1, 2],
            "num_res_blocks": 1, "attention_resolutions": [resolution // 2], "num_heads": 2,
            "resolution": resolution, "norm_groups": 4}
    net = TextToImageNet(unet, bert_config(vocab, 16, 1, 2, 16)).eval()
    torch.nn.init.normal_(net.unet.out_conv.weight, std=0.05)  # zero-init output would hide the text's effect
    for block in net.unet.modules():
        if hasattr(block, "proj") and isinstance(block.proj, torch.nn.Conv2d):
            torch.nn.init.normal_(block.proj.weight, std=0.05)
    return net


def test_grammar_round_trip_and_split():
    for scene in sample_scenes("train", 200):
        for swap in (False, True):
            assert parse_caption(caption(scene, swap)) == scene
    held = set(HELD_OUT)
    assert not any((o.colour, o.shape) in held for s in sample_scenes("train", 500) for o in s)
    assert all(any((o.colour, o.shape) in held for o in s) for s in sample_scenes("unseen", 200))
    # "a B right of a A" puts A on the left (slot A)
    assert labels_of(parse_caption("a large blue square right of a small red circle")) == [1, 0, 0, 0, 1, 2, 1]


def test_canonical_caption_puts_the_left_object_first():
    for scene in sample_scenes("judge", 200, seed=4):
        plain = caption(scene)
        assert canonical_caption(caption(scene, swap=True)) == plain
        assert canonical_caption(plain) == plain  # idempotent
    assert canonical_caption("A  Large blue SQUARE right of a small red circle") == (
        "a small red circle left of a large blue square")
    for outside in ("", "a purple cat", "two red circles"):  # outside the grammar: unchanged
        assert canonical_caption(outside) == outside


def test_canonical_order_reaches_training_and_sampling(tiny_run):
    from dataclasses import replace

    from omnidiffusion.multimodal.pipeline import TextToImage
    from omnidiffusion.multimodal.training import caption_loss

    said, canon = "a large blue square right of a small red circle", "a small red circle left of a large blue square"
    pipe = TextToImage.from_pretrained(tiny_run)
    assert pipe.config.text.canonical
    a, b = pipe.encode_prompts([said]), pipe.encode_prompts([canon])
    torch.testing.assert_close(a, b)
    raw = TextToImage(pipe.net, pipe.tokenizer, replace(pipe.config, text=replace(pipe.config.text, canonical=False)))
    assert not torch.allclose(raw.encode_prompts([said])[0], raw.encode_prompts([canon])[0])

    # training: the loss of a net whose output depends on the text sees the same caption for both phrasings
    net = tiny_net(vocab=pipe.tokenizer.get_vocab_size())
    config = replace(pipe.config, text=replace(pipe.config.text, caption_dropout=0.0))

    def loss(config, text):
        fn = caption_loss(lambda m: Denoiser(m, pipe.denoiser.schedule, "eps"), pipe.tokenizer, config,
                          lambda x: torch.zeros(1, 4, 8, 8))
        torch.manual_seed(0)
        return fn(net, (torch.zeros(1, 3, 32, 32), [text]))

    with torch.no_grad():
        assert loss(config, said) == loss(config, canon)
        raw_config = replace(config, text=replace(config.text, canonical=False))
        assert loss(raw_config, said) != loss(raw_config, canon)


def test_rendered_colours_and_sides():
    s = make_split("seen", 40, seed=3)
    assert s.images.shape == (40, 3, 32, 32) and s.images.min() >= -1 and s.images.max() <= 1
    for img, lab in zip(s.images, s.labels, strict=True):
        if lab[0] == 1:  # two objects: the left half's brightest pixel has A's colour channel ordering
            rgb = ((img + 1) * 127.5).round()
            left, right = rgb[:, :, :16].flatten(1), rgb[:, :, 16:].flatten(1)
            for half, colour in ((left, lab[2]), (right, lab[5])):
                top = half[:, half.sum(0).argmax()]
                if colour == 0:  # red
                    assert top[0] > top[1] and top[0] > top[2]
                elif colour == 2:  # blue
                    assert top[2] > top[0] and top[2] > top[1]


def test_folder_round_trip(tmp_path):
    s = make_split("seen", 5)
    write_folder(tmp_path / "d", s.images, s.captions)
    images, caps = load_folder(tmp_path / "d")
    assert caps == s.captions
    assert (images - s.images).abs().max() <= 1.0 / 127.5 + 1e-6  # uint8 quantisation only


def test_faithfulness_hand_worked():
    target = torch.tensor([[0, 1, 2, 0, -1, -1, -1], [1, 0, 1, 1, 2, 3, 0]])
    pred = torch.tensor([[0, 1, 2, 1, -1, -1, -1], [1, 0, 1, 1, 2, 0, 0]])
    f = faithfulness(pred, target)
    # objects: 3 (one in row 0, two in row 1); shapes all right, colours 2/3, sizes 2/3; no row fully right
    assert f == {"count": 1.0, "shape": 1.0, "colour": pytest.approx(2 / 3), "size": pytest.approx(2 / 3),
                 "all_correct": 0.0}
    assert faithfulness(target, target)["all_correct"] == 1.0


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    # two Gaussians with diagonal covariances: |mu1 - mu2|^2 + sum (s1 - s2)^2, from sample moments
    y = rng.normal(size=(4000, 3)) * np.array([2.0, 0.5, 1.0]) + np.array([1.0, 0.0, -2.0])
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    from scipy.linalg import sqrtm

    exact = ((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * np.real(sqrtm(s1 @ s2)))
    assert frechet_distance(x, y) == pytest.approx(exact, rel=1e-6)
    assert frechet_distance(x, y) == pytest.approx(5.0 + 1.0 + 0.25, rel=0.1)


def test_diversity_hand_worked():
    feats = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0], [1.0, 1.0], [9.0, 9.0]])
    assert diversity(feats, [0, 0, 1, 1, 2]) == pytest.approx((5.0 + 0.0) / 2)


def test_net_shapes_and_text_changes_output():
    tok = train_tokenizer(["a small red circle", "a large blue square left of a small green triangle"])
    ids, mask = encode_captions(tok, ["a small red circle", "a large blue square", ""], 16)
    assert ids.shape == (3, 16) and mask.sum(1).tolist() == [6, 6, 2]  # [CLS] words [SEP]
    net = tiny_net(tok.get_vocab_size())
    x, t = torch.randn(3, 4, 8, 8), torch.full((3,), 0.5)
    with torch.no_grad():
        out = net(x, t, input_ids=ids, attention_mask=mask)
        ctx = net.encode_text(ids, mask)
        again = net(x, t, context=ctx, context_mask=mask)
        flipped = net(x.flip(0), t, input_ids=ids.flip(0), attention_mask=mask.flip(0))
        other_text = net(x, t, input_ids=ids.flip(0), attention_mask=mask.flip(0))
    assert out.shape == x.shape
    torch.testing.assert_close(out, again)  # precomputed context = the training path
    torch.testing.assert_close(flipped, out.flip(0), atol=1e-5, rtol=1e-5)  # per-sample: no mixing across the batch
    assert (out[0] - other_text[0]).abs().max() > 1e-3  # the caption changes the output


def test_cfg_formula_and_w0_is_the_unconditional_path():
    tok = train_tokenizer(["a small red circle", "a large blue square"])
    net = tiny_net(tok.get_vocab_size())
    den = Denoiser(net, latent_schedule("scaled-linear", 1000), "eps")
    ids, mask = encode_captions(tok, ["a small red circle", "a large blue square"], 16)
    nids, nmask = encode_captions(tok, ["", ""], 16)
    with torch.no_grad():
        cond = {"context": net.encode_text(ids, mask), "context_mask": mask}
        null = {"context": net.encode_text(nids, nmask), "context_mask": nmask}
        x = torch.randn(2, 4, 8, 8)
        t = torch.full((2,), 0.6, dtype=torch.float64)
        eps_c = net(x, t.float(), **cond)
        eps_u = net(x, t.float(), **null)
        for w in (0.0, 3.0, 7.5):
            got = ClassifierFreeGuidance(den, w, null).predict(x, t, **cond)
            torch.testing.assert_close(got.eps, eps_u + w * (eps_c - eps_u), atol=1e-5, rtol=1e-5)
        zero = ClassifierFreeGuidance(den, 0.0, null).predict(x, t, **cond)
        torch.testing.assert_close(zero.x0, den.predict(x, t, **null).x0, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mm") / "run"
    code = mm_cli.cli.main(["train", "--config", "tiny", "--out", str(out)])
    assert code == 0
    return out


def test_cli_train_generate_evaluate(tiny_run, tmp_path, capsys):
    for part in ("run_config.json", "tokenizer.json", "latent.json", "autoencoder/model.safetensors",
                 "denoiser/model.safetensors", "denoiser/checkpoint/latest.json"):
        assert (tiny_run / part).is_file(), part
    png = tmp_path / "grid.png"
    assert mm_cli.cli.main(["generate", "--checkpoint", str(tiny_run), "--prompt", "a small red circle",
                            "--prompt", "a large blue square left of a small green triangle",
                            "--set", "sampler.samples=3", "--out", str(png)]) == 0
    from PIL import Image

    assert Image.open(png).size == (96, 64)
    capsys.readouterr()
    assert mm_cli.cli.main(["evaluate", "--checkpoint", str(tiny_run), "--prompts", "3", "--set", "sampler.samples=2",
                            "--set", "sampler.seed=1", "--reference", "8", "--classifier-steps", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["protocol"]["n_per_prompt"] == 2 and report["protocol"]["seed"] == 1
    assert set(report) == {"model", "baselines", "protocol"}
    assert {"unguided_w0", "conditional_w1", "real_images"} <= set(report["baselines"])
    assert {"all_correct", "frechet", "diversity", "colour"} <= set(report["model"])


def test_pipeline_round_trip_and_resume(tiny_run):
    from omnidiffusion.multimodal.pipeline import TextToImage

    pipe = TextToImage.from_pretrained(tiny_run)
    a = pipe.generate_tensor(["a small red circle"], n_per_prompt=2, seed=3)
    b = TextToImage.from_pretrained(tiny_run).generate_tensor(["a small red circle"], n_per_prompt=2, seed=3)
    assert a.shape == (2, 3, 32, 32)
    torch.testing.assert_close(a, b)
    images = pipe(["a small red circle"], n_per_prompt=1)
    assert images[0].size == (32, 32) and images[0].mode == "RGB"
    # a finished run resumes as a no-op: same final weights
    assert mm_cli.cli.main(["train", "--config", "tiny", "--out", str(tiny_run)]) == 0
    c = TextToImage.from_pretrained(tiny_run).generate_tensor(["a small red circle"], n_per_prompt=2, seed=3)
    torch.testing.assert_close(a, c)


def test_run_config_is_the_starting_point(tiny_run, capsys):
    from omnidiffusion.core.io import load_run_config
    from omnidiffusion.multimodal.pipeline import TextToImage
    from omnidiffusion.multimodal.settings import MultimodalConfig

    stored = load_run_config(tiny_run, MultimodalConfig)
    assert stored.sampler.guidance_scale == 2.0 and stored.sampler.steps == 3  # tiny.toml
    assert mm_cli.cli.main(["generate", "--checkpoint", str(tiny_run), "--prompt", "a circle", "--out", "x.png",
                            "--set", "sampler.steps=7", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["sampler"]["steps"] == 7 and printed["sampler"]["guidance_scale"] == 2.0
    pipe = TextToImage.from_pretrained(tiny_run)
    assert pipe.config == stored
    # the Python API and the sampler settings of the run config draw the same images
    torch.testing.assert_close(pipe.generate_tensor(["a small red circle"]),
                               pipe.generate_tensor(["a small red circle"], n_per_prompt=4, guidance_scale=2.0,
                                                    method="dpm++2m", steps=3, seed=0))


def test_a_run_from_before_run_config_still_loads(tiny_run, tmp_path, capsys):
    """Older runs kept their config in multimodal.json, with a [diffusion] table (space, betas, T)."""
    import shutil

    from omnidiffusion.core.config import to_dict
    from omnidiffusion.core.io import load_run_config, write_json
    from omnidiffusion.multimodal.pipeline import TextToImage
    from omnidiffusion.multimodal.settings import MultimodalConfig

    old = tmp_path / "old"
    shutil.copytree(tiny_run, old)
    (old / "run_config.json").unlink()
    config = load_run_config(tiny_run, MultimodalConfig)
    tables = to_dict(config)
    schedule = tables.pop("schedule")
    space = tables["unet"].pop("space")
    tables["diffusion"] = {"space": space, "betas": schedule["name"], "T": schedule["timesteps"]}
    write_json(old / "multimodal.json", tables)
    pipe = TextToImage.from_pretrained(old)
    assert pipe.config == config
    torch.testing.assert_close(pipe.generate_tensor(["a small red circle"], n_per_prompt=2),
                               TextToImage.from_pretrained(tiny_run).generate_tensor(["a small red circle"],
                                                                                     n_per_prompt=2))
    pngs = []
    for run in (old, tiny_run):  # the command starts from the stored sampler, then --set
        pngs.append(tmp_path / f"{run.name}.png")
        assert mm_cli.cli.main(["generate", "--checkpoint", str(run), "--prompt", "a small red circle",
                                "--set", "sampler.samples=2", "--out", str(pngs[-1])]) == 0
    assert pngs[0].read_bytes() == pngs[1].read_bytes()
    capsys.readouterr()


@pytest.mark.parametrize("command", sorted(mm_cli.cli.commands))
def test_every_command_has_help(command, capsys):
    assert mm_cli.cli.main([command, "--help"]) == 0
    assert "--set" in capsys.readouterr().out


def test_schedule_tables():
    from omnidiffusion.core import DiscreteVP
    from omnidiffusion.multimodal.settings import LatentScheduleConfig

    ldm = LatentScheduleConfig().build()
    np.testing.assert_array_equal(ldm.betas, latent_schedule("scaled-linear", 1000).betas)
    lin = LatentScheduleConfig(name="linear", timesteps=50, beta_end=0.05).build()
    np.testing.assert_array_equal(lin.betas, DiscreteVP.linear(50, beta_end=0.05).betas)


def test_overfit_loss_falls(tmp_path):
    from omnidiffusion.core.config import apply_override, load_config
    from omnidiffusion.multimodal.settings import MultimodalConfig
    from omnidiffusion.multimodal.training import train

    cfg = load_config(MultimodalConfig, "tiny", package="omnidiffusion.multimodal")
    for o in ("unet.space=pixel", "data.train_size=16", "train.steps=40", "train.lr=3e-3",
              "train.log_every=5", "train.ckpt_every=40", "unet.attention_resolutions=8"):
        cfg = apply_override(cfg, o)
    train(cfg, tmp_path / "px")
    rows = (tmp_path / "px" / "denoiser" / "log.csv").read_text().splitlines()[1:]
    losses = [float(r.split(",")[1]) for r in rows]
    assert np.mean(losses[-2:]) < 0.6 * losses[0]


def test_pretrained_text_encoder_folder(tmp_path):
    """A random BERT saved with save_pretrained (safetensors) + tokenizer.json is picked up by text.pretrained."""
    from transformers import BertConfig, BertModel

    from omnidiffusion.core.config import apply_override, load_config
    from omnidiffusion.multimodal.pipeline import TextToImage
    from omnidiffusion.multimodal.settings import MultimodalConfig
    from omnidiffusion.multimodal.text import save_tokenizer
    from omnidiffusion.multimodal.training import train

    tok = train_tokenizer(make_split("train", 300).captions)
    torch.manual_seed(0)
    enc = BertModel(BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=24, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=48, max_position_embeddings=16))
    folder = tmp_path / "encoder"
    enc.save_pretrained(folder, safe_serialization=True)
    save_tokenizer(tok, folder)
    cfg = load_config(MultimodalConfig, "tiny", package="omnidiffusion.multimodal")
    for o in (f"text.pretrained={folder}", "text.train_encoder=false", "train.steps=2", "autoencoder.train.steps=2"):
        cfg = apply_override(cfg, o)
    train(cfg, tmp_path / "run")
    pipe = TextToImage.from_pretrained(tmp_path / "run")
    assert pipe.net.unet.context_dim == 24
    ref = enc.embeddings.word_embeddings.weight
    torch.testing.assert_close(pipe.net.text_encoder.embeddings.word_embeddings.weight, ref)  # frozen, loaded


def test_import_loads_no_other_modality_library():
    code = ("import sys, omnidiffusion.multimodal.cli, omnidiffusion.multimodal.pipeline\n"
            "bad = [m for m in ('rdkit', 'torch_geometric', 'gluonts', 'torchattacks') if m in sys.modules]\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
