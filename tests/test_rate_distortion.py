"""Rate-distortion in one call (tokenkit.evaluation.rate_distortion) and the quality columns of tk.ablate."""

from __future__ import annotations

import csv
import json
import math
import warnings

import pytest
import torch

import tokenkit as tk
from tokenkit.errors import ConfigError, TokenkitError
from tokenkit.evaluation.inception import InceptionConfig, InceptionV3FID
from tokenkit.evaluation.rate_distortion import RateDistortionResult, rate_distortion
from tokenkit.evaluation.runner import evaluate_reconstruction


def _lpips_available() -> bool:
    from tokenkit.metrics import lpips

    try:
        lpips(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64))
        return True
    except ConfigError:
        return False


@pytest.fixture(scope="module")
def tiny_inception():
    torch.manual_seed(0)
    return InceptionV3FID(InceptionConfig(weights="random", input_size=75))


@pytest.fixture(scope="module")
def images():
    return tk.data.sample_images(32, seed=0)  # (6, 3, 32, 32): one crop of each bundled photograph


def _tail_drop() -> tk.Tokenizer:
    torch.manual_seed(0)
    return tk.build("titok-tiny", quantizer=tk.Part("tail-drop", quantizer=tk.Part("fsq", levels=(8, 5, 5, 5))))


