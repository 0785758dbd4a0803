"""Loss parts, the discriminator and the reference loss recipes."""

import pytest
import torch
from _helpers import official_keys

import tokenkit as tk
from tokenkit.discriminators import BlurDownsample
from tokenkit.errors import ConfigError
from tokenkit.losses import LeCAM, LossInputs, hinge_discriminator_loss, recipes
from tokenkit.losses.lpips import vgg16_weights_path

TINY_D = tk.Part("nlayer", hidden_channels=4, num_stages=2, norm_groups=4, pool_size=4)


def _inputs(step=0, size=16, batch=2):
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, size, size, generator=gen)
    recon = torch.rand(batch, 3, size, size, generator=gen).requires_grad_(True)
    return LossInputs(images, recon, torch.tensor(0.5), step=step)


def test_default_discriminator_matches_official_layout():
    keys = official_keys("discriminator")
    d = tk.build_part("discriminator", "nlayer", device="meta")
    assert sum(p.numel() for p in d.parameters()) == 1_909_889
    assert {k: tuple(v.shape) for k, v in d.state_dict().items()} == keys


def test_discriminator_output_is_16x16_patch_logits():
    d = tk.build_part("discriminator", tk.Part("nlayer", hidden_channels=32, num_stages=3))
    assert d(torch.rand(1, 3, 256, 256)).shape == (1, 1, 16, 16)


@pytest.mark.parametrize("size", [3, 4, 5])
@pytest.mark.parametrize("length", [8, 9, 16])
def test_blur_halves_the_resolution_for_every_size(size, length):
    blur = BlurDownsample(size)
    assert blur.kernel.shape == (1, 1, size, size) and torch.isclose(blur.kernel.sum(), torch.tensor(1.0))
    out = blur(torch.ones(1, 2, length, length))
    assert out.shape == (1, 2, (length + 1) // 2, (length + 1) // 2)
    # a constant image stays constant away from the zero-padded border
    assert torch.allclose(out[..., 1:-1, 1:-1], torch.ones(()))


def test_hinge_discriminator_loss_by_hand():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-3.0, 0.0])
    # relu(1 - real) = 0, 0.5, 2 -> mean 2.5/3; relu(1 + fake) = 0, 1 -> mean 0.5
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(0.5 * (2.5 / 3 + 0.5))


def test_lecam_by_hand_and_ema_update_after_the_loss():
    lecam = LeCAM(weight=0.1, decay=0.9)
    lecam.ema_real_logits_mean.fill_(1.0)
    lecam.ema_fake_logits_mean.fill_(-1.0)
    real, fake = torch.tensor([0.5, 1.5]), torch.tensor([0.0, 2.0])  # means 1.0 and 1.0
    # relu(1 - (-1))^2 + relu(1 - 1)^2 = 4
    assert lecam(real, fake).item() == pytest.approx(0.4)
    assert lecam.ema_real_logits_mean.item() == pytest.approx(1.0)
    assert lecam.ema_fake_logits_mean.item() == pytest.approx(0.9 * -1.0 + 0.1 * 1.0)
    before = lecam.ema_fake_logits_mean.clone()
    lecam(real, fake, update=False)
    assert torch.equal(lecam.ema_fake_logits_mean, before)
    assert set(lecam.state_dict()) == {"ema_real_logits_mean", "ema_fake_logits_mean"}


def test_recon_l1_l2():
    x = torch.zeros(1, 3, 2, 2)
    inputs = LossInputs(x, x + 0.5, torch.zeros(()))
    assert tk.build_part("loss", tk.Part("recon", kind="l1"))(inputs).item() == pytest.approx(0.5)
    assert tk.build_part("loss", tk.Part("recon"))(inputs).item() == pytest.approx(0.25)
    with pytest.raises(ConfigError):
        tk.build_part("loss", tk.Part("recon", kind="l3"))


def test_proxy_ce_matches_cross_entropy():
    logits, targets = torch.randn(2, 6, 10), torch.randint(0, 10, (2, 6))
    ce = tk.build_part("loss", "proxy-ce")(LossInputs(None, logits, torch.zeros(()), targets=targets))
    assert torch.allclose(ce, torch.nn.functional.cross_entropy(logits.reshape(-1, 10), targets.reshape(-1)))
    with pytest.raises(tk.ContractError):
        tk.build_part("loss", "proxy-ce")(LossInputs(None, logits, torch.zeros(())))


