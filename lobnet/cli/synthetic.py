"""``lobnet-synthetic``: write a synthetic LOBSTER-format day (:mod:`lobnet.data.synthetic`).

lobnet-synthetic --levels 10 --events 1000000 --seed 0 --out data/synthetic
"""

from __future__ import annotations

import argparse
import datetime as dt

from lobnet.cli import reports_errors
from lobnet.data.errors import LobDataError
from lobnet.data.synthetic import SyntheticConfig, write_day


def main(argv: list[str] | None = None) -> None:
    reports_errors(_main)(argv)


def _main(argv: list[str] | None) -> None:
    """``lobnet-synthetic``: writes only the day's two files (each atomically), never replacing a folder."""
    ap = argparse.ArgumentParser(description="Write a synthetic LOBSTER-format day (message + orderbook pair).")
    ap.add_argument("--levels", type=int, default=SyntheticConfig.levels)
    ap.add_argument("--events", type=int, default=SyntheticConfig.events)
    ap.add_argument("--seed", type=int, default=SyntheticConfig.seed)
    ap.add_argument("--symbol", default=SyntheticConfig.symbol)
    ap.add_argument("--date", default=SyntheticConfig.date)
    ap.add_argument("--out", default="data/synthetic")
    a = ap.parse_args(argv)
    dt.date.fromisoformat(a.date)
    cfg = SyntheticConfig(levels=a.levels, events=a.events, seed=a.seed, symbol=a.symbol, date=a.date)
    try:
        path = write_day(cfg, a.out)
    except OSError as e:  # --out under a regular file, or not writable
        raise LobDataError(a.out, None, f"cannot write the day there ({e.strerror or e})") from None
    print(f"wrote {path} and its orderbook ({a.events} events, {a.levels} levels, seed {a.seed})")


if __name__ == "__main__":
    main()
