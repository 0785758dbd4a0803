"""tk.ablate's speed columns: median images/s after a warm-up, with a spread; structure only, never timing values."""

from __future__ import annotations

import csv

import pytest

import tokenkit as tk
from tokenkit.ablation import Timing, time_calls
from tokenkit.errors import ConfigError


def test_time_calls_warms_up_repeats_and_keeps_going_to_min_time():
    calls = []
    timing = time_calls(lambda: calls.append(1), warmup=3, repeats=4)
    assert len(calls) == 3 + 4 and len(timing.times) == 4 and timing.warmup == 3
    calls.clear()
    timing = time_calls(lambda: calls.append(1), warmup=0, repeats=2, min_time=0.02, max_repeats=10**6)
    assert sum(timing.times) >= 0.02 and len(timing.times) == len(calls) >= 2
    capped = time_calls(lambda: None, warmup=0, repeats=2, min_time=60.0, max_repeats=7)
    assert len(capped.times) == 7
    synced = []
    time_calls(lambda: None, warmup=1, repeats=2, sync=lambda: synced.append(1))
    assert len(synced) == 1 + 2  # once after the warm-up, once per timed call
    with pytest.raises(ConfigError, match="repeats >= 1"):
        time_calls(lambda: None, repeats=0)


def test_timing_statistics():
    t = Timing((0.4, 0.1, 0.2, 0.3, 5.0), warmup=1)
    assert t.median == pytest.approx(0.3)
    assert t.quartiles() == pytest.approx((0.2, 0.4))
    assert t.spread == pytest.approx(0.2 / 0.3)  # the 5.0 outlier moves neither the median nor the spread much
    assert t.rate(4) == pytest.approx(4 / 0.3)
    one = Timing((0.5,))
    assert one.spread == 0.0 and one.quartiles() == (0.5, 0.5)


def test_ablate_reports_median_and_spread_in_table_csv_and_plot(tmp_path):
    result = tk.ablate("titok-tiny", num_tokens=[4, 8], batch=2, repeats=3, warmup=1, min_time=0.0)
    assert result.timing == dict(batch=2, warmup=1, repeats=3, min_time=0.0, device="cpu",
                                 threads=result.timing["threads"])
    for row in result.rows:
        assert row.error is None
        assert row.encode_images_per_s > 0 and row.decode_images_per_s > 0
        assert row.encode_spread >= 0 and row.decode_spread >= 0
        assert row.timed_calls >= 3
    table = result.to_markdown()
    head = table.splitlines()[0]
    assert "| encode_images_per_s | encode_spread | decode_images_per_s | decode_spread | error |" in head
    assert table.splitlines()[2].count("%") == 2  # spreads shown in percent
    assert "note: timing: images/s = batch 2 / median call time of" in table
    assert "after 1 warm-up calls" in table

    result.to_csv(tmp_path / "a.csv")
    with open(tmp_path / "a.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"encode_spread", "decode_spread", "timed_calls"} <= set(rows[0])
    assert float(rows[0]["encode_spread"]) == pytest.approx(result.rows[0].encode_spread)
    assert int(rows[1]["timed_calls"]) == result.rows[1].timed_calls
    result.plot(tmp_path / "a.png")
    assert (tmp_path / "a.png").stat().st_size > 0


def test_ablate_min_time_adds_calls_and_bad_settings_raise():
    result = tk.ablate("titok-tiny", num_tokens=[4], batch=1, repeats=2, warmup=0, min_time=0.2)
    assert result.rows[0].timed_calls >= 2 and "at least 2 and 0.2 s per measurement" in result.to_markdown()
    for bad in (dict(repeats=0), dict(warmup=-1), dict(min_time=-1.0)):
        with pytest.raises(ConfigError, match="repeats >= 1"):
            tk.ablate("titok-tiny", num_tokens=[4], **bad)


def test_ablate_without_throughput_has_no_timing():
    result = tk.ablate("titok-tiny", num_tokens=[4], throughput=False)
    assert result.timing is None and result.timing_note() is None
    assert result.rows[0].encode_spread is None and result.rows[0].timed_calls is None
    assert "note" not in result.to_markdown()