def test_prefix_sweep_of_one_tail_drop_tokenizer(images, tiny_inception, tmp_path):
    tok = _tail_drop()
    result = rate_distortion(tok, images, metrics="psnr,fid", num_tokens=[2, 8], inception_weights=tiny_inception,
                             progress=False)
    assert [p.tokens for p in result.points] == [2, 8]
    assert result.points[0].bits_per_image == pytest.approx(2 * math.log2(8 * 5 * 5 * 5))  # k * log2(K)
    assert result.columns == ["psnr", "rfid"] and all(set(p.metrics) == {"psnr", "rfid"} for p in result.points)
    assert all(p.weights == "in memory" and p.label == "tail-drop(fsq)" for p in result.points)
    assert result.points[0].info["num_tokens"] == 2 and result.points[0].info["reference"] is not None
    # the shared reference (real-image features computed once) gives the numbers of a plain evaluation
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = evaluate_reconstruction(tok, images, metrics="psnr,fid", num_tokens=2, inception_weights=tiny_inception,
                                        progress=False)
    assert result.points[0].metrics["rfid"] == pytest.approx(plain.metrics["rfid"], rel=1e-9, abs=1e-12)
    assert result.points[0].metrics["psnr"] == pytest.approx(plain.metrics["psnr"])
    assert "note (all points): FID from 6 images" in result.to_markdown()

    default = rate_distortion(tok, images, metrics="psnr", progress=False)  # 1, 2, 4, ..., N
    assert [p.tokens for p in default.points] == [1, 2, 4, 8]
    bits = [p.bits_per_image for p in default.points]
    assert bits == sorted(bits) and bits[-1] == pytest.approx(tok.bits_per_image)
    default.plot(tmp_path / "rd.png")
    assert (tmp_path / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_default_metrics_leave_out_what_is_missing_and_say_so(images, tiny_inception):
    result = rate_distortion(_tail_drop(), images, num_tokens=8, inception_weights=tiny_inception, progress=False)
    assert result.columns == ["psnr", "lpips", "rfid"]
    if _lpips_available():
        assert "lpips" in result.points[0].metrics
    else:
        assert "lpips" not in result.points[0].metrics and any("LPIPS not computed" in n for n in result.notes)
        assert "| PSNR (dB) ↑ | LPIPS ↓ | rFID ↓ |" in result.to_markdown()
        assert "note: LPIPS not computed" in result.to_markdown()
        with pytest.raises(ConfigError, match="VGG16"):  # asked for explicitly: an error, before any evaluation
            rate_distortion(_tail_drop(), images, metrics="psnr,lpips", progress=False)


def test_list_of_compositions_with_random_weights_flagged_and_files_written(images, tmp_path):
    trained = _tail_drop()
    trained.save_pretrained(tmp_path / "saved")
    fsq = tk.spec("titok-tiny").replace(quantizer=tk.Part("fsq", levels=(8, 5, 5, 5)))
    with pytest.warns(UserWarning, match="has random weights"):
        result = rate_distortion({"vq": "titok-tiny", "fsq": fsq, "saved": str(tmp_path / "saved")}, images,
                                 metrics="psnr,usage", progress=False)
    rows = {p.label: p for p in result.points}
    assert list(rows) == ["vq", "fsq", "saved"] and all(p.tokens == 8 for p in result.points)
    assert [rows["vq"].weights, rows["fsq"].weights, rows["saved"].weights] == ["random", "random",
                                                                                str(tmp_path / "saved")]
    assert rows["vq"].bits_per_image == 64.0 and rows["saved"].bits_per_image == pytest.approx(8 * math.log2(1000))
    assert any("has random weights" in n for n in rows["vq"].notes) and not rows["saved"].notes
    assert rows["saved"].info["model"]["weights"] == str(tmp_path / "saved")
    table = result.to_markdown()
    assert "| vq | 8 | 64 |" in table and table.count("| random |") == 2
    assert "note (vq): the tokenizer 'vq' has random weights" in table

    paths = result.save(tmp_path / "out")
    assert sorted(p.name for p in paths) == ["rate_distortion.csv", "rate_distortion.json", "rate_distortion.md",
                                             "rate_distortion.png"]
    with open(tmp_path / "out" / "rate_distortion.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert [r["label"] for r in csv_rows] == ["vq", "fsq", "saved"] and csv_rows[0]["weights"] == "random"
    assert float(csv_rows[2]["psnr"]) == pytest.approx(rows["saved"].metrics["psnr"])
    assert set(csv_rows[0]) == {"label", "tokens", "bits_per_image", "psnr", "usage", "perplexity", "weights", "notes"}
    again = RateDistortionResult.from_json((tmp_path / "out" / "rate_distortion.json").read_text())
    assert again.to_markdown() == table and json.loads(result.to_json())["info"]["protocol"] == "titok"

    # a (name, weights) pair, and a list with one model evaluated at its full length only
    nested = tk.spec("titok-tiny").replace(quantizer=tk.Part("tail-drop",
                                                             quantizer=tk.Part("fsq", levels=(8, 5, 5, 5))))
    with pytest.warns(UserWarning, match="'titok-tiny' has random weights"):
        pair = rate_distortion([("titok-tiny", None), (nested, str(tmp_path / "saved"))], images, metrics="psnr",
                               progress=False)
    assert [p.weights for p in pair.points][1] == str(tmp_path / "saved")
    assert pair.points[1].metrics["psnr"] == pytest.approx(rows["saved"].metrics["psnr"])


def test_bad_input_raises_naming_the_problem(images):
    plain = tk.build("titok-tiny")
    with pytest.raises(ConfigError, match="decodes only all 8 tokens.*tail-drop"):
        rate_distortion(plain, images, num_tokens=[2, 8], metrics="psnr", progress=False)
    with pytest.raises(ConfigError, match="at least one model"):
        rate_distortion([], images, progress=False)
    with pytest.raises(ConfigError, match=r"out of range.*1 <= num_tokens <= 8"):
        rate_distortion(_tail_drop(), images, num_tokens=[0, 9], metrics="psnr", progress=False)
    with pytest.raises(ConfigError, match="same label"):
        rate_distortion(["titok-tiny", "titok-tiny"], images, metrics="psnr", progress=False)
    with pytest.raises(ConfigError, match="unknown metric"):
        rate_distortion(plain, images, metrics="psnr,bogus", progress=False)
    with pytest.raises(ConfigError, match="cannot evaluate"):
        rate_distortion([3], images, progress=False)
    with pytest.raises(TokenkitError):
        rate_distortion(["titok-tinyy"], images, progress=False)  # unknown model name, with a suggestion
    one = rate_distortion(plain, images, metrics="psnr", progress=False)  # no prefixes: one point, said so
    assert [p.tokens for p in one.points] == [8] and "one point" in one.notes[0]


# ---- tk.ablate with evaluation data ------------------------------------------------------------------------------
def test_ablate_quality_columns_and_random_weights(images, tiny_inception, tmp_path):
    trained = tk.build("titok-tiny", num_tokens=4)
    with pytest.warns(UserWarning, match="1 of 2 compositions evaluated with random weights"):
        result = tk.ablate("titok-tiny", num_tokens=[4, 8], throughput=False, eval_data=images,
                           weights={"num_tokens=4": trained}, eval_metrics="psnr,fid",
                           inception_weights=tiny_inception)
    four, eight = result.rows
    assert result.quality == ["psnr", "rfid"]
    assert (four.weights, eight.weights) == ("in memory", "random") and not four.random_weights
    assert set(four.metrics) == set(eight.metrics) == {"psnr", "rfid"}
    plain = evaluate_reconstruction(trained, images, metrics="psnr", progress=False)
    assert four.metrics["psnr"] == pytest.approx(plain.metrics["psnr"])
    table = result.to_markdown()
    assert "| weights | psnr | rfid | error |" in table and "| random |" in table
    assert "note: 1 of 2 rows (weights = random) evaluated with randomly initialised weights" in table
    assert table.count("random weights") == 0  # one summary note, not one per row
    result.to_csv(tmp_path / "a.csv")
    with open(tmp_path / "a.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[1]["weights"] == "random" and float(rows[0]["psnr"]) == pytest.approx(four.metrics["psnr"])
    result.plot(tmp_path / "a.png")
    assert (tmp_path / "a.png").stat().st_size > 0

    # weights by the values-only label, from a saved folder; a composition the weights do not fit is an error
    # row; with evaluate_random=False a composition without weights is not evaluated
    trained.save_pretrained(tmp_path / "four")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no random-weights warning
        result = tk.ablate("titok-tiny", num_tokens=[4, 8, 16], throughput=False, eval_data=images,
                           eval_metrics="psnr", weights={"4": str(tmp_path / "four"), "8": str(tmp_path / "four")},
                           evaluate_random=False)
    assert result.rows[0].weights == str(tmp_path / "four") and result.rows[0].error is None
    assert result.rows[0].metrics["psnr"] == pytest.approx(four.metrics["psnr"])
    assert result.rows[1].error and not result.rows[1].metrics
    assert result.rows[2].weights is None and not result.rows[2].metrics and result.rows[2].error is None
    table = result.to_markdown()
    assert "random" not in table.replace("evaluate_random", "")
    assert "note: 1 composition(s) without weights not evaluated (evaluate_random=False)" in table


def test_ablate_without_eval_data_is_unchanged_and_bad_weights_raise(images):
    result = tk.ablate("titok-tiny", num_tokens=[4, 8], throughput=False)
    assert result.quality == [] and all(r.weights is None and not r.metrics for r in result.rows)
    assert "weights" not in result.to_markdown() and "note" not in result.to_markdown()
    with pytest.raises(ConfigError, match="give eval_data"):
        tk.ablate("titok-tiny", num_tokens=[4, 8], throughput=False, weights={"num_tokens=4": "x"})
    with pytest.raises(ConfigError, match="unknown setting.*'num_tokens=16'.*'num_tokens=4'"):
        tk.ablate("titok-tiny", num_tokens=[4, 8], throughput=False, eval_data=images,
                  weights={"num_tokens=16": "x"})
    with pytest.raises(ConfigError, match="one-composition grid"):
        tk.ablate("titok-tiny", num_tokens=[4, 8], throughput=False, eval_data=images, weights="runs/x")
