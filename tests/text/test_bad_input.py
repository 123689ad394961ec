"""Bad input to `omnidiffusion-text` and `DiffusionLM`: one clear error naming the argument and what was expected.

The checkpoint is built directly (an untrained tiny Diffusion-LM, classifier, teacher and run config saved as
`train` saves them), so no case trains anything; every CLI case goes through `AppCLI.main` and the shared
`cli_error` contract (exit 2, no traceback, one `: error: ` line holding the fragments).
"""

import math
import sys

import pytest
import torch

from omnidiffusion.core.checks import resolve_device
from omnidiffusion.core.io import save_pretrained, save_run_config
from omnidiffusion.text import DiffusionLM
from omnidiffusion.text import cli as cli_module
from omnidiffusion.text.cli import cli
from omnidiffusion.text.corpus import generate_corpus
from omnidiffusion.text.data import SPECIALS, TRAIN_TEXTS, save_tokenizer, train_tokenizer
from omnidiffusion.text.evaluation import evaluate
from omnidiffusion.text.models import AttributeClassifier, DiffusionLMNet, TeacherLM
from omnidiffusion.text.settings import (
    DataConfig,
    ModelConfig,
    TeacherConfig,
    TextConfig,
    TextSamplerConfig,
    TextScheduleConfig,
)
from omnidiffusion.text.training import label_names

SEQ_LEN = 12  # so a template holds at most 10 words and a length target is in [1, 10]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad_input") / "ckpt"
    examples = generate_corpus(60, seed=3)
    tok = train_tokenizer([ex.text for ex in examples])
    save_tokenizer(tok, out)
    torch.manual_seed(0)
    vocab = tok.get_vocab_size()
    net = DiffusionLMNet(vocab, 8, SEQ_LEN, 16, 1, 2, 32, 0.0, 16)
    save_pretrained(net, out, metadata={"kind": "diffusion-lm", "seq_len": SEQ_LEN})
    save_run_config(out, TextConfig(data=DataConfig(seq_len=SEQ_LEN), schedule=TextScheduleConfig(timesteps=20)))
    save_pretrained(AttributeClassifier(label_names(examples), 8, SEQ_LEN, 8, 1, 3), out / "classifier")
    save_pretrained(TeacherLM(vocab, SEQ_LEN, 16, 1, 2), out / "teacher")
    (out / TRAIN_TEXTS).write_text("\n".join(ex.text for ex in examples) + "\n")
    return out


@pytest.fixture(scope="module")
def lm(checkpoint):
    return DiffusionLM.from_pretrained(checkpoint)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_files")
    (d / "empty.txt").write_text("")
    (d / "malformed.txt").write_text("name : The Eagle | food : Italian||The Eagle serves Italian food .\nno bars\n")
    (d / "binary.txt").write_bytes(b"\xff\xfe\x00\x81||x\n")
    (d / "good.txt").write_text("name : The Eagle | food : Italian||The Eagle serves Italian food .\n")
    (d / "no_weights").mkdir()
    return d


GEN = ["generate", "--set", "sampler.steps=2"]
INF = ["infill", "--set", "sampler.steps=2", "--n", "1"]
EVA = ["evaluate", "--set", "sampler.steps=2", "--n", "2"]
TRAIN = ["train", "--config", "tiny"]

