"""Image and codebook metrics."""

from __future__ import annotations

import torch

from tokenkit.factory import build_part
from tokenkit.quantizers.stats import codebook_stats
from tokenkit.specs import Part


def psnr(images: torch.Tensor, reference: torch.Tensor, *, max_value: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB.

    Args:
        images: ``(B, C, H, W)`` in ``[0, max_value]``.
        reference: Same shape.
        max_value: Peak value (1 for images in [0, 1]).

    Returns:
        ``(B,)`` PSNR (``inf`` for identical images).

    Examples:
        >>> import torch
        >>> from tokenkit.metrics import psnr
        >>> x = torch.zeros(1, 3, 4, 4)
        >>> round(psnr(x + 0.1, x).item(), 2)
        20.0
    """
    if images.shape != reference.shape:
        raise ValueError(f"psnr needs equal shapes, got {tuple(images.shape)} and {tuple(reference.shape)}")
    mse = (images.float() - reference.float()).square().flatten(1).mean(dim=1)
    return 10 * torch.log10(max_value**2 / mse)


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-coords.square() / (2 * sigma**2))
    return g / g.sum()


def ssim(images: torch.Tensor, reference: torch.Tensor, *, max_value: float = 1.0, window_size: int = 11,
         sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004), averaged over channels and valid window positions.

    Gaussian window ``window_size`` x ``window_size`` (sigma 1.5), constants ``(0.01 L)^2`` and
    ``(0.03 L)^2``, population (co)variances, no padding (only positions where the window fits);
    computed in float64. Matches ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=L)``.

    Args:
        images: ``(B, C, H, W)`` in ``[0, max_value]``, ``H, W >= window_size``.
        reference: Same shape.
        max_value: Data range ``L``.
        window_size: Side of the Gaussian window.
        sigma: Standard deviation of the window.

    Returns:
        ``(B,)`` SSIM (1 for identical images).

    Examples:
        >>> import torch
        >>> from tokenkit.metrics import ssim
        >>> x = torch.rand(2, 3, 16, 16)
        >>> ssim(x, x)
        tensor([1., 1.], dtype=torch.float64)
    """
    if images.shape != reference.shape or images.ndim != 4:
        raise ValueError(f"ssim needs equal (B, C, H, W) shapes, got {tuple(images.shape)} and {tuple(reference.shape)}")
    if min(images.shape[-2:]) < window_size:
        raise ValueError(f"ssim needs images of at least {window_size}x{window_size}, got {tuple(images.shape[-2:])}")
    x, y = images.double(), reference.double()
    channels = x.shape[1]
    g = _gaussian_window(window_size, sigma, x.dtype, x.device)
    window = (g[:, None] * g[None, :]).expand(channels, 1, window_size, window_size)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(t, window, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x.square()
    var_y = blur(y * y) - mu_y.square()
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * max_value) ** 2, (0.03 * max_value) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(dim=1)


def codebook_usage(indices: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """Fraction of the ``codebook_size`` codes that occur in ``indices`` (any shape); scalar.

    Examples:
        >>> import torch
        >>> from tokenkit.metrics import codebook_usage
        >>> codebook_usage(torch.tensor([[0, 1, 1]]), 4).item()
        0.5
    """
    return codebook_stats(indices, codebook_size)["usage"]


def perplexity(indices: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """``exp(entropy)`` of the code histogram of ``indices``: ``K`` when uniform, 1 when collapsed; scalar.

    Examples:
        >>> import torch
        >>> from tokenkit.metrics import perplexity
        >>> round(perplexity(torch.tensor([0, 1, 2, 3]), 4).item(), 4)
        4.0
    """
    return codebook_stats(indices, codebook_size)["perplexity"]


def lpips(images: torch.Tensor, reference: torch.Tensor, *, pretrained: bool = True) -> torch.Tensor:
    """LPIPS (VGG) distance per image: lower is more similar.

    Args:
        images: ``(B, 3, H, W)`` in [0, 1].
        reference: Same shape.
        pretrained: The real metric (``True``) needs the torchvision VGG16 weights in the torch
            cache; ``False`` uses random VGG features (tests only).

    Returns:
        ``(B,)`` distances.

    Raises:
        ConfigError: ``pretrained=True`` and the VGG16 weights are missing.
    """
    network = _lpips_module(pretrained).to(images.device)
    with torch.no_grad():
        return network.distances(reference, images).float()


def _lpips_module(pretrained: bool) -> torch.nn.Module:
    key = bool(pretrained)
    if key not in _LPIPS:
        _LPIPS[key] = build_part("loss", Part("lpips", pretrained=key))
    return _LPIPS[key]


_LPIPS: dict[bool, torch.nn.Module] = {}
