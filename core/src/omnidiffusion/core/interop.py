"""Pretrained models in and out: local diffusers folders as core Denoisers, core UNets as diffusers folders.

    den = from_diffusers("ddpm-cifar10")          # model_index.json + unet/ + scheduler/, or a bare UNet folder
    x = sample(den, (4, 3, 32, 32), method="ddim", steps=10, grid="trailing")
    to_diffusers(image_ddpm, "exported")          # diffusers.DDPMPipeline.from_pretrained("exported") runs it

The one index <-> time mapping is DiscreteVP's: diffusers training step n (0-based, the `timestep` a diffusers
UNet is fed) sits at t = (n + 1) / T, so the wrapped UNet is called with n = t T - 1. The beta table is rebuilt
exactly as diffusers builds it (float32 betas and cumulative product), so the Denoiser sees the alpha_bar the
model was trained with. Nothing is downloaded: every path is a local folder. Weights are read with safetensors,
or with torch.load(weights_only=True) for a `.bin`; nothing is ever unpickled.

diffusers is an optional dependency (`pip install omnidiffusion-core[diffusers]`), imported only inside the
functions that build a diffusers module; `to_diffusers` writes JSON + safetensors and does not need it.
"""

from __future__ import annotations

import math
import re
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .denoiser import Denoiser, clip_x0
from .io import load_tensors, read_json, save_tensors, write_json
from .nn.embeddings import SinusoidalEmbedding
from .nn.unet import Downsample, ResBlock, SelfAttention2d, UNet, UNetStage
from .schedules import DiscreteVP, NoiseSchedule

UNET_CLASSES = ("UNet2DModel", "UNet1DModel", "UNet2DConditionModel")
PREDICTION_TYPES = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid")
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
_FIXED_VARIANCES = ("fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log")
_FALLBACK_VERSION = "0.42.1"


def _diffusers():
    try:
        import diffusers
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "from_diffusers needs the optional dependency diffusers: pip install 'omnidiffusion-core[diffusers]'"
        ) from e
    return diffusers


# --------------------------------------------------------------------------------------------------------------
# Scheduler config -> DiscreteVP + prediction type


def diffusers_alphas_cumprod(config: dict[str, Any]) -> np.ndarray:
    """alpha_bar of a diffusers scheduler config, computed as diffusers does (float32 betas and cumprod).

    Reads num_train_timesteps, trained_betas or beta_schedule (linear, scaled_linear, squaredcos_cap_v2,
    sigmoid) with beta_start/beta_end, and rescale_betas_zero_snr (Lin et al. 2023, Algorithm 1).
    """
    T = config.get("num_train_timesteps", 1000)
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"scheduler config num_train_timesteps: expected an integer >= 1, got {T!r}")
    b0, b1 = float(config.get("beta_start", 1e-4)), float(config.get("beta_end", 0.02))
    trained = config.get("trained_betas")
    name = config.get("beta_schedule", "linear")
    if trained is not None:
        betas = torch.tensor(trained, dtype=torch.float32)
        if betas.shape != (T,):
            raise ValueError(
                f"scheduler config trained_betas: expected {T} values (num_train_timesteps), got {tuple(betas.shape)}"
            )
    elif name == "linear":
        betas = torch.linspace(b0, b1, T, dtype=torch.float32)
    elif name == "scaled_linear":
        betas = torch.linspace(b0**0.5, b1**0.5, T, dtype=torch.float32) ** 2
    elif name == "squaredcos_cap_v2":
        # Nichol & Dhariwal 2021 cosine alpha_bar with s = 0.008, betas capped at 0.999, in float64 then float32.
        u = np.arange(T + 1, dtype=np.float64) / T
        abar = np.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = torch.tensor(np.minimum(1.0 - abar[1:] / abar[:-1], 0.999), dtype=torch.float32)
    elif name == "sigmoid":
        betas = torch.sigmoid(torch.linspace(-6.0, 6.0, T, dtype=torch.float32)) * (b1 - b0) + b0
    else:
        raise ValueError(f"scheduler config beta_schedule: expected one of {BETA_SCHEDULES}, got {name!r}")
    if config.get("rescale_betas_zero_snr", False):
        q = torch.cumprod(1.0 - betas, dim=0).sqrt()
        q0, qT = q[0].clone(), q[-1].clone()
        q = (q - qT) * (q0 / (q0 - qT))
        abar = q**2
        betas = 1.0 - torch.cat([abar[:1], abar[1:] / abar[:-1]])
    return torch.cumprod(1.0 - betas, dim=0).double().numpy()


