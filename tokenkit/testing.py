"""Contract checks for registered parts, usable from any test suite.

tokenkit's own tests run [`check_part`][tokenkit.testing.check_part] on every
registered part; a user who registers a part can do the same::
    from tokenkit.testing import check_part
    check_part("quantizer", "my-vq")

A part is exercised with ``Config.tiny(rng)`` when its config defines that
classmethod (a small random valid config), else with ``Config()``.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from typing import Any

import torch
from torch import nn

from tokenkit.contracts import TextEmbeddings
from tokenkit.factory import instantiate
from tokenkit.losses import LossInputs
from tokenkit.registry import get_part
from tokenkit.specs import Part
from tokenkit.validation import image_shape


def tiny_config(kind: str, name: str, rng: random.Random | None = None) -> Any:
    """A small valid config of part ``kind``/``name``: ``Config.tiny(rng)`` or ``Config()``."""
    config_cls = get_part(kind, name).Config
    tiny = getattr(config_cls, "tiny", None)
    return tiny(rng or random.Random(0)) if callable(tiny) else config_cls()


def tiny_part(kind: str, name: str, rng: random.Random | None = None) -> Part:
    """[`tiny_config`][tokenkit.testing.tiny_config] as a [`Part`][tokenkit.specs.Part]."""
    config = tiny_config(kind, name, rng)
    return Part(name, **{f.name: getattr(config, f.name) for f in dataclasses.fields(config)})


def _assert(cond: bool, message: str) -> None:
    if not cond:
        raise AssertionError(message)


def _assert_batch_independent(module: nn.Module, inputs: torch.Tensor, what: str, output=lambda out: out,
                              extra: tuple[torch.Tensor, ...] = ()) -> None:
    """Each batch item run alone gives the same result as inside the batch.

    Runs a float64 copy of the module so that rounding noise (amplified by
    normalisation layers) cannot hide or fake a dependence between items.
    ``extra`` are further per-item inputs (``module(inputs, *extra)``), sliced alike.
    """
    module = copy.deepcopy(module).double().eval()
    inputs = inputs.detach().double()
    extra = tuple(t.detach().double() for t in extra)
    with torch.no_grad():
        full = output(module(inputs, *extra))
        for i in range(inputs.shape[0]):
            single = output(module(inputs[i : i + 1], *(t[i : i + 1] for t in extra)))
            _assert(torch.allclose(single, full[i : i + 1], atol=1e-9, rtol=1e-7),
                    f"{what}: item {i} differs when run alone (batch items must be independent in eval mode)")


def _assert_grad(t: torch.Tensor, what: str) -> None:
    _assert(t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0,
            f"{what}: no finite, non-zero gradient reached the input")


def check_backbone(module: nn.Module, config: Any, batch: int = 3, length: int = 5) -> None:
    """tokens ``(B, L, W)`` -> tokens ``(B, L, W)``; exposes ``width``; batch items independent."""
    width = getattr(module, "width", None)
    _assert(isinstance(width, int) and width > 0, "backbone must expose an int attribute `width`")
    tokens = torch.randn(batch, length, width, requires_grad=True)
    extra: tuple[torch.Tensor, ...] = ()
    if module.text_conditioned:  # forward(x, context (B, L, W), pooled (B, W)): both must matter
        extra = (torch.randn(batch, length + 2, width), torch.randn(batch, width))
        with torch.no_grad():
            for i in range(2):
                moved = module(tokens, *extra) - module(tokens, *(t + (j == i) for j, t in enumerate(extra)))
                _assert(moved.abs().amax() > 0, f"backbone: its {('context', 'pooled')[i]} input changes nothing")
    out = module(tokens, *extra)
    _assert(out.shape == tokens.shape and out.dtype == tokens.dtype,
            f"backbone output {tuple(out.shape)} {out.dtype} != input {tuple(tokens.shape)} {tokens.dtype}")
    out.square().mean().backward()
    _assert_grad(tokens, "backbone")
    _assert_batch_independent(module, tokens, "backbone", extra=extra)


def check_encoder(module: nn.Module, config: Any, batch: int = 3) -> None:
    """images ``(B, C, H, W)`` in [0, 1] -> latents ``(B, N, D)`` with ``N = num_tokens``, ``D = out_dim``."""
    height, width = image_shape(config.image_size)
    images = torch.rand(batch, getattr(config, "in_channels", 3), height, width)
    with torch.no_grad():
        latents = module(images)
    expected = (batch, config.num_tokens, config.out_dim)
    _assert(tuple(latents.shape) == expected, f"encoder latents {tuple(latents.shape)} != {expected}")
    _assert(latents.is_floating_point() and torch.isfinite(latents).all(), "encoder latents must be finite floats")
    _assert_batch_independent(module, images, "encoder")


def check_quantizer(module: nn.Module, config: Any, batch: int = 3, num_tokens: int = 4) -> None:
    """latents ``(B, N, in_dim)`` -> codes ``(B, N, out_dim)``, indices in ``[0, K)`` or ``None``,
    scalar loss, scalar stats; ``lookup(indices) == codes`` in eval mode; gradients reach the
    latents (straight-through); batch items independent in eval mode.

    Indices are ``(B, N)``, or ``(B, N, Q)`` for a module whose ``num_codebooks`` is ``Q > 1``."""
    latents = torch.randn(batch, num_tokens, config.in_dim, requires_grad=True)
    out = module.train()(latents)
    _assert(tuple(out.codes.shape) == (batch, num_tokens, config.out_dim),
            f"codes {tuple(out.codes.shape)} != {(batch, num_tokens, config.out_dim)}")
    _assert(out.codes.dtype == latents.dtype, f"codes dtype {out.codes.dtype} != latents dtype {latents.dtype}")
    _assert(out.loss.ndim == 0 and torch.isfinite(out.loss), "loss must be a finite scalar")
    _assert(isinstance(out.stats, dict) and all(v.ndim == 0 for v in out.stats.values()),
            "stats must be a dict of scalar tensors")
    (out.codes.square().sum() + out.loss).backward()
    _assert_grad(latents, "quantizer (straight-through)")
    codebook_size, num_codebooks = module.codebook_size, module.num_codebooks
    _assert(isinstance(num_codebooks, int) and num_codebooks >= 1,
            f"num_codebooks must be a positive int, got {num_codebooks!r}")
    id_shape = (batch, num_tokens) if num_codebooks == 1 else (batch, num_tokens, num_codebooks)
    module.eval()
    with torch.no_grad():
        out = module(latents.detach())
        if codebook_size is None:
            _assert(out.indices is None, "a continuous quantizer (codebook_size None) must return indices=None")
        else:
            idx = out.indices
            _assert(idx is not None and idx.dtype == torch.int64 and tuple(idx.shape) == id_shape,
                    f"indices must be int64 {id_shape}, got "
                    f"{None if idx is None else (idx.dtype, tuple(idx.shape))}")
            _assert(int(idx.min()) >= 0 and int(idx.max()) < codebook_size, f"indices outside [0, {codebook_size})")
            _assert(torch.allclose(module.lookup(idx), out.codes, atol=1e-6), "lookup(indices) != codes in eval mode")
    _assert_batch_independent(module, latents, "quantizer codes", output=lambda out: out.codes)


def check_decoder(module: nn.Module, config: Any, batch: int = 3) -> None:
    """codes ``(B, N, in_dim)`` -> images ``(B, C, H, W)`` (``output_kind == "images"``) or
    logits ``(B, L, out_dim)`` (``"logits"``); gradients reach the codes; batch items independent."""
    num_tokens = getattr(config, "num_tokens", None) or 4
    codes = torch.randn(batch, num_tokens, config.in_dim, requires_grad=True)
    extra: tuple[torch.Tensor, ...] = ()
    if module.text_dim is not None:  # a text-aware decoder: random text guidance, checked for its effect
        extra = (torch.randn(batch, config.text_length, module.text_dim),)
        with torch.no_grad():
            moved = module(codes, *extra) - module(codes, extra[0] + 1)
        _assert(moved.abs().amax() > 0, "text-aware decoder: the text guidance does not change the output")
    out = module(codes, *extra)
    kind = module.output_kind
    if kind == "images":
        _assert(out.ndim == 4 and out.shape[0] == batch, f"decoder images must be (B, C, H, W), got {tuple(out.shape)}")
        if hasattr(config, "out_channels"):
            _assert(out.shape[1] == config.out_channels, f"decoder channels {out.shape[1]} != {config.out_channels}")
        if hasattr(config, "image_size"):
            _assert(tuple(out.shape[-2:]) == image_shape(config.image_size),
                    f"decoder image {tuple(out.shape[-2:])} != {config.image_size}")
    else:
        _assert(out.ndim == 3 and out.shape[0] == batch and out.shape[-1] == config.out_dim,
                f"decoder logits must be (B, L, {config.out_dim}), got {tuple(out.shape)}")
    _assert(out.is_floating_point() and torch.isfinite(out).all(), "decoder output must be finite floats")
    out.square().mean().backward()
    _assert_grad(codes, "decoder")
    _assert_batch_independent(module, codes, "decoder", extra=extra)


def check_text_generator(module: nn.Module, config: Any, batch: int = 3) -> None:
    """A generator with ``conditioning == "text"``: prompts -> ``encode_text`` ->
    [`TextEmbeddings`][tokenkit.contracts.TextEmbeddings]; gradients reach the parameters; batch items
    independent in eval mode (float64); ``generate(prompts)`` reproducible under the same ``torch.Generator``.

    Discrete tokens (``codebook_size`` K): ``forward(indices (B, N) in [0, K], text) -> logits (B, N, K)`` and
    ``generate`` gives ``(B, N)`` ids in ``[0, K)``. Continuous tokens (``codebook_size`` None, ``token_dim`` C):
    ``forward(tokens (B, N, C), mask (B, N) bool, text) -> (B, N, W)``, ``loss(codes, text)`` a finite scalar,
    and ``generate`` gives finite ``(B, N, C)`` codes."""
    k, n = module.codebook_size, module.num_tokens
    gen = torch.Generator().manual_seed(0)
    prompts = [f"prompt number {i}" for i in range(batch)]
    text = module.encode_text(prompts)
    _assert(isinstance(text, TextEmbeddings), f"encode_text must give TextEmbeddings, got {type(text).__name__}")
    if k is None:
        c = module.token_dim
        inputs = (torch.randn(batch, n, c, generator=gen), torch.rand(batch, n, generator=gen) < 0.5)
        module.train()
        loss = module.loss(inputs[0], text, generator=gen)
        _assert(loss.ndim == 0 and torch.isfinite(loss), f"generator loss must be a finite scalar, got {loss}")
    else:
        _assert(module.mask_id == k, f"mask_id must be the codebook size {k}, got {module.mask_id}")
        inputs = (torch.randint(0, k + 1, (batch, n), generator=gen),)
        logits = module(*inputs, text)
        _assert(tuple(logits.shape) == (batch, n, k), f"generator logits {tuple(logits.shape)} != {(batch, n, k)}")
        _assert(torch.isfinite(logits).all(), "generator logits must be finite")
        loss = logits.square().mean()
    loss.backward()
    _assert(any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters()),
            "generator: no gradient reached the parameters")
    wrapped = copy.deepcopy(module).double().eval()
    text64 = TextEmbeddings(*(t.double() for t in text))
    cast = [t.double() if t.is_floating_point() else t for t in inputs]
    with torch.no_grad():
        full = wrapped(*cast, text64)
        _assert(full.shape[:2] == (batch, n) and torch.isfinite(full).all(), f"forward gave {tuple(full.shape)}")
        for i in range(batch):
            alone = wrapped(*(t[i : i + 1] for t in cast), text64.select(slice(i, i + 1)))
            _assert(torch.allclose(alone, full[i : i + 1], atol=1e-9),
                    f"generator: item {i} differs when run alone (batch items must be independent in eval mode)")
    out = module.generate(prompts, generator=torch.Generator().manual_seed(1))
    again = module.generate(prompts, generator=torch.Generator().manual_seed(1))
    _assert(torch.equal(out, again), "generate is not reproducible under the same torch.Generator")
    if k is None:
        _assert(tuple(out.shape) == (batch, n, module.token_dim) and out.is_floating_point()
                and torch.isfinite(out).all(), f"generate gave {out.dtype} {tuple(out.shape)}")
    else:
        _assert(tuple(out.shape) == (batch, n) and out.dtype == torch.int64,
                f"generate gave {out.dtype} {tuple(out.shape)}")
        _assert(int(out.min()) >= 0 and int(out.max()) < k, f"generated ids outside [0, {k}) (a mask id left?)")


def check_generator(module: nn.Module, config: Any, batch: int = 3) -> None:
    """``indices (B, N)`` in ``[0, K]`` (``K`` = mask id) + ``labels (B,)`` -> ``logits (B, N, K)``;
    gradients reach the parameters; batch items independent; ``generate(labels)`` returns ``(B, N)``
    ids in ``[0, K)`` (no mask left), identical under the same ``torch.Generator``. A text-conditioned
    generator is checked by [`check_text_generator`][tokenkit.testing.check_text_generator]."""
    if module.conditioning == "text":
        check_text_generator(module, config, batch)
        return
    k, n, classes = module.codebook_size, module.num_tokens, module.num_classes
    _assert(module.mask_id == k, f"mask_id must be the codebook size {k}, got {module.mask_id}")
    gen = torch.Generator().manual_seed(0)
    indices = torch.randint(0, k + 1, (batch, n), generator=gen)
    labels = torch.randint(0, classes, (batch,), generator=gen)
    logits = module(indices, labels)
    _assert(tuple(logits.shape) == (batch, n, k), f"generator logits {tuple(logits.shape)} != {(batch, n, k)}")
    _assert(logits.is_floating_point() and torch.isfinite(logits).all(), "generator logits must be finite floats")
    logits.square().mean().backward()
    _assert(any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters()),
            "generator: no gradient reached the parameters")
    wrapped = copy.deepcopy(module).double().eval()
    with torch.no_grad():
        full = wrapped(indices, labels)
        for i in range(batch):
            _assert(torch.allclose(wrapped(indices[i : i + 1], labels[i : i + 1]), full[i : i + 1], atol=1e-9),
                    f"generator: item {i} differs when run alone (batch items must be independent in eval mode)")
    ids = module.generate(labels, generator=torch.Generator().manual_seed(1))
    again = module.generate(labels, generator=torch.Generator().manual_seed(1))
    _assert(tuple(ids.shape) == (batch, n) and ids.dtype == torch.int64, f"generate gave {ids.dtype} {tuple(ids.shape)}")
    _assert(int(ids.min()) >= 0 and int(ids.max()) < k, f"generated ids outside [0, {k}) (a mask id left?)")
    _assert(torch.equal(ids, again), "generate is not reproducible under the same torch.Generator")


def _dataset_items(dataset: Any, count: int) -> list:
    if isinstance(dataset, torch.utils.data.IterableDataset):
        import itertools

        return list(itertools.islice(iter(dataset), count))
    return [dataset[i] for i in range(min(count, len(dataset)))]


def _check_image_item(item: dict, size: int) -> None:
    image = item["image"]
    _assert(isinstance(image, torch.Tensor) and image.is_floating_point() and tuple(image.shape) == (3, size, size),
            f"image must be a float (3, {size}, {size}) tensor, got "
            f"{getattr(image, 'dtype', type(image))} {tuple(getattr(image, 'shape', ()))}")
    _assert(bool(torch.isfinite(image).all()) and float(image.min()) >= 0 and float(image.max()) <= 1,
            "image values must be finite and in [0, 1]")


def _check_tokens_item(item: dict, length: int) -> None:
    tokens = item["tokens"]
    _assert(isinstance(tokens, torch.Tensor) and tokens.dtype == torch.int64 and tuple(tokens.shape) == (length,),
            f"tokens must be an int64 ({length},) tensor (the same length in every item), got "
            f"{getattr(tokens, 'dtype', type(tokens))} {tuple(getattr(tokens, 'shape', ()))}")
    _assert(length > 0 and int(tokens.min()) >= 0, "tokens must be non-empty ids >= 0")


def check_dataset(module: Any, config: Any, batch: int = 2) -> None:
    """Items ``{"image": (3, size, size) float in [0, 1], "label": int, "key": str}``, or for a
    token dataset (items with ``"tokens"`` and no ``"image"``) ``{"tokens": (N,) int64 ids >= 0,
    "label": int, "key": str}`` with the same ``N`` in every item (or ``"codes"`` ``(N, C)`` finite floats
    of a continuous tokenizer); a ``"text"`` caption, when present, is a str; the same items again under the
    same epoch (for a part with ``set_epoch``); batches ``(B, 3, size, size)`` (or ``(B, N)``) in a
    ``DataLoader`` with ``num_workers=0``.

    A part that reads files defines ``Config.example(directory)``, which writes a few tiny files
    into ``directory`` and returns a config reading them; the check then builds the part from
    that config in a temporary directory instead of using ``module``."""
    import tempfile

    example = getattr(type(config), "example", None)
    with tempfile.TemporaryDirectory() as tmp:
        if callable(example):
            config = example(tmp)
            module = instantiate(module.part_kind, module.part_name, config)
        if hasattr(module, "train"):
            module.train()
        items = _dataset_items(module, 4)
        _assert(len(items) > 0, "dataset yielded no items")
        sample = items[0]
        payload = "image"
        if isinstance(sample, dict) and "image" not in sample:
            payload = "tokens" if "tokens" in sample else "codes" if "codes" in sample else "image"
        if payload == "image":
            size = config.size
            shape = (3, size, size)
        elif payload == "codes":  # a continuous tokenizer's codes (N, C)
            shape = tuple(sample["codes"].shape)
        else:
            tokens = sample["tokens"]
            length = tokens.shape[-1] if isinstance(tokens, torch.Tensor) and tokens.ndim else 0
            shape = (length,)
        for item in items:
            _assert(isinstance(item, dict) and {payload, "label", "key"} <= set(item),
                    f"items must be dicts with keys {payload}, label, key; got {type(item).__name__} "
                    f"{sorted(item) if isinstance(item, dict) else ''}")
            if payload == "image":
                _check_image_item(item, size)
            elif payload == "codes":
                codes = item["codes"]
                _assert(isinstance(codes, torch.Tensor) and codes.is_floating_point() and tuple(codes.shape) == shape
                        and torch.isfinite(codes).all(), f"codes must be finite floats of shape {shape}")
            else:
                _check_tokens_item(item, length)
            _assert(isinstance(item.get("text", ""), str), f"text must be a str, got {item.get('text')!r}")
            _assert(isinstance(item["label"], int) and item["label"] >= -1, f"label must be an int >= -1, got "
                    f"{item['label']!r}")
            _assert(isinstance(item["key"], str), f"key must be a str, got {item['key']!r}")
        if hasattr(module, "set_epoch"):
            module.set_epoch(1)
            first = _dataset_items(module, 4)
            module.set_epoch(1)
            again = _dataset_items(module, 4)
            _assert(len(first) == len(again) and all(a["key"] == b["key"] and torch.equal(a[payload], b[payload])
                                                     for a, b in zip(first, again)),
                    "dataset is not reproducible under the same seed and epoch")
            module.set_epoch(0)
        loader = torch.utils.data.DataLoader(module, batch_size=batch, num_workers=0)
        got = next(iter(loader))
        n = min(batch, len(items))
        _assert(tuple(got[payload].shape) == (n, *shape),
                f"DataLoader batch {payload} {tuple(got[payload].shape)} != {(n, *shape)}")
        _assert(got["label"].dtype == torch.int64 and tuple(got["label"].shape) == (n,),
                f"DataLoader batch labels must be int64 ({n},)")


def check_loss(module: nn.Module, config: Any, batch: int = 3, size: int = 16) -> None:
    """[`LossInputs`][tokenkit.losses.LossInputs] -> finite scalar; gradients reach the reconstructions
    (or, for a part with ``uses_reconstructions = False``, the quantizer loss) but none of the part's own
    parameters (a generator-side loss never trains its discriminator); ``B`` identical items give the
    value of one item (float64 copy in eval mode).

    Inputs: images ``(B, 3, size, size)`` in [0, 1], or, for a part with ``needs_targets = True``,
    proxy logits ``(B, L, K)`` and targets ``(B, L)``; ``step`` is large so that scheduled terms are on."""
    gen = torch.Generator().manual_seed(0)
    if module.needs_targets:
        images = None
        recon = torch.randn(batch, 4, 5, generator=gen)
        targets = torch.randint(0, 5, (batch, 4), generator=gen)
    else:
        images = torch.rand(batch, 3, size, size, generator=gen)
        recon = torch.rand(batch, 3, size, size, generator=gen)
        targets = None
    recon.requires_grad_(True)
    qloss = torch.rand((), generator=gen).requires_grad_(True)
    step = 10**9
    value = module.train()(LossInputs(images, recon, qloss, targets, step))
    _assert(isinstance(value, torch.Tensor) and value.ndim == 0 and value.is_floating_point(),
            f"loss must return a float scalar tensor, got {getattr(value, 'shape', type(value).__name__)}")
    _assert(bool(torch.isfinite(value)), f"loss is not finite: {value}")
    _assert(value.requires_grad, "loss is not differentiable (no graph)")
    value.backward()
    if module.uses_reconstructions:
        _assert_grad(recon, "loss (reconstructions)")
    else:
        _assert_grad(qloss, "loss (quantizer_loss)")
    trained = [n for n, p in module.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    _assert(not trained, f"loss forward gave gradients to its own parameters {trained[:3]}")
    wrapped = copy.deepcopy(module).double().eval()

    def one(n: int) -> torch.Tensor:
        pick = (lambda t: None if t is None else t.detach()[:1].repeat(n, *([1] * (t.ndim - 1))))
        img, rec = pick(images), pick(recon)
        return wrapped(LossInputs(None if img is None else img.double(), rec.double() if rec.is_floating_point()
                                  else rec, qloss.detach().double(), pick(targets), step))

    with torch.no_grad():
        single, full = one(1), one(batch)
    _assert(torch.allclose(single, full, atol=1e-9, rtol=1e-7),
            f"loss of {batch} identical items {full.item()} != loss of one {single.item()} (use mean reductions)")


def check_discriminator(module: nn.Module, config: Any, batch: int = 3, size: int = 16) -> None:
    """images ``(B, C, size, size)`` in [0, 1] -> patch logits ``(B, 1, h, w)``, finite; gradients reach the
    images and the parameters; batch items independent in eval mode."""
    channels = getattr(config, "in_channels", 3)
    images = torch.rand(batch, channels, size, size, requires_grad=True)
    logits = module.train()(images)
    _assert(logits.ndim == 4 and logits.shape[:2] == (batch, 1),
            f"discriminator logits must be (B, 1, h, w), got {tuple(logits.shape)}")
    _assert(logits.is_floating_point() and bool(torch.isfinite(logits).all()), "discriminator logits must be finite")
    logits.square().mean().backward()
    _assert_grad(images, "discriminator")
    _assert(any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters()),
            "discriminator: no gradient reached the parameters")
    _assert_batch_independent(module, images, "discriminator")


def check_feature(module: nn.Module, config: Any, batch: int = 3) -> None:
    """images ``(B, 3, H, W)`` in [0, 255] (uint8 or float, any size) -> ``(pool, logits | None, spatial)``,
    each ``(B, ...)`` and finite; no gradients needed; batch items independent."""
    size = getattr(config, "input_size", 299)
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)
    out = module(images)
    _assert(isinstance(out, tuple) and hasattr(out, "pool") and hasattr(out, "logits") and hasattr(out, "spatial"),
            "feature output must be a NamedTuple (pool, logits, spatial)")
    for name in ("pool", "logits", "spatial"):
        value = getattr(out, name)
        if value is None and name == "logits":
            continue
        _assert(isinstance(value, torch.Tensor) and value.ndim == 2 and value.shape[0] == batch,
                f"feature {name} must be (B, D), got {None if value is None else tuple(value.shape)}")
        _assert(bool(torch.isfinite(value).all()), f"feature {name} has non-finite values")
    resized = module(torch.randint(0, 256, (batch, 3, size + 7, size - 5), dtype=torch.uint8).float())
    _assert(resized.pool.shape == out.pool.shape, "feature output must not depend on the input size (resized inside)")
    _assert(not any(p.requires_grad for p in module.parameters()), "feature parts are fixed: no trainable parameters")
    _assert_batch_independent(module, images.float(), "feature", output=lambda o: o.pool)


def check_text_encoder(module: nn.Module, config: Any, batch: int = 3) -> None:
    """prompts -> ``TextEmbeddings``: ``tokens`` and ``hidden`` ``(B, L, width)``, ``pooled (B, pooled_dim)``,
    finite; frozen (no trainable parameters, nothing in ``state_dict``); prompts independent; different
    prompts give different embeddings."""
    prompts = ["a photo of a cat", "", "two red rockets over a snowy forest at night"][:batch]
    out = module(prompts)
    shapes = {"tokens": (batch, module.context_length, module.width), "hidden": (batch, module.context_length,
              module.width), "pooled": (batch, module.pooled_dim)}
    for name, shape in shapes.items():
        value = getattr(out, name)
        _assert(tuple(value.shape) == shape, f"text encoder {name} {tuple(value.shape)} != {shape}")
        _assert(value.is_floating_point() and torch.isfinite(value).all(), f"text encoder {name} must be finite")
    _assert(not any(p.requires_grad for p in module.parameters()), "text encoders are frozen: no trainable parameters")
    _assert(len(module.state_dict()) == 0, "a text encoder's weights are external: its state_dict must be empty")
    wrapped = copy.deepcopy(module).double()
    full = wrapped(prompts)
    for i, prompt in enumerate(prompts):
        single = wrapped([prompt])
        _assert(all(torch.allclose(a, b[i : i + 1], atol=1e-9) for a, b in zip(single, full, strict=True)),
                f"text encoder: prompt {i} differs when encoded alone")
    _assert(not torch.allclose(full.pooled[0], full.pooled[1]), "text encoder: different prompts, same embedding")


CHECKS = {"backbone": check_backbone, "encoder": check_encoder, "quantizer": check_quantizer,
          "decoder": check_decoder, "generator": check_generator, "dataset": check_dataset,
          "loss": check_loss, "discriminator": check_discriminator, "feature": check_feature,
          "text_encoder": check_text_encoder}
"""Contract check per kind."""


def check_part(kind: str, name: str, rng: random.Random | None = None, config: Any = None) -> None:
    """Build part ``kind``/``name`` from a tiny config and check its kind's contract.

    Args:
        kind: Part kind.
        name: Registered name.
        rng: Randomises the tiny config (``Config.tiny(rng)``).
        config: Use this config instead of a tiny one.

    Raises:
        AssertionError: Naming the broken contract.
        KeyError: No contract check exists for ``kind``.
    """
    if kind not in CHECKS:
        raise KeyError(f"no contract check for kind {kind!r}; checks exist for {', '.join(CHECKS)}")
    torch.manual_seed(0)
    config = config if config is not None else tiny_config(kind, name, rng)
    module = instantiate(kind, name, config).eval()
    try:
        CHECKS[kind](module, config)
    except AssertionError as err:
        raise AssertionError(f"{kind} {name!r} with {config}: {err}") from None
