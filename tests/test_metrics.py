"""Image and codebook metrics."""

import pytest
import torch

import tokenkit as tk
from tokenkit.metrics import codebook_usage, perplexity, psnr, ssim
from tokenkit.quantizers.stats import codebook_stats


def test_ssim_identical_is_one_and_noise_lowers_it():
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))
    noisy = (x + 0.3 * torch.randn_like(x)).clamp(0, 1)
    assert (ssim(noisy, x) < 0.9).all() and ssim(noisy, x).shape == (2,)


def test_ssim_matches_skimage():
    metrics = pytest.importorskip("skimage.metrics")
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 24, 20, generator=gen)
    y = (x + 0.2 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    ours = ssim(x, y)
    for i in range(2):
        ref = metrics.structural_similarity(x[i].numpy(), y[i].numpy(), channel_axis=0, gaussian_weights=True,
                                            sigma=1.5, use_sample_covariance=False, data_range=1.0)
        assert abs(float(ours[i]) - float(ref)) < 1e-3


def test_ssim_rejects_bad_shapes():
    with pytest.raises(ValueError):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError):
        ssim(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17))


def test_psnr_kept():
    x = torch.zeros(1, 3, 4, 4)
    assert psnr(x + 0.1, x).item() == pytest.approx(20.0)


def test_codebook_metrics_reuse_stats():
    idx = torch.tensor([[0, 0, 1, 3]])
    stats = codebook_stats(idx, 8)
    assert codebook_usage(idx, 8) == stats["usage"] == 3 / 8
    assert perplexity(idx, 8) == stats["perplexity"]
    assert perplexity(torch.zeros(5, dtype=torch.long), 4).item() == pytest.approx(1.0)


def test_lpips_metric_is_per_image_and_zero_for_identical_images():
    from tokenkit.metrics import lpips

    images = tk.data.sample_images(16, per_image=1, seed=0)[:3]
    noisy = (images + 0.2 * torch.randn_like(images)).clamp(0, 1)
    same, different = lpips(images, images, pretrained=False), lpips(noisy, images, pretrained=False)
    assert same.shape == different.shape == (3,)
    assert torch.allclose(same, torch.zeros(3), atol=1e-6) and bool((different > same).all())
    from tokenkit.losses.lpips import vgg16_weights_path

    if not vgg16_weights_path().is_file():  # offline machines: the real network's weights are not cached
        with pytest.raises(tk.ConfigError, match="VGG16 weights"):
            lpips(images, images, pretrained=True)
