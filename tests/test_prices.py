"""Every GPU price carries a date, a kind and a source, or the file says why there is none."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kvcalc.calc.serving.pricing import no_price_message, price_for
from kvcalc.sources.hardware import find_gpu, hardware_dirs, list_gpus


def test_every_price_is_dated_sourced_and_kinded() -> None:
    priced = 0
    for gpu in list_gpus():
        if gpu.price is None:
            continue
        priced += 1
        assert gpu.price.date >= "2025", f"{gpu.key}: price from {gpu.price.date} is stale"
        assert gpu.price.kind in ("on-demand", "serverless", "marketplace", "market-survey")
        assert "http" in gpu.price.source, f"{gpu.key}: the source names no page"
        assert 0.05 < gpu.price.usd_per_gpu_hour < 50
    assert priced >= 18


def test_a_missing_price_states_its_reason_in_the_file() -> None:
    for path in sorted(hardware_dirs()[0].glob("*.yaml")):
        line = next(x for x in path.read_text().splitlines() if x.startswith("price:"))
        if line.startswith("price: null"):
            assert re.match(r"price: null  # \S.{10,}", line), f"{path.name}: say why there is no price"


def test_override_wins_over_the_catalogue() -> None:
    h100 = find_gpu("h100")
    assert h100.price is not None
    used = price_for(h100, {"h100-sxm": 2.49})
    assert used is not None and (used.usd_per_gpu_hour, used.origin) == (2.49, "override")
    catalogue = price_for(h100, {})
    assert catalogue is not None and catalogue.origin == "catalogue"
    assert catalogue.usd_per_gpu_hour == h100.price.usd_per_gpu_hour and catalogue.date == h100.price.date
    assert "2026" in catalogue.describe()


def test_no_price_is_none_and_says_how_to_give_one() -> None:
    gpu = find_gpu("m4-max-128")
    assert price_for(gpu, {}) is None
    assert "--price m4-max-128=" in no_price_message(gpu)


@pytest.mark.parametrize("key", ["h100-sxm", "h200", "a100-80gb", "l40s", "mi300x", "b200"])
def test_the_usual_plan_catalogue_is_priced(key: str) -> None:
    assert find_gpu(key).price is not None


def test_the_loader_rejects_an_unknown_price_kind(tmp_path: Path) -> None:
    from kvcalc.errors import InputError
    from kvcalc.sources.hardware import load_gpu_file

    text = (hardware_dirs()[0] / "h100-sxm.yaml").read_text()
    assert "  kind: on-demand\n" in text
    bad = tmp_path / "h100-sxm.yaml"
    bad.write_text(text.replace("  kind: on-demand\n", "  kind: spot\n"))
    with pytest.raises(InputError, match=r"price\.kind"):
        load_gpu_file(bad)
