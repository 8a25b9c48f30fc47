"""Shared fixtures. Real market data is found through LOBNET_DATA_DIR (default: ../shared/data beside the
repository). When it is absent, real-data tests skip with the reason, unless LOBNET_REQUIRE_DATA=1 (CI), where
they fail instead."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("LOBNET_DATA_DIR", REPO.parent / "shared" / "data"))
REQUIRE = os.environ.get("LOBNET_REQUIRE_DATA") == "1"

LOBSTER = DATA_DIR / "lobster"
AMZN5 = LOBSTER / "AMZN_2012-06-21_34200000_57600000_message_5.csv"
AMZN1 = LOBSTER / "AMZN_2012-06-21_34200000_57600000_message_1.csv"
AAPL1 = LOBSTER / "AAPL_2012-06-21_34200000_57600000_message_1.csv"
AAPL10 = LOBSTER / "AAPL_head10" / "AAPL_2012-06-21_34200000_57600000_message_10.csv"
TSLA10 = LOBSTER / "TSLA_sample10" / "TSLA_2015-01-07_34200000_57600000_message_10_SAMPLE.csv"
LOBSTER_FILES = [AMZN5, AMZN1, AAPL1, AAPL10, TSLA10]
QUOTES = DATA_DIR / "quotes"
AIG = QUOTES / "aig"
BAC = QUOTES / "bac"


def need(path: Path) -> Path:
    """The path, or skip (fail under LOBNET_REQUIRE_DATA=1) when the real data is not there."""
    if not path.exists():
        msg = f"real market data not found: {path} (set LOBNET_DATA_DIR to the shared data folder)"
        if REQUIRE:
            pytest.fail(msg + "; LOBNET_REQUIRE_DATA=1 makes this an error")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def amzn5():
    from lobnet.data import read_lobster

    return read_lobster(need(AMZN5), strict=True)


@pytest.fixture(scope="session")
def aig():
    from lobnet.data import read_quotes

    return read_quotes(need(AIG))


@pytest.fixture(scope="session")
def synthetic_day(tmp_path_factory):
    """A small synthetic level-10 day (message file path), shared by the session."""
    from lobnet.data.synthetic import SyntheticConfig, write_day

    return write_day(SyntheticConfig(levels=10, events=20_000, seed=7), tmp_path_factory.mktemp("syn"))


@pytest.fixture(scope="session")
def synthetic_events(synthetic_day):
    from lobnet.data import read_lobster

    return read_lobster(synthetic_day, strict=True)


@pytest.fixture(scope="session")
def real_export(tmp_path_factory):
    """``real_export(name)``: (its folder, checkpoint, export report) of architecture ``name`` trained for one short
    epoch on the real AMZN level-5 day (:func:`tests.test_export.train_real`) and exported, with the step for 3
    symbols per call, into ``<folder>/export``. Built once per session: the export tests check it, the streaming
    tests replay it (on copies, where they damage it)."""
    cache = {}

    def get(name: str):
        if name not in cache:
            from lobnet.live.export import export_checkpoint

            from .test_export import train_real

            tmp = tmp_path_factory.mktemp(f"real_{name}")
            ckpt = train_real(tmp, name)
            cache[name] = (tmp, ckpt, export_checkpoint(ckpt, tmp / "export", step_batches=(3,)))
        return cache[name]

    return get