def schedule_from_diffusers(config: dict[str, Any]) -> DiscreteVP:
    """The DiscreteVP whose alpha_bar table equals the diffusers scheduler's (step n at t = (n + 1) / T)."""
    abar = diffusers_alphas_cumprod(config)
    if not (abar[0] < 1.0 and np.all(np.diff(abar) < 0) and abar[-1] >= 0.0):
        raise ValueError("scheduler config betas: expected a strictly decreasing alpha_bar table in [0, 1)")
    betas = 1.0 - abar / np.concatenate([[1.0], abar[:-1]])
    name = "trained_betas" if config.get("trained_betas") is not None else config.get("beta_schedule", "linear")
    if config.get("rescale_betas_zero_snr", False):
        name += "+zero-snr"
    return DiscreteVP(betas, name=f"diffusers:{name}")


def prediction_from_diffusers(config: dict[str, Any]) -> str:
    """Core prediction type of a diffusers `prediction_type` (epsilon -> eps, v_prediction -> v, sample -> x0)."""
    kind = config.get("prediction_type", "epsilon")
    if kind not in PREDICTION_TYPES:
        raise ValueError(f"scheduler config prediction_type: expected one of {sorted(PREDICTION_TYPES)}, got {kind!r}")
    return PREDICTION_TYPES[kind]


def _check_scheduler(config: dict[str, Any], where: str) -> None:
    if not isinstance(config, dict):
        raise ValueError(f"scheduler: expected a scheduler config dict, got {type(config).__name__}")
    has_table = config.get("trained_betas") is not None or "beta_schedule" in config or "beta_start" in config
    if "num_train_timesteps" not in config or not has_table:
        raise ValueError(
            f"{where}: scheduler {config.get('_class_name', '?')!r} has no discrete beta table "
            "(num_train_timesteps and beta_schedule/trained_betas); only DDPM-family (VP) schedulers map to core"
        )
    for key, allowed in (("timestep_type", ("discrete",)), ("use_flow_sigmas", (False,))):
        if key in config and config[key] not in allowed:
            raise ValueError(f"{where}: scheduler config {key}: expected one of {allowed}, got {config[key]!r}")


# --------------------------------------------------------------------------------------------------------------
# Reading a folder


def _unet_class(config: dict[str, Any]) -> str | None:
    name = config.get("_class_name")
    return name if name in UNET_CLASSES else None


def is_diffusers_folder(path: str | Path) -> bool:
    """True for a diffusers pipeline folder (model_index.json, or unet/config.json) or a bare diffusers UNet folder.

    Our own format (config.json with a "class" entry + model.safetensors) is not a diffusers folder.
    """
    p = Path(path)
    if (p / "model_index.json").is_file() or (p / "unet" / "config.json").is_file():
        return True
    cfg = p / "config.json"
    if not cfg.is_file():
        return False
    try:
        return _unet_class(read_json(cfg, "a model config")) is not None
    except ValueError:
        return False


