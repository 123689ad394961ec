"""Linear degradation operators y = A x for zero-shot restoration, each with its exact pseudo-inverse.

Every operator is a small object acting on image batches (B, C, H, W):
  forward(x)          A x (the measurement)
  pinv(y, weight)     A^+ y; with `weight` a function of the singular values s, V diag(weight(s) / s) U^T y
                      (DDNM+'s shrunk correction, Wang et al. 2023 eq. 17)
  range_part(x, gain) V diag(gain(s)) V^T x, the component of x that A sees (gain 1: the projection A^+ A x)
  project(x)          A^+ A x
  singular_values()   the non-zero singular values (rcond-truncated for blur and bicubic)
  lift(y, weight), lift_part(x, gain)
                      B y and B A x for the right inverse B (A B = I) the solvers use to put the measurement back
                      into image space; A^+ (so pinv and range_part) unless an operator chooses another. Any right
                      inverse gives A x = y; B only decides which part of x is kept (the null space of A along B).
Known SVDs make all of this exact: the box average and the mask have A A^T = c I, grey has one row of fixed
channel weights, blur is diagonal in the 2-D DFT, and a separable resampling matrix M_h (x) M_w has the
Kronecker SVD of its two 1-D factors. `measure(op, x, sigma_y)` adds the Gaussian measurement noise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from omnidiffusion.core.checks import positive_int, real_number

Gain = Callable[[Tensor], Tensor]
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as PIL "L"


def _one(s: Tensor) -> Tensor:
    return torch.ones_like(s)


def _check_x(x: Tensor, name: str = "x") -> None:
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a float tensor (B, C, H, W), got {shape}")


class LinearOperator:
    """Base: `forward`, `pinv`, `range_part`; `project` and `measurement_shape` follow."""

    name = "linear"

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def pinv(self, y: Tensor, weight: Gain | None = None) -> Tensor:
        raise NotImplementedError

    def range_part(self, x: Tensor, gain: Gain | None = None) -> Tensor:
        raise NotImplementedError

    def singular_values(self) -> Tensor:
        raise NotImplementedError

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def project(self, x: Tensor) -> Tensor:
        """A^+ A x: the part of x the measurement determines (DDNM's range space)."""
        return self.range_part(x)

    def lift(self, y: Tensor, weight: Gain | None = None) -> Tensor:
        """B y, with B the right inverse of A the solvers use (default A^+; `weight` as in `pinv`)."""
        return self.pinv(y, weight)

    def lift_part(self, x: Tensor, gain: Gain | None = None) -> Tensor:
        """B A x, the part of x the solvers replace (default A^+ A x; `gain` as in `range_part`)."""
        return self.range_part(x, gain)

    def image_shape(self, y_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(C, H, W) of the images whose measurements have shape y_shape (B, ...)."""
        return tuple(y_shape[1:])

    def measurement_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(self.forward(torch.zeros(1, *shape[1:])).shape[1:])

    def check_measurement(self, y: Tensor, image_shape: tuple[int, ...], name: str = "y") -> Tensor:
        """Raise ValueError unless y has the shape A gives an image of `image_shape` (C, H, W)."""
        want = self.measurement_shape((1, *image_shape))
        if not isinstance(y, Tensor) or y.ndim != 4 or tuple(y.shape[1:]) != want:
            got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise ValueError(f"{name}: expected a measurement of shape (B, {', '.join(map(str, want))}) for "
                             f"{self.name}, got {got}")
        if not torch.isfinite(y).all():
            raise ValueError(f"{name}: contains NaN or inf values")
        return y


def _resample_matrix(n: int, k: int, kind: str) -> Tensor:
    """The (n // k, n) matrix of 1-D downsampling by k: box average or anti-aliased bicubic (torch interpolate)."""
    eye = torch.eye(n, dtype=torch.float64)
    if kind == "box":
        return eye.reshape(n // k, k, n).mean(dim=1)
    # bicubic with antialias is separable and linear: its matrix is the image of the identity (resampled along H
    # only; a width of 4 kept at scale 1 is the identity there, where a width of 1 is not).
    basis = eye[:, None, :, None].expand(n, 1, n, 4).contiguous()  # (n, 1, n, 4)
    cols = F.interpolate(basis, size=(n // k, 4), mode="bicubic", antialias=True, align_corners=False)
    return cols[:, 0, :, 0].T.contiguous()  # (n // k, n)


class Downsample(LinearOperator):
    """Downsampling by `factor` with a box average (k x k block means) or anti-aliased bicubic ("bicubic").

    A = M_h (x) M_w acts on each channel; its SVD is the Kronecker product of the 1-D SVDs, so pinv is exact
    (box: A^+ y repeats every value over its block). Singular values below rcond * max are treated as zero.
    """

    def __init__(self, factor: int, size: tuple[int, int] | int, kind: str = "box", rcond: float = 1e-6) -> None:
        self.factor = positive_int(factor, "factor")
        h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        if h % self.factor or w % self.factor:
            raise ValueError(f"size: {h}x{w} is not divisible by factor {self.factor}")
        if kind not in ("box", "bicubic"):
            raise ValueError(f"kind: expected 'box' or 'bicubic', got {kind!r}")
        self.kind, self.size, self.name = kind, (h, w), f"downsample x{self.factor} ({kind})"
        self.mh, self.mw = _resample_matrix(h, self.factor, kind), _resample_matrix(w, self.factor, kind)
        (uh, sh, vh), (uw, sw, vw) = (torch.linalg.svd(m, full_matrices=False) for m in (self.mh, self.mw))
        self._u, self._v = (uh, uw), (vh.T, vw.T)  # U (h', h'), V (H, h')
        s = sh[:, None] * sw[None, :]  # (h', w') singular values of the Kronecker product
        self._s = s
        self._keep = s > rcond * s.max()

    def _check(self, x: Tensor) -> None:
        _check_x(x)
        if tuple(x.shape[-2:]) != self.size:
            raise ValueError(f"x: expected images of size {self.size} for {self.name}, got {tuple(x.shape[-2:])}")

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        mh, mw = self.mh.to(x), self.mw.to(x)
        return torch.einsum("ih,nchw,jw->ncij", mh, x, mw)

    def _coef(self, like: Tensor, fn: Gain | None, divide: bool) -> Tensor:
        s = self._s
        g = (fn or _one)(s).to(torch.float64)
        c = torch.where(self._keep, g / s if divide else g, torch.zeros_like(s))
        return c.to(like)

    def pinv(self, y: Tensor, weight: Gain | None = None) -> Tensor:
        uh, uw = (u.to(y) for u in self._u)
        vh, vw = (v.to(y) for v in self._v)
        z = torch.einsum("ip,ncij,jq->ncpq", uh, y, uw) * self._coef(y, weight, True)  # (B, C, h', w')
        return torch.einsum("hp,ncpq,wq->nchw", vh, z, vw)

    def range_part(self, x: Tensor, gain: Gain | None = None) -> Tensor:
        vh, vw = (v.to(x) for v in self._v)
        z = torch.einsum("hp,nchw,wq->ncpq", vh, x, vw) * self._coef(x, gain, False)
        return torch.einsum("hp,ncpq,wq->nchw", vh, z, vw)

    def singular_values(self) -> Tensor:
        return self._s[self._keep]

    def image_shape(self, y_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (y_shape[1], *self.size)

    def matrix(self) -> Tensor:
        """The dense (h' w', H W) matrix of one channel (for tests)."""
        return torch.kron(self.mh, self.mw)


class Inpaint(LinearOperator):
    """Keep the pixels where `mask` is True (an (H, W) or (B, 1, H, W) bool mask); y is x with zeros in the hole.

    A = diag(mask) is an orthogonal projection: A^+ = A, singular values 1.
    """

    name = "inpaint"

    def __init__(self, mask: Tensor) -> None:
        if not isinstance(mask, Tensor) or mask.ndim not in (2, 4) or (mask.ndim == 4 and mask.shape[1] != 1):
            got = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(f"mask: expected a bool tensor (H, W) or (B, 1, H, W), got {got}")
        if mask.dtype != torch.bool:
            if not bool(((mask == 0) | (mask == 1)).all()):
                raise ValueError("mask: expected booleans or 0/1 values (1 = keep)")
            mask = mask.bool()
        if bool(mask.all()):
            raise ValueError("mask: expected at least one hole pixel (False = to fill), got a mask keeping all")
        self.mask = mask if mask.ndim == 4 else mask[None, None]

    def _m(self, x: Tensor) -> Tensor:
        _check_x(x)
        if tuple(x.shape[-2:]) != tuple(self.mask.shape[-2:]):
            raise ValueError(f"x: expected images of size {tuple(self.mask.shape[-2:])} for the mask, "
                             f"got {tuple(x.shape[-2:])}")
        return self.mask.to(x.device, x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        return x * self._m(x)

    def pinv(self, y: Tensor, weight: Gain | None = None) -> Tensor:
        one = torch.ones((), dtype=torch.float64)
        return y * self._m(y) * float((weight or _one)(one))

    def range_part(self, x: Tensor, gain: Gain | None = None) -> Tensor:
        one = torch.ones((), dtype=torch.float64)
        return x * self._m(x) * float((gain or _one)(one))

    def singular_values(self) -> Tensor:
        return torch.ones(int(self.mask[0].sum()), dtype=torch.float64)


def gaussian_kernel_fft(size: tuple[int, int], sigma: float) -> Tensor:
    """DFT (H, W) of the circular Gaussian blur kernel of std `sigma` px, normalised to sum 1 (real, > 0)."""
    h, w = size
    dy = torch.minimum(torch.arange(h), h - torch.arange(h)).to(torch.float64)  # circular distances to 0
    dx = torch.minimum(torch.arange(w), w - torch.arange(w)).to(torch.float64)
    k = torch.exp(-(dy[:, None] ** 2 + dx[None, :] ** 2) / (2 * sigma**2))
    return torch.fft.fft2(k / k.sum()).real  # the kernel is even, so its DFT is real


class GaussianBlur(LinearOperator):
    """Circular Gaussian blur of std `sigma` px, computed by FFT: A = F^* diag(K) F, singular values |K|.

    Frequencies with |K| < rcond * max(|K|) are the numerical null space (pinv drops them, the prior fills them).
    """

    def __init__(self, sigma: float, size: tuple[int, int] | int, rcond: float = 1e-3) -> None:
        self.sigma = real_number(sigma, "sigma", low=0.0, low_open=True)
        h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.size, self.rcond, self.name = (h, w), float(rcond), f"gaussian blur (sigma {self.sigma:g} px)"
        self.k = gaussian_kernel_fft((h, w), self.sigma)  # (H, W) float64
        self._keep = self.k.abs() > self.rcond * self.k.abs().max()

    def _check(self, x: Tensor) -> None:
        _check_x(x)
        if tuple(x.shape[-2:]) != self.size:
            raise ValueError(f"x: expected images of size {self.size} for {self.name}, got {tuple(x.shape[-2:])}")

    def _apply(self, x: Tensor, coef: Tensor) -> Tensor:
        X = torch.fft.fft2(x.to(torch.float64))
        return torch.fft.ifft2(X * coef.to(x.device)).real.to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return self._apply(x, self.k)

    def _gain(self, fn: Gain | None) -> Tensor:
        s = self.k.abs()
        return torch.where(self._keep, (fn or _one)(s).to(torch.float64), torch.zeros_like(s))

    def pinv(self, y: Tensor, weight: Gain | None = None) -> Tensor:
        self._check(y)
        k = torch.where(self._keep, self.k, torch.ones_like(self.k))
        return self._apply(y, self._gain(weight) / k)

    def range_part(self, x: Tensor, gain: Gain | None = None) -> Tensor:
        self._check(x)
        return self._apply(x, self._gain(gain))

    def singular_values(self) -> Tensor:
        return self.k.abs()[self._keep]

    def matrix(self) -> Tensor:
        """The dense (H W, H W) matrix (for tests): the blur of each basis image."""
        h, w = self.size
        eye = torch.eye(h * w, dtype=torch.float64).reshape(h * w, 1, h, w)
        return self.forward(eye).reshape(h * w, h * w).T


class Grey(LinearOperator):
    """Colourisation's degradation: y = sum_c w_c x_c, (B, 3, H, W) -> (B, 1, H, W), fixed weights (ITU-R 601).

    One row w per pixel: singular value |w|, right singular vector w / |w|, A^+ y = w y / |w|^2.

    `lift` ("copy", the default, or "pinv") is the right inverse the solvers use. "copy" is B y = y 1 / sum(w),
    the grey copy: x = B A x + (I - B A) x splits x into its luminance and its colour differences x_c - Y, so a
    solver that corrects the luminance keeps the prior's colour differences (chroma) as they are. "pinv" is A^+,
    whose correction w / |w|^2 per unit of luminance error also moves the hue (for ITU-R 601 weights it adds
    1.31 to green for 0.25 to blue). The two agree when the weights are equal (DDNM's colourisation operator, the
    channel mean, has A^+ = the grey copy).
    """

    name = "grey"

    def __init__(self, weights: tuple[float, ...] = LUMA, lift: str = "copy") -> None:
        w = torch.as_tensor(weights, dtype=torch.float64)
        if w.ndim != 1 or w.numel() < 2 or not bool((w >= 0).all()) or float(w.sum()) <= 0:
            raise ValueError(f"weights: expected >= 2 non-negative channel weights, got {weights!r}")
        if lift not in ("copy", "pinv"):
            raise ValueError(f"lift: expected 'copy' or 'pinv', got {lift!r}")
        self.w = w
        self.norm = float(torch.linalg.vector_norm(w))
        self.lift_kind = lift

    def _wv(self, x: Tensor) -> Tensor:
        return self.w.to(x)[None, :, None, None]

    def forward(self, x: Tensor) -> Tensor:
        _check_x(x)
        if x.shape[1] != self.w.numel():
            raise ValueError(f"x: expected {self.w.numel()} channels for {self.name}, got {x.shape[1]}")
        return (x * self._wv(x)).sum(dim=1, keepdim=True)

    def pinv(self, y: Tensor, weight: Gain | None = None) -> Tensor:
        _check_x(y, "y")
        g = float((weight or _one)(torch.tensor(self.norm, dtype=torch.float64)))
        return y * self._wv(y) * (g / self.norm**2)

    def range_part(self, x: Tensor, gain: Gain | None = None) -> Tensor:
        g = float((gain or _one)(torch.tensor(self.norm, dtype=torch.float64)))
        return self.forward(x) * self._wv(x) * (g / self.norm**2)

    def singular_values(self) -> Tensor:
        return torch.tensor([self.norm], dtype=torch.float64)

    def _copy(self, y: Tensor, fn: Gain | None) -> Tensor:
        """y 1 / sum(w), times fn at the one singular value (DDNM+'s factors, see `solvers.ddnm`)."""
        g = float((fn or _one)(torch.tensor(self.norm, dtype=torch.float64)))
        return y.expand(y.shape[0], self.w.numel(), *y.shape[2:]) * (g / float(self.w.sum()))

    def lift(self, y: Tensor, weight: Gain | None = None) -> Tensor:
        if self.lift_kind == "pinv":
            return self.pinv(y, weight)
        _check_x(y, "y")
        return self._copy(y, weight)

    def lift_part(self, x: Tensor, gain: Gain | None = None) -> Tensor:
        if self.lift_kind == "pinv":
            return self.range_part(x, gain)
        return self._copy(self.forward(x), gain)

    def image_shape(self, y_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.w.numel(), *y_shape[2:])


def measure(op: LinearOperator, x: Tensor, sigma_y: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
    """y = A x + sigma_y n with n ~ N(0, I) (the measurement of x, in x's value range)."""
    sigma_y = real_number(sigma_y, "sigma_y", low=0.0)
    y = op.forward(x)
    if sigma_y > 0:
        y = y + sigma_y * torch.randn(y.shape, generator=generator, dtype=y.dtype).to(y.device)
    return y


def consistency(op: LinearOperator, x: Tensor, y: Tensor) -> Tensor:
    """Per-image RMS of A x - y over the measurement's entries (the hole of an inpainting mask excluded): (B,)."""
    r = op.forward(x) - y
    if isinstance(op, Inpaint):
        m = op.mask.to(r.device).expand(r.shape[0], 1, *r.shape[-2:])
        n = m.flatten(1).sum(1) * r.shape[1]
        return torch.sqrt((r**2).flatten(1).sum(1) / n)
    return torch.sqrt((r**2).flatten(1).mean(1))


TASKS = ("sr4", "inpaint", "deblur", "colorize")


def make_operator(task: str, size: tuple[int, int], *, mask: Tensor | None = None, blur_sigma: float = 2.0,
                  kind: str = "box", grey_lift: str = "copy") -> LinearOperator:
    """The operator of a CLI task: sr4 (Downsample 4, `kind`), inpaint (Inpaint(mask)), deblur, colorize
    (Grey(lift=grey_lift))."""
    if task == "sr4":
        return Downsample(4, size, kind)
    if task == "inpaint":
        if mask is None:
            raise ValueError("mask: expected a mask for task 'inpaint'")
        return Inpaint(mask)
    if task == "deblur":
        return GaussianBlur(blur_sigma, size)
    if task == "colorize":
        return Grey(lift=grey_lift)
    raise ValueError(f"task: expected one of {TASKS}, got {task!r}")


def pixel_offset(op: LinearOperator, image_shape: tuple[int, ...]) -> Tensor:
    """A 1 for one image of `image_shape` (C, H, W): a pixel-range measurement y maps to the [-1, 1] model range
    as 2 y - A 1 (A is linear), and back as (y + A 1) / 2."""
    return op.forward(torch.ones(1, *image_shape))


__all__ = [
    "LUMA",
    "TASKS",
    "Downsample",
    "GaussianBlur",
    "Grey",
    "Inpaint",
    "LinearOperator",
    "consistency",
    "gaussian_kernel_fft",
    "make_operator",
    "measure",
    "pixel_offset",
]