_CLI = [
    # argv ({files} is filled in; --checkpoint and --out added where missing), then what the one error line holds
    (GEN + ["--n", "0"], "--n", "expected an integer >= 1", "got 0"),
    (GEN + ["--n", "-1"], "--n", "expected an integer >= 1"),
    (GEN + ["--n", "2.5"], "--n", "expected an integer >= 1", "'2.5'"),
    (INF + ["--template", "The _ .", "--n", "0"], "--n", "expected an integer >= 1"),
    (EVA + ["--data", "{files}/good.txt", "--n", "0"], "--n", "expected an integer >= 1"),
    (GEN + ["--set", "sampler.steps=0"], "sampler.steps", "expected an integer >= 1", "got 0"),
    (INF + ["--template", "The _ .", "--set", "sampler.steps=-2"], "sampler.steps", "expected an integer >= 1"),
    (GEN + ["--set", "sampler.seed=-1"], "sampler.seed", "expected an integer in [0, 18446744073709551615]"),
    (GEN + ["--device", "gpu"], "--device", "expected auto, cpu, cuda or cuda:N", "'gpu'"),
    (GEN + ["--set", "sampler.method=bogus"], "sampler.method", "expected one of", "'bogus'"),
    (GEN + ["--set", "sampler.grid=bogus"], "sampler.grid", "expected one of", "'auto'", "'bogus'"),
    (GEN + ["--set", "sampler.guidance_lr=nan"], "sampler.guidance_lr", "expected a finite number in (0, inf)"),
    (GEN + ["--set", "sampler.semantic_fluency=-1"], "sampler.semantic_fluency", "in [0, inf)"),
    (GEN + ["--set", "sampler.batch_size=0"], "sampler.batch_size", "expected an integer >= 1"),
    (GEN + ["--set", "sampler.bogus=1"], "unknown config key 'bogus'", "[sampler]"),
    (GEN + ["--set", "schedule.timesteps=0"], "schedule.timesteps", "expected an integer >= 1"),
    (GEN + ["--config", "tiny"], "--config", "not used with --checkpoint"),
    (GEN + ["--steps", "5"], "unrecognized arguments: --steps"),
    (GEN + ["--method", "ddpm"], "unrecognized arguments: --method"),
    (GEN + ["--seed", "1"], "unrecognized arguments: --seed"),
    (GEN + ["--control", "food=Martian"], "control", "'Martian'", "known"),
    (GEN + ["--control", "cuisine=Thai"], "control", "field: expected one of", "'cuisine'"),
    (GEN + ["--control", "length=0"], "control['length']", "expected an integer in [1, 10]", "got 0"),
    (GEN + ["--control", "length=11"], "control['length']", "expected an integer in [1, 10]"),
    (GEN + ["--control", "length"], "--control", "expected FIELD=VALUE or length=N"),
    (GEN + ["--out", "{files}/no/such/dir/out.txt"], "--out", "expected a file in an existing folder"),
    (GEN + ["--checkpoint", "{files}/missing"], "--checkpoint", "no such directory", "expected a directory"),
    (GEN + ["--checkpoint", "{files}/no_weights"], "--checkpoint", "no config.json"),
    (INF + ["--template", "The Eagle is a pub ."], "template", "expected at least one `_` blank"),
    (INF + ["--template", " ".join(["_"] * 11)], "template", "expected at most 10 words and blanks", "got 11"),
    (INF + ["--template", "The Zorblax is _ ."], "template", "expected words of the model's vocabulary", "'Zorblax'"),
    (INF + ["--template", "The [END] is _ ."], "template", "special token", "'[END]'"),
    (INF + ["--template", "   "], "template", "empty template"),
    (INF + ["--template", "The _ .", "--method", "ddpm"], "unrecognized arguments: --method"),
    (INF + ["--template", "The _ .", "--set", "sampler.infill_resample=0"], "sampler.infill_resample", ">= 1"),
    (EVA + ["--data", "{files}/missing.txt"], "--data", "no such file", "expected an E2E file"),
    (EVA + ["--data", "{files}/empty.txt"], "--data", "empty"),
    (EVA + ["--data", "{files}/malformed.txt"], "--data", "malformed.txt:2", "expected `MR||text`"),
    (EVA + ["--data", "{files}/binary.txt"], "--data", "not UTF-8 text"),
    (EVA + ["--data", "{files}"], "--data", "is a directory"),
    (TRAIN + ["--set", "model.dropout=1.5"], "model.dropout", "expected a finite number in [0, 1)", "1.5"),
    (TRAIN + ["--set", "model.num_heads=3"], "model.hidden_size", "multiple of model.num_heads=3"),
    (TRAIN + ["--set", "data.format=bogus"], "data.format", "expected one of", "'bogus'"),
    (TRAIN + ["--set", "data.seq_len=2"], "data.seq_len", "expected an integer >= 3"),
    (TRAIN + ["--set", "schedule.name=bogus"], "schedule.name", "'sqrt'"),
    (TRAIN + ["--set", "schedule.timesteps=0"], "schedule.timesteps", "expected an integer >= 1"),
    (TRAIN + ["--set", "diffusion.T=10"], "unknown config key 'diffusion'"),
    (TRAIN + ["--resume"], "resume=True", "no checkpoint"),
    (TRAIN + ["--set", "classifier.kernel_size=4"], "classifier.kernel_size", "odd"),
    (TRAIN + ["--set", "data.root={files}/missing.txt"], "data.root", "no such file"),
    (TRAIN + ["--set", "data.path={files}/empty.txt"], "data.root", "empty"),  # the old name still reads
]
CLI_CASES = [(case[0], case[1:]) for case in _CLI]