def test_composite_is_the_weighted_sum():
    part = tk.Part("composite", terms=[("rec", 2.0, tk.Part("recon", kind="l1")), ("q", 0.25, tk.Part("quantizer"))])
    loss = tk.build_part("loss", part)
    inputs = _inputs()
    l1 = (inputs.reconstructions - inputs.images).abs().mean()
    out = loss.terms_of(inputs)
    assert torch.allclose(out.loss, 2.0 * l1 + 0.25 * 0.5)
    assert torch.allclose(loss(inputs), out.loss)
    assert set(out.terms) == {"rec", "q"} and not any(t.requires_grad for t in out.terms.values())
    assert torch.allclose(out.terms["rec"], 2.0 * l1)
    assert tk.Part.from_dict(part.to_dict()) == part  # JSON round trip
    with pytest.raises(ConfigError):
        tk.build_part("loss", tk.Part("composite", terms=[("a", 1.0, tk.Part("recon")), ("a", 1.0, tk.Part("recon"))]))


def test_adversarial_zero_before_start_and_active_after():
    loss = tk.build_part("loss", tk.Part("adversarial", discriminator=TINY_D, start_step=10))
    before = loss(_inputs(step=9))
    assert before.item() == 0.0 and before.requires_grad
    inputs = _inputs(step=10)
    after = loss(inputs)
    assert after.item() != 0.0
    after.backward()
    assert inputs.reconstructions.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.discriminator.parameters())  # the generator term never trains D
    d_loss = loss.discriminator_loss(inputs)
    d_loss.backward()
    assert all(p.grad is not None for p in loss.discriminator.parameters())
    assert loss.lecam.ema_real_logits_mean.item() != 0.0  # updated in training mode
    assert loss.discriminator_loss(_inputs(step=0)).item() == 0.0


def test_lpips_offline_frozen_and_zero_for_identical_images():
    loss = tk.build_part("loss", tk.Part("lpips", pretrained=False)).train()
    assert not loss.net.training and not any(p.requires_grad for p in loss.parameters())
    inputs = _inputs(size=32)
    value = loss(inputs)
    assert value.ndim == 0 and value.item() > 0
    value.backward()
    assert inputs.reconstructions.grad.abs().sum() > 0
    assert loss(LossInputs(inputs.images, inputs.images, torch.zeros(()))).item() == pytest.approx(0.0, abs=1e-6)


def test_lpips_pretrained_without_weights_fails_clearly():
    if vgg16_weights_path().is_file():
        pytest.skip("VGG16 weights are cached here")
    with pytest.raises(ConfigError, match="vgg16"):
        tk.build_part("loss", tk.Part("lpips"))


def test_recipes_build_and_run():
    inputs = _inputs(step=10**6, size=16)
    for make in (recipes.single_stage_vq, recipes.single_stage_vae, recipes.stage2):
        part = make(lpips_pretrained=False)
        terms = {name: part for name, _, part in part.config["terms"]}
        adv = terms["adversarial"].with_options(discriminator=TINY_D)
        part = part.with_options(terms=tuple((n, w, adv if n == "adversarial" else p)
                                             for n, w, p in part.config["terms"]))
        out = tk.build_part("loss", part).terms_of(inputs)
        assert torch.isfinite(out.loss) and set(out.terms) == set(terms)
    weights = {n: w for n, w, _ in recipes.single_stage_vae().config["terms"]}
    assert weights["kl"] == 1e-6 and weights["adversarial"] == 0.1
    assert {n: w for n, w, _ in recipes.stage2().config["terms"]}["adversarial"] == 0.01
    stage1 = tk.build_part("loss", recipes.stage1())
    logits, targets = torch.randn(2, 4, 8), torch.randint(0, 8, (2, 4))
    assert torch.isfinite(stage1(LossInputs(None, logits, torch.tensor(1.0), targets=targets)))