def _locate(path: Path, subfolder: str | None) -> tuple[Path, Path | None]:
    """(UNet folder, scheduler config file or None) of a diffusers folder."""
    if not path.is_dir():
        raise FileNotFoundError(f"path: {path} is not a directory (expected a local diffusers folder)")
    if subfolder is not None:
        unet_dir = path / subfolder
    elif (path / "unet" / "config.json").is_file():
        unet_dir = path / "unet"
    else:
        unet_dir = path
    if not (unet_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"path: no UNet config.json in {unet_dir} (expected model_index.json + unet/, or a bare UNet folder)"
        )
    for cand in (
        unet_dir / "scheduler_config.json",
        path / "scheduler" / "scheduler_config.json",
        path / "scheduler_config.json",
        unet_dir.parent / "scheduler" / "scheduler_config.json",
    ):
        if cand.is_file():
            return unet_dir, cand
    return unet_dir, None


_OLD_ATTENTION = re.compile(r"^(.*attentions\.\d+)\.(query|key|value|proj_attn)\.(weight|bias)$")
_NEW_NAMES = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def _rename_legacy(state: dict[str, Tensor], expected: set[str]) -> dict[str, Tensor]:
    """Old diffusers attention names (query/key/value/proj_attn, e.g. google/ddpm-*) -> to_q/to_k/to_v/to_out.0,
    where the module expects the new names (UNet1DModel still uses the old ones)."""
    out = {}
    for key, value in state.items():
        m = _OLD_ATTENTION.match(key)
        new = f"{m[1]}.{_NEW_NAMES[m[2]]}.{m[3]}" if m else key
        out[new if key not in expected and new in expected else key] = value
    return out