@pytest.mark.parametrize("argv, fragments", CLI_CASES, ids=[" ".join(c[0][:1] + c[0][5:]) for c in CLI_CASES])
def test_cli_refuses_bad_input(cli_error, checkpoint, files, tmp_path, argv, fragments):
    argv = [a.format(files=files) for a in argv]
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "run")]
    elif "--checkpoint" not in argv:
        argv += ["--checkpoint", str(checkpoint)]
    if argv[0] == "infill" and "--template" not in argv:
        argv += ["--template", "The _ ."]
    cli_error(cli, argv, *fragments)
    if argv[0] == "train":  # refused before anything is written
        assert not (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cli_device_cuda_without_gpu_is_one_error(cli_error, checkpoint):
    cli_error(cli, GEN + ["--checkpoint", checkpoint, "--device", "cuda"], "--device", "no CUDA GPU is usable here")


def test_device_defaults_to_auto():
    args = cli.parser.parse_args(["generate", "--checkpoint", "x"])
    assert args.device == resolve_device("auto")
    assert args.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_console_script_exits_2(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["omnidiffusion-text", "generate", "--checkpoint", "x", "--n", "0"])
    with pytest.raises(SystemExit) as e:
        cli_module.main()
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "omnidiffusion-text generate: error: argument --n: expected an integer >= 1, got 0"
    )


def test_refused_generate_writes_no_output_file(cli_error, checkpoint, tmp_path):
    out = tmp_path / "g.txt"
    cli_error(cli, GEN + ["--checkpoint", checkpoint, "--control", "length=0", "--out", out], "control['length']")
    assert not out.exists()


NAN = float("nan")
_API = [
    # verb, its arguments (steps=2 added for the samplers), then what the ValueError's message holds
    ("generate", {"n": 0}, "n: expected an integer >= 1", "got 0"),
    ("generate", {"n": -2}, "n: expected an integer >= 1"),
    ("generate", {"n": 2.5}, "n: expected an integer >= 1", "2.5"),
    ("generate", {"n": True}, "n: expected an integer >= 1", "True"),
    ("generate", {"n": 1, "steps": 0}, "steps: expected an integer >= 1", "got 0"),
    ("generate", {"n": 1, "steps": -5}, "steps: expected an integer >= 1"),
    ("generate", {"n": 1, "method": "bogus"}, "method: expected one of", "'bogus'"),
    ("generate", {"n": 1, "grid": "bogus"}, "grid: expected one of", "'bogus'"),
    ("generate", {"n": 1, "seed": -1}, "seed: expected an integer in [0, "),
    ("generate", {"n": 1, "seed": "x"}, "seed: expected an integer"),
    ("generate", {"n": 1, "batch_size": 0}, "batch_size: expected an integer >= 1"),
    ("generate", {"n": 1, "guidance_lr": NAN}, "guidance_lr: expected a finite number in (0, inf)"),
    ("generate", {"n": 1, "guidance_steps": 1.5}, "guidance_steps: expected an integer >= 0"),
    ("generate", {"n": 1, "fluency": math.inf}, "fluency: expected a finite number in [0, inf)"),
    ("generate", {"n": 1, "control": "food=Italian"}, "control: expected a dict", "'food=Italian'"),
    ("generate", {"n": 2, "control": [{"length": 3}]}, "control: expected one dict per sample (2), got 1"),
    ("generate", {"n": 1, "control": {"length": True}}, "control['length']: expected an integer in [1, 10]"),
    ("generate", {"n": 1, "control": {"length": 2.0}}, "control['length']: expected an integer in [1, 10]"),
    ("generate", {"n": 1, "control": {"food": "Martian"}}, "control:", "'Martian'"),
    ("infill", {"template": "The Eagle is a pub ."}, "template: expected at least one `_` blank"),
    ("infill", {"template": ""}, "template:", "empty template"),
    ("infill", {"template": 5}, "template: expected a string with `_` blanks", "got 5"),
    ("infill", {"template": ["The", 3, None]}, "template: expected words (str) and None", "got 3"),
    ("infill", {"template": "The [PAD] _ ."}, "template:", "special token '[PAD]'"),
    ("infill", {"template": "The _ .", "n": 0}, "n: expected an integer >= 1"),
    ("infill", {"template": "The _ .", "steps": 0}, "steps: expected an integer >= 1"),
    ("infill", {"template": "The _ .", "resample": 0}, "resample: expected an integer >= 1"),
    ("infill", {"template": "The _ .", "seed": 2**64}, "seed: expected an integer in [0, 18446744073709551615]"),
    ("infill_many", {"templates": "The _ ."}, "templates: expected a list of templates"),
    ("infill_many", {"templates": []}, "templates: expected at least one template"),
    ("infill_many", {"templates": ["The _ ."], "batch_size": -1}, "batch_size: expected an integer >= 1"),
    ("to_text", {"x": torch.full((1, SEQ_LEN, 8), NAN)}, "x: expected finite latents"),
    ("to_text", {"x": torch.zeros(1, SEQ_LEN, 8, dtype=torch.long)}, "x: expected a floating-point tensor"),
    ("to_text", {"x": torch.zeros(1, SEQ_LEN, 5)}, "x: expected shape (B, L, 8)"),
]
API_CASES = [(case[0], case[1], case[2:]) for case in _API]