def _load_pickle_safely(path: Path) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure of the restricted unpickler is a refusal
        raise ValueError(
            f"{path}: refused: torch.load(weights_only=True) cannot read it ({type(e).__name__}: {e}). "
            "omnidiffusion never unpickles arbitrary objects; convert the weights to safetensors"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a flat {{name: tensor}} state dict, got {type(state).__name__}")
    return state


def load_diffusers_weights(unet_dir: str | Path) -> dict[str, Tensor]:
    """The UNet state dict of a diffusers folder: safetensors (single or sharded), else a weights_only `.bin`."""
    d = Path(unet_dir)
    single, index = d / WEIGHTS_NAME, d / f"{WEIGHTS_NAME}.index.json"
    if single.is_file():
        return load_tensors(single)
    if index.is_file():
        weight_map = read_json(index, "a safetensors shard index").get("weight_map", {})
        state: dict[str, Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            if Path(shard).name != shard:
                raise ValueError(f"{index}: shard name {shard!r} must be a file name inside {d}")
            state.update(load_tensors(d / shard))
        return state
    binary = d / "diffusion_pytorch_model.bin"
    if binary.is_file():
        return _load_pickle_safely(binary)
    found = sorted(p.name for p in d.iterdir() if p.is_file())
    raise FileNotFoundError(f"{d}: no {WEIGHTS_NAME} (or sharded/.bin weights); files there: {found}")


class DiffusersUNet(nn.Module):
    """A diffusers UNet under the core contract net(x_t, t, **cond): it is fed the step index n = t T - 1.

    Indices within rounding of an integer are snapped to it, so grid times k/T reach the UNet as the integer
    timesteps diffusers' own pipelines feed. `**cond` (encoder_hidden_states, class_labels, ...) is passed on.
    """

    def __init__(self, unet: nn.Module, num_train_timesteps: int) -> None:
        super().__init__()
        self.unet = unet
        self.T = int(num_train_timesteps)

    def timestep(self, t: Tensor) -> Tensor:
        n = t.detach().to(torch.float64) * self.T - 1.0
        tol = max(1e-6, 4.0 * torch.finfo(t.dtype).eps * self.T)
        r = torch.round(n)
        return torch.where((n - r).abs() <= tol, r, n)

    def forward(self, x_t: Tensor, t: Tensor, **cond) -> Tensor:
        return self.unet(x_t, self.timestep(t).to(x_t.device), **cond, return_dict=False)[0]


def _build_unet(config: dict[str, Any], state: dict[str, Tensor], where: Path) -> nn.Module:
    diffusers = _diffusers()
    cls = getattr(diffusers, config["_class_name"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        unet = cls.from_config(config)
    result = unet.load_state_dict(_rename_legacy(state, set(unet.state_dict())), strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{where}: weights do not fit the {config['_class_name']} config: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    return unet.eval()


def from_diffusers(
    path: str | Path,
    *,
    subfolder: str | None = None,
    scheduler: str | Path | dict[str, Any] | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    clip_sample: bool | None = None,
) -> Denoiser:
    """A core Denoiser from a local diffusers folder (UNet2DModel, UNet1DModel or UNet2DConditionModel).

    Args:
        path: a pipeline folder (model_index.json / unet/ + scheduler/) or a bare UNet folder (config.json +
            diffusion_pytorch_model.safetensors).
        subfolder: the UNet's folder inside `path` (default: "unet" when present, else `path` itself).
        scheduler: a scheduler config (dict, scheduler_config.json or its folder) when the folder has none.
        device, dtype: where and in which dtype the UNet runs (default: CPU, the stored dtype).
        clip_sample: clamp x0_hat to [-r, r] (r = clip_sample_range); default: the scheduler config's clip_sample.
    The schedule is DiscreteVP (diffusers' alpha_bar table; step n at t = (n+1)/T), the prediction type is mapped
    from prediction_type, and variance_type "learned_range" gives `learned_variance=True`. UNet2DConditionModel
    conditioning (encoder_hidden_states=...) is passed through the samplers' `**cond`.
    """
    root = Path(path)
    unet_dir, sched_file = _locate(root, subfolder)
    config = read_json(unet_dir / "config.json", "a diffusers UNet config")
    kind = _unet_class(config)
    if kind is None:
        raise ValueError(
            f"{unet_dir / 'config.json'}: _class_name: expected one of {UNET_CLASSES}, "
            f"got {config.get('_class_name')!r}"
        )
    if scheduler is None:
        if sched_file is None:
            raise FileNotFoundError(
                f"path: no scheduler_config.json found for {unet_dir} (looked in it, in {root / 'scheduler'} and "
                f"{root}); pass scheduler= (a dict, a scheduler_config.json or its folder)"
            )
        sched_cfg = read_json(sched_file, "a diffusers scheduler config")
    elif isinstance(scheduler, dict):
        sched_cfg = dict(scheduler)
    else:
        sp = Path(scheduler)
        sched_cfg = read_json(sp / "scheduler_config.json" if sp.is_dir() else sp, "a diffusers scheduler config")
    _check_scheduler(sched_cfg, str(sched_file or "scheduler"))
    schedule = schedule_from_diffusers(sched_cfg)
    prediction = prediction_from_diffusers(sched_cfg)
    if schedule.alphas_cumprod[-1] == 0.0 and prediction == "eps":
        raise ValueError(
            "scheduler config rescale_betas_zero_snr: zero terminal SNR needs prediction_type v_prediction or "
            "sample (epsilon-prediction is undefined at alpha = 0), got epsilon"
        )

    in_ch = config.get("in_channels", 3 if kind != "UNet1DModel" else 2)
    out_ch = config.get("out_channels", in_ch)
    variance_type = sched_cfg.get("variance_type", "fixed_small")
    learned = variance_type == "learned_range"
    if variance_type not in (*_FIXED_VARIANCES, "learned_range"):
        raise ValueError(
            f"scheduler config variance_type: expected one of {(*_FIXED_VARIANCES, 'learned_range')}, "
            f"got {variance_type!r} (a raw log-variance output has no core equivalent)"
        )
    if out_ch != (2 * in_ch if learned else in_ch):
        raise ValueError(
            f"{unet_dir / 'config.json'}: out_channels: expected {2 * in_ch if learned else in_ch} for "
            f"in_channels={in_ch} and variance_type={variance_type!r}, got {out_ch}"
        )
    if sched_cfg.get("thresholding", False):
        warnings.warn("scheduler config thresholding=True: dynamic thresholding is not applied", stacklevel=2)

    unet = _build_unet(config, load_diffusers_weights(unet_dir), unet_dir)
    logging = _diffusers().utils.logging
    level = logging.get_verbosity()
    logging.set_verbosity_error()  # ModelMixin.to(dtype) warns about fp32-pinned modules even when there are none
    try:
        unet.to(device=device, dtype=dtype)
    finally:
        logging.set_verbosity(level)
    net = DiffusersUNet(unet, schedule.T)
    clip = sched_cfg.get("clip_sample", False) if clip_sample is None else clip_sample
    hooks = []
    if clip:
        r = float(sched_cfg.get("clip_sample_range", 1.0))
        hooks.append(clip_x0(-r, r))
    den = Denoiser(net, schedule, prediction, x0_hooks=hooks, learned_variance=learned)
    den.source = {"path": str(root), "unet": kind, "scheduler": sched_cfg}
    return den


# --------------------------------------------------------------------------------------------------------------
# Core UNet -> diffusers UNet2DModel


def _find(obj: Any, test, depth: int = 4) -> Any:
    """The first of obj, obj.net, obj.net.net, ... that passes `test` (duck-typed Denoiser -> model -> UNet)."""
    for _ in range(depth):
        if obj is None:
            return None
        if test(obj):
            return obj
        obj = getattr(obj, "net", None)
    return None


def _attr(model: Any, name: str) -> Any:
    return getattr(_find(model, lambda o: hasattr(o, name)), name, None)


def export_problems(unet: UNet, T: int) -> list[str]:
    """Every detail in which `unet` differs from all UNet2DModel configurations fed the step index n = tT - 1."""
    cfg = unet.config
    out = []
    if cfg["time_embedding"] != "sinusoidal":
        out.append(
            "time_embedding: 'fourier' features of t have no UNet2DModel equivalent (its fourier embedding takes "
            "log of the timestep); needs time_embedding='sinusoidal'"
        )
    else:
        scale = unet.time_features.scale
        if scale != T:
            out.append(
                f"time_embedding_scale: the UNet embeds {scale:g} * t but UNet2DModel embeds the step index; exact "
                f"only when the scale equals num_train_timesteps ({T}) (a different scale rescales every frequency)"
            )
        if unet.time_features.max_period != 10000.0:
            out.append(f"max_period: UNet2DModel uses 10000, got {unet.time_features.max_period:g}")
    if cfg["cond_channels"]:
        out.append(
            f"cond_channels={cfg['cond_channels']}: concatenated conditioning (SR3, segmentation) has no "
            "input in DDPMPipeline; the weights would load as a UNet2DModel with in_channels + cond_channels inputs"
        )
    if cfg["num_classes"] is not None:
        out.append("num_classes: class label -1 (no class, for guidance) has no UNet2DModel equivalent")
    if cfg["channel_mults"][0] != 1:
        out.append(
            f"channel_mults[0]={cfg['channel_mults'][0]}: UNet2DModel's conv_in and time features have "
            "block_out_channels[0] channels, the core UNet has base_channels; needs channel_mults[0] == 1"
        )
    if cfg["num_heads"] > 1:
        mults, res = cfg["channel_mults"], cfg["resolution"]
        widths = {cfg["base_channels"] * mults[-1]} | {
            cfg["base_channels"] * m for i, m in enumerate(mults) if res // 2**i in cfg["attention_resolutions"]
        }
        if len(widths) > 1:
            out.append(
                f"num_heads={cfg['num_heads']} over attention widths {sorted(widths)}: UNet2DModel has one "
                "attention_head_dim for all blocks, so a fixed head count needs one attention width (or num_heads=1)"
            )
    return out


def unet2d_config(unet: UNet, T: int) -> dict[str, Any]:
    """The UNet2DModel config equivalent to a core UNet fed t = (n + 1)/T (see `export_problems`)."""
    problems = export_problems(unet, T)
    if problems:
        raise ValueError("unet: cannot be expressed as a diffusers UNet2DModel: " + "; ".join(problems))
    cfg = unet.config
    mults, res = cfg["channel_mults"], cfg["resolution"]
    attn = [res // 2**i in cfg["attention_resolutions"] for i in range(len(mults))]
    head_dim = None if cfg["num_heads"] == 1 else cfg["base_channels"] * mults[-1] // cfg["num_heads"]
    return {
        "_class_name": "UNet2DModel",
        "_diffusers_version": _version(),
        "sample_size": res,
        "in_channels": cfg["in_channels"],
        "out_channels": cfg["out_channels"],
        "center_input_sample": False,
        "time_embedding_type": "positional",
        "freq_shift": 0,
        "flip_sin_to_cos": False,
        "down_block_types": ["AttnDownBlock2D" if a else "DownBlock2D" for a in attn],
        "up_block_types": ["AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)],
        "block_out_channels": [cfg["base_channels"] * m for m in mults],
        "layers_per_block": cfg["num_res_blocks"],
        "mid_block_scale_factor": 1,
        "downsample_padding": 1,
        "downsample_type": "conv",
        "upsample_type": "conv",
        "dropout": cfg["dropout"],
        "act_fn": "silu",
        "attention_head_dim": head_dim,
        "norm_num_groups": cfg["norm_groups"],
        "attn_norm_num_groups": cfg["norm_groups"],
        "norm_eps": 1e-5,
        "resnet_time_scale_shift": "scale_shift",
        "add_attention": True,
        "class_embed_type": None,
        "num_class_embeds": None,
        "num_train_timesteps": None,
    }


def _shift_rotation(emb: SinusoidalEmbedding, shift: float) -> Tensor:
    """M with features(n + shift) = M features(n), features = [sin(n w_k), cos(n w_k)] (angle addition).

    With scale == T the core net embeds scale * (n + 1)/T = n + 1, diffusers embeds n: shift = 1.
    """
    half = emb.dim // 2
    w = torch.exp(-math.log(emb.max_period) * torch.arange(half, dtype=torch.float64) / half)
    c, s = torch.cos(shift * w), torch.sin(shift * w)
    m = torch.eye(emb.dim, dtype=torch.float64)  # an odd dim keeps its zero pad column as is
    i = torch.arange(half)
    # Rows index features(n + shift), columns features(n): sin(a + b) = sin a cos b + cos a sin b, and
    # cos(a + b) = cos a cos b - sin a sin b.
    m[i, i], m[i, half + i] = c, s
    m[half + i, i], m[half + i, half + i] = -s, c
    return m


def _resnet(prefix: str, block: ResBlock) -> dict[str, Tensor]:
    out = {}
    for ours, theirs in (("norm1", "norm1"), ("conv1", "conv1"), ("norm2", "norm2"), ("film.proj", "time_emb_proj"),
                         ("conv2", "conv2")):
        mod = block.get_submodule(ours)
        out[f"{prefix}.{theirs}.weight"], out[f"{prefix}.{theirs}.bias"] = mod.weight, mod.bias
    if isinstance(block.skip, nn.Conv2d):
        out[f"{prefix}.conv_shortcut.weight"], out[f"{prefix}.conv_shortcut.bias"] = block.skip.weight, block.skip.bias
    return out


def _attention(prefix: str, attn: SelfAttention2d) -> dict[str, Tensor]:
    C = attn.proj.weight.shape[0]
    w, b = attn.qkv.weight[:, :, 0, 0], attn.qkv.bias  # (3C, C): q, k, v stacked, heads contiguous inside each
    out = {f"{prefix}.group_norm.weight": attn.norm.weight, f"{prefix}.group_norm.bias": attn.norm.bias}
    for j, name in enumerate(("to_q", "to_k", "to_v")):
        out[f"{prefix}.{name}.weight"], out[f"{prefix}.{name}.bias"] = w[j * C : (j + 1) * C], b[j * C : (j + 1) * C]
    out[f"{prefix}.to_out.0.weight"], out[f"{prefix}.to_out.0.bias"] = attn.proj.weight[:, :, 0, 0], attn.proj.bias
    return out


def _stages(modules, level_names: list[str]) -> dict[str, Tensor]:
    """Walk core down/up stages in order, naming them {block}.resnets.j / .attentions.j / .{down,up}samplers.0."""
    out: dict[str, Tensor] = {}
    level, j = 0, 0
    for m in modules:
        blk = level_names[level]
        if isinstance(m, UNetStage):
            out.update(_resnet(f"{blk}.resnets.{j}", m.res))
            if m.attn is not None:
                out.update(_attention(f"{blk}.attentions.{j}", m.attn))
            j += 1
        else:
            sampler = "downsamplers" if isinstance(m, Downsample) else "upsamplers"
            out[f"{blk}.{sampler}.0.conv.weight"], out[f"{blk}.{sampler}.0.conv.bias"] = m.conv.weight, m.conv.bias
            level, j = level + 1, 0
    return out


def unet2d_state_dict(unet: UNet, T: int) -> dict[str, Tensor]:
    """The UNet2DModel state dict of a core UNet (config from `unet2d_config`), as contiguous CPU tensors.

    Every tensor is copied unchanged except time_embedding.linear_1.weight: the core net embeds step n at
    t = (n + 1)/T while UNet2DModel embeds n, so linear_1 absorbs the one-step phase shift exactly (a fixed
    rotation of each sin/cos pair by its frequency; linear_1' = linear_1 M).
    """
    unet2d_config(unet, T)  # raises with every problem when the layouts do not correspond
    n_levels = len(unet.config["channel_mults"])
    lin1, lin2 = unet.time_mlp.net[0], unet.time_mlp.net[2]
    rot = _shift_rotation(unet.time_features, 1.0)
    w1 = (lin1.weight.detach().to(torch.float64) @ rot).to(lin1.weight.dtype)
    state: dict[str, Tensor] = {
        "conv_in.weight": unet.input_conv.weight,
        "conv_in.bias": unet.input_conv.bias,
        "time_embedding.linear_1.weight": w1,
        "time_embedding.linear_1.bias": lin1.bias,
        "time_embedding.linear_2.weight": lin2.weight,
        "time_embedding.linear_2.bias": lin2.bias,
        "conv_norm_out.weight": unet.out_norm.weight,
        "conv_norm_out.bias": unet.out_norm.bias,
        "conv_out.weight": unet.out_conv.weight,
        "conv_out.bias": unet.out_conv.bias,
    }
    state.update(_stages(unet.down, [f"down_blocks.{i}" for i in range(n_levels)]))
    state.update(_stages(unet.up, [f"up_blocks.{i}" for i in range(n_levels)]))
    state.update(_resnet("mid_block.resnets.0", unet.mid_res1))
    state.update(_attention("mid_block.attentions.0", unet.mid_attn))
    state.update(_resnet("mid_block.resnets.1", unet.mid_res2))
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def _version() -> str:
    try:
        return metadata.version("diffusers")
    except metadata.PackageNotFoundError:
        return _FALLBACK_VERSION


def _scheduler_config(schedule: DiscreteVP, prediction: str, variance_type: str, clip_sample: bool) -> dict:
    betas = schedule.betas
    linear = np.linspace(betas[0], betas[-1], schedule.T)
    is_linear = np.allclose(betas, linear, rtol=1e-12, atol=0.0)
    return {
        "_class_name": "DDPMScheduler",
        "_diffusers_version": _version(),
        "num_train_timesteps": schedule.T,
        "beta_start": float(betas[0]),
        "beta_end": float(betas[-1]),
        "beta_schedule": "linear",
        "trained_betas": None if is_linear else [float(b) for b in betas],
        "variance_type": variance_type,
        "clip_sample": bool(clip_sample),
        "clip_sample_range": 1.0,
        "prediction_type": {v: k for k, v in PREDICTION_TYPES.items()}[prediction],
        "thresholding": False,
        "timestep_spacing": "trailing",
        "steps_offset": 0,
        "rescale_betas_zero_snr": False,
    }


def to_diffusers(
    model: Any,
    path: str | Path,
    *,
    unet: UNet | None = None,
    schedule: NoiseSchedule | None = None,
    prediction: str | None = None,
    clip_sample: bool = True,
) -> Path:
    """Write `model` as a diffusers DDPM folder: model_index.json, unet/ (UNet2DModel), scheduler/ (DDPMScheduler).

    `model` is duck-typed: anything reaching a core `UNet` through `.net` (ImageDDPM, its Denoiser, the UNet
    itself) with a DiscreteVP `.schedule` and a `.prediction` (eps | v | x0) on the way; `unet`, `schedule` and
    `prediction` override what is found. A Denoiser with learned variance exports variance_type "learned_range".
    `clip_sample` is the exported scheduler's x0 clipping to [-1, 1] (ImageDDPM's default sampling).
    Refuses, naming every detail, a UNet that no UNet2DModel configuration reproduces (see `export_problems`).
    Returns the folder; `diffusers.DDPMPipeline.from_pretrained(path)` loads and runs it.
    """
    core_unet = unet if unet is not None else _find(model, lambda o: isinstance(o, UNet))
    if not isinstance(core_unet, UNet):
        raise ValueError(
            f"model: expected a core UNet reachable through .net (ImageDDPM, its Denoiser, a UNet) or unet=, "
            f"got {type(model).__name__}"
        )
    sched = schedule if schedule is not None else _attr(model, "schedule")
    if not isinstance(sched, DiscreteVP):
        raise ValueError(
            "schedule: expected a DiscreteVP (a diffusers scheduler is a discrete beta table), "
            f"got {type(sched).__name__}"
        )
    pred = prediction if prediction is not None else _attr(model, "prediction")
    if pred not in PREDICTION_TYPES.values():
        raise ValueError(f"prediction: expected one of {sorted(PREDICTION_TYPES.values())}, got {pred!r}")
    learned = bool(_attr(model, "learned_variance") or False)
    want_out = 2 * core_unet.in_channels if learned else core_unet.in_channels
    if core_unet.config["out_channels"] != want_out:
        raise ValueError(
            f"unet: out_channels: expected {want_out} for in_channels={core_unet.in_channels} "
            f"(learned_variance={learned}), got {core_unet.config['out_channels']}"
        )
    config = unet2d_config(core_unet, sched.T)
    state = unet2d_state_dict(core_unet, sched.T)
    out = Path(path)
    write_json(out / "unet" / "config.json", config)
    save_tensors(out / "unet" / WEIGHTS_NAME, state)
    variance = "learned_range" if learned else "fixed_small"
    write_json(out / "scheduler" / "scheduler_config.json", _scheduler_config(sched, pred, variance, clip_sample))
    write_json(
        out / "model_index.json",
        {
            "_class_name": "DDPMPipeline",
            "_diffusers_version": _version(),
            "scheduler": ["diffusers", "DDPMScheduler"],
            "unet": ["diffusers", "UNet2DModel"],
        },
    )
    return out


__all__ = [
    "BETA_SCHEDULES",
    "PREDICTION_TYPES",
    "UNET_CLASSES",
    "DiffusersUNet",
    "diffusers_alphas_cumprod",
    "export_problems",
    "from_diffusers",
    "is_diffusers_folder",
    "load_diffusers_weights",
    "prediction_from_diffusers",
    "schedule_from_diffusers",
    "to_diffusers",
    "unet2d_config",
    "unet2d_state_dict",
]