@pytest.mark.parametrize("verb, kwargs, fragments", API_CASES, ids=[f"{c[0]}-{c[2][0][:40]}" for c in API_CASES])
def test_api_refuses_bad_input(lm, verb, kwargs, fragments):
    kwargs = {"steps": 2, **kwargs} if verb != "to_text" else kwargs
    with pytest.raises(ValueError) as e:
        getattr(lm, verb)(**kwargs)
    message = str(e.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_from_pretrained_refusals(checkpoint, files):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        DiffusionLM.from_pretrained(files / "missing")
    with pytest.raises(FileNotFoundError, match="holds no config.json"):
        DiffusionLM.from_pretrained(files / "no_weights")
    with pytest.raises(FileNotFoundError, match="is a file"):
        DiffusionLM.from_pretrained(files / "good.txt")
    with pytest.raises(ValueError, match=r"device: expected auto, cpu, cuda or cuda:N, got 'gpu'"):
        DiffusionLM.from_pretrained(checkpoint, device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device: 'cuda' asked for, but no CUDA GPU"):
            DiffusionLM.from_pretrained(checkpoint, device="cuda")


def test_evaluate_refuses_a_bad_sample_count(lm):
    with pytest.raises(ValueError, match=r"n: expected an integer >= 1, got 0"):
        evaluate(lm, None, [], generate_corpus(2, seed=1), 0, TextSamplerConfig(steps=2))


@pytest.mark.parametrize(
    "build, fragment",
    [
        (lambda: TextSamplerConfig(steps=0), "sampler.steps: expected an integer >= 1, got 0"),
        (lambda: TextSamplerConfig(seed=-1), "sampler.seed: expected an integer in [0, "),
        (lambda: TextSamplerConfig(method="euler"), "sampler.method: expected one of"),
        (lambda: TextScheduleConfig(name="bogus"), "schedule.name: expected one of"),
        (lambda: DataConfig(n_train=0), "data.n_train: expected an integer >= 1, got 0"),
        (lambda: ModelConfig(dropout=1.0), "model.dropout: expected a finite number in [0, 1)"),
        (lambda: TeacherConfig(n_embd=10, n_head=4), "teacher.n_embd: expected a multiple of teacher.n_head=4"),
    ],
)
def test_config_sections_refuse_bad_values(build, fragment):
    with pytest.raises(ValueError) as e:
        build()
    assert fragment in str(e.value)


def test_none_means_the_run_configs_sampler(lm):
    """None takes the stored [sampler] (200 ddpm steps, seed 0 here): the same sentences as those values given."""
    assert lm.config.sampler.steps == 200 and lm.schedule.T == 20
    assert lm.generate(2, steps=None, seed=5) == lm.generate(2, steps=200, seed=5)
    assert lm.generate(2, steps=3) == lm.generate(2, steps=3, seed=0, method="ddpm")


def test_a_template_of_blanks_only_is_a_free_sentence_of_that_length(lm):
    """Accepted, not refused: k blanks give k ordinary words (blanks round among words, END is kept)."""
    texts = lm.infill("_ _ _ _", n=3, steps=3)
    vocab = set(lm.tokenizer.get_vocab()) - set(SPECIALS)
    assert all(len(t.split()) == 4 and set(t.split()) <= vocab for t in texts)
