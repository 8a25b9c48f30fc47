"""A synthetic trading day written as a LOBSTER message + orderbook pair: lobnet's default data everywhere.

The order-flow model (one event at a time, on a one-cent price grid):

* **Limit orders** arrive on each side at a distance from that side's best quote drawn from a power law
  (most at the best, a thin tail deep in the book), or inside the spread when it is wider than one tick.
  Joining the best queue is *queue-reactive*: the longer the queue, the more likely the order goes one tick
  deeper instead (Huang, Lehalle & Rosenbaum's queue-reactive model: limit intensity falls with queue size).
* **Cancellations** pick a resting order uniformly, so a level's cancel intensity grows with its number of
  orders; some are partial (type 2), most full deletions (type 3).
* **Market orders** execute against the best opposite queue in time priority (one type-4 row per resting order
  touched, all at the same timestamp; a large one can sweep a second level). Their side depends on queue
  imbalance (aggressors hit the thinner queue more often) and on a latent informed flow.
* **Informed flow**: a persistent Ornstein-Uhlenbeck state tilts market orders towards one side and limit
  orders towards the same side's book, so order flow is autocorrelated and order-flow imbalance carries real
  information about the next mid-price moves (tested).
* A small share of executions hit hidden liquidity (type 5: no visible book change).

Like LOBSTER's own level-N files, only events that touch the N visible levels are written; deeper events still
change the full book the model keeps. Every file passes ``read_lobster(..., strict=True)``. Deterministic per
seed (Python's ``random.Random``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import random
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from .schema import DEFAULT_TICK, LOBSTER_DUMMY_ASK, LOBSTER_DUMMY_BID

OPEN_S, CLOSE_S = 34_200, 57_600


@dataclass
class SyntheticConfig:
    levels: int = 10  # visible levels written to the orderbook file
    events: int = 200_000  # rows written (visible events)
    seed: int = 0
    symbol: str = "SYN"
    date: str = "2012-06-21"
    start_price: int = 1_000_000  # $100.00 in dollars x 10000
    tick: int = DEFAULT_TICK
    depth: int = 0  # price levels the model keeps per side; 0 = levels + 10
    p_market: float = 0.06  # event-kind probabilities (the rest are limit orders)
    p_cancel: float = 0.40
    p_hidden: float = 0.05  # share of market orders that hit hidden liquidity
    informed: float = 0.35  # strength of the informed tilt on market-order side
    persistence: int = 400  # events: memory of the informed flow state
    queue_scale: float = 1500.0  # shares: best-queue size at which joining it becomes unlikely


def _lot(r: random.Random) -> int:
    u = r.random()
    if u < 0.08:
        return r.randint(1, 99)  # odd lot
    return 100 * (1, 1, 1, 2, 2, 3, 4, 5, 10)[int(u * 1000) % 9]


class _Book:
    """Full two-sided book: price -> deque of [order_id, size], plus total size per price."""

    def __init__(self, tick: int):
        self.tick = tick
        self.orders: tuple[dict[int, deque], dict[int, deque]] = ({}, {})  # 0 bid, 1 ask
        self.qty: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self.n_orders = [0, 0]
        self.best = [0, 0]

    def add(self, side: int, price: int, oid: int, size: int) -> None:
        lvl = self.orders[side].get(price)
        if lvl is None:
            lvl = self.orders[side][price] = deque()
            self.qty[side][price] = 0
            if side == 0 and price > self.best[0] or side == 1 and price < self.best[1]:
                self.best[side] = price
        lvl.append([oid, size])
        self.qty[side][price] += size
        self.n_orders[side] += 1

    def reduce(self, side: int, price: int, idx: int, size: int) -> None:
        lvl = self.orders[side][price]
        order = lvl[idx]
        order[1] -= size
        self.qty[side][price] -= size
        if order[1] == 0:
            del lvl[idx]
            self.n_orders[side] -= 1
            if not lvl:
                del self.orders[side][price]
                del self.qty[side][price]
                if price == self.best[side]:
                    self._rebest(side)

    def _rebest(self, side: int) -> None:
        prices = self.orders[side]
        if not prices:
            return
        step = -self.tick if side == 0 else self.tick
        p = self.best[side]
        for _ in range(64):
            p += step
            if p in prices:
                self.best[side] = p
                return
        self.best[side] = max(prices) if side == 0 else min(prices)

    def visible(self, side: int, n: int) -> list[int]:
        """The n best occupied prices on a side (fewer if the side is thin)."""
        out, prices = [], self.orders[side]
        p, step = self.best[side], (-self.tick if side == 0 else self.tick)
        for _ in range(40 * n + 64):
            if p in prices:
                out.append(p)
                if len(out) == n:
                    break
            p += step
        return out


def generate(cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """Run the model; returns (messages (M, 6) with time in ns, orderbook (M, 4*levels)) as int64 arrays."""
    r = random.Random(cfg.seed)
    L, tick = cfg.levels, cfg.tick
    K = cfg.depth or L + 10
    book = _Book(tick)
    oid = 10_000_000
    book.best = [cfg.start_price - tick, cfg.start_price + tick]
    for side, sgn in ((0, -1), (1, 1)):
        for i in range(K):
            for _ in range(r.randint(2, 6)):
                oid += 1
                book.add(side, book.best[side] + sgn * i * tick, oid, _lot(r))
    msgs = np.zeros((cfg.events, 6), dtype=np.int64)
    obs = np.zeros((cfg.events, 4 * L), dtype=np.int64)
    weights = [(i + 1) ** -0.9 for i in range(K)]
    cum = np.cumsum(weights).tolist()
    rho = 1.0 - 1.0 / cfg.persistence
    noise = (1.0 - rho * rho) ** 0.5
    z = 0.0
    t_ns = OPEN_S * 1_000_000_000
    dt_mean = 0.5 * (CLOSE_S - OPEN_S) / cfg.events * 1e9  # the generated day always fits in the session
    n = 0
    last_vis: list[list[int]] = [book.visible(0, L), book.visible(1, L)]

    def record(typ: int, order: int, size: int, price: int, direction: int) -> None:
        nonlocal n, last_vis
        side = 0 if direction == 1 else 1
        vis = last_vis[side]
        full = len(vis) == L
        beyond = full and (price < vis[-1] if side == 0 else price > vis[-1])
        if beyond and typ in (1, 2, 3, 4):
            return  # deeper than the visible levels: a level-L LOBSTER file does not hold it
        msgs[n] = (t_ns, typ, order, size, price, direction)
        row = obs[n]
        bids, asks = book.visible(0, L), book.visible(1, L)
        for m in range(L):
            if m < len(asks):
                row[4 * m], row[4 * m + 1] = asks[m], book.qty[1][asks[m]]
            else:
                row[4 * m], row[4 * m + 1] = LOBSTER_DUMMY_ASK, 0
            if m < len(bids):
                row[4 * m + 2], row[4 * m + 3] = bids[m], book.qty[0][bids[m]]
            else:
                row[4 * m + 2], row[4 * m + 3] = LOBSTER_DUMMY_BID, 0
        last_vis = [bids, asks]
        n += 1

    while n < cfg.events:
        t_ns += int(r.expovariate(1.0) * dt_mean) + 1
        if t_ns >= CLOSE_S * 1_000_000_000:
            break
        z = rho * z + noise * r.gauss(0.0, 1.0)
        pi = math.tanh(z)  # informed tilt in (-1, 1)
        qb, qa = book.qty[0].get(book.best[0], 0), book.qty[1].get(book.best[1], 0)
        u = r.random()
        # keep both sides deep enough that the visible levels never run dry
        for side in (0, 1):
            if len(book.orders[side]) < L + 2:
                far = book.visible(side, K + 5)
                price = (far[-1] if far else book.best[side]) + (-tick if side == 0 else tick)
                oid += 1
                book.add(side, price, oid, _lot(r))
                record(1, oid, book.orders[side][price][-1][1], price, 1 if side == 0 else -1)
        if n >= cfg.events:
            break
        if u < cfg.p_market:
            imb = (qb - qa) / (qb + qa) if qb + qa else 0.0
            buy = r.random() < 0.5 + 0.5 * cfg.informed * pi + 0.15 * imb
            side = 1 if buy else 0  # the side whose resting orders are executed
            direction = -1 if buy else 1
            price = book.best[side]
            if r.random() < cfg.p_hidden:
                record(5, 0, _lot(r), price, direction)
                continue
            size = _lot(r)
            if r.random() < 0.05:
                size = book.qty[side][price] + r.randint(1, 300)  # sweeps into the next level
            for _ in range(2):
                price = book.best[side]
                lvl = book.orders[side][price]
                while size > 0 and lvl and price in book.orders[side]:
                    o = lvl[0]
                    fill = min(size, o[1])
                    order_id = o[0]
                    book.reduce(side, price, 0, fill)
                    record(4, order_id, fill, price, direction)
                    size -= fill
                    if n >= cfg.events:
                        break
                if size <= 0 or n >= cfg.events or len(book.orders[side]) <= L + 2:
                    break
        elif u < cfg.p_market + cfg.p_cancel:
            side = 0 if r.random() < 0.5 - 0.2 * pi else 1
            if book.n_orders[side] <= 2 * (L + 2):
                continue
            # a uniformly chosen resting order among the K best levels: cancel intensity grows with queue count
            prices = book.visible(side, K)
            counts = [len(book.orders[side][p]) for p in prices]
            k = r.randrange(sum(counts))
            for p, c in zip(prices, counts, strict=True):
                if k < c:
                    break
                k -= c
            order = book.orders[side][p][k]
            partial = order[1] > 1 and r.random() < 0.3
            size = r.randint(1, order[1] - 1) if partial else order[1]
            order_id = order[0]
            book.reduce(side, p, k, size)
            record(2 if partial else 3, order_id, size, p, 1 if side == 0 else -1)
        else:
            side = 0 if r.random() < 0.5 + 0.25 * pi else 1
            sgn = -1 if side == 0 else 1
            spread_ticks = (book.best[1] - book.best[0]) // tick
            if spread_ticks > 1 and r.random() < 0.35:
                price = book.best[side] - sgn * tick  # improve the quote inside the spread
            else:
                i = _draw(r, cum)
                if i == 0 and r.random() > 1.0 / (1.0 + (qb if side == 0 else qa) / cfg.queue_scale):
                    i = 1  # queue-reactive: a long best queue pushes new orders one tick deeper
                price = book.best[side] + sgn * i * tick
            oid += 1
            size = _lot(r)
            book.add(side, price, oid, size)
            record(1, oid, size, price, 1 if side == 0 else -1)
        # drop orders left far from the touch (never visible): keeps the model's memory bounded
        if n % 4096 == 0:
            for side, sgn in ((0, -1), (1, 1)):
                vis = book.visible(side, L)
                limit = book.best[side] + sgn * 3 * K * tick
                for p in [p for p in book.orders[side] if (p - limit) * sgn > 0 and (not vis or (p - vis[-1]) * sgn > 0)]:
                    book.n_orders[side] -= len(book.orders[side][p])
                    del book.orders[side][p], book.qty[side][p]
    return msgs[:n], obs[:n]


def _draw(r: random.Random, cum: list[float]) -> int:
    x = r.random() * cum[-1]
    for i, c in enumerate(cum):
        if x < c:
            return i
    return len(cum) - 1


def lobster_names(cfg: SyntheticConfig) -> tuple[str, str]:
    base = f"{cfg.symbol}_{cfg.date}_{OPEN_S * 1000}_{CLOSE_S * 1000}"
    return f"{base}_message_{cfg.levels}.csv", f"{base}_orderbook_{cfg.levels}.csv"


def _write_atomic(df: pl.DataFrame, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        df.write_csv(tmp, include_header=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_day(cfg: SyntheticConfig, out_dir: str | Path) -> Path:
    """Generate a day and write its LOBSTER pair into ``out_dir``; returns the message file's path. Files are
    written under temporary names and renamed, so an interrupted run leaves no partial file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    msg_name, ob_name = lobster_names(cfg)
    msgs, obs = generate(cfg)
    t = msgs[:, 0]
    msg = pl.DataFrame(
        {
            "time": pl.Series(t // 1_000_000_000).cast(pl.Utf8) + "." + pl.Series(t % 1_000_000_000).cast(pl.Utf8).str.zfill(9),
            "type": msgs[:, 1], "order_id": msgs[:, 2], "size": msgs[:, 3], "price": msgs[:, 4], "direction": msgs[:, 5],
        }
    )
    book = pl.DataFrame(obs, schema=[f"c{i}" for i in range(obs.shape[1])], orient="row")
    _write_atomic(book, out / ob_name)  # orderbook first: a message file never exists without its partner
    _write_atomic(msg, out / msg_name)
    return out / msg_name


def ensure_day(cfg: SyntheticConfig, out_dir: str | Path) -> Path:
    """The message file for ``cfg`` in ``out_dir``, generated only if it is not there yet (deterministic)."""
    msg_name, ob_name = lobster_names(cfg)
    out = Path(out_dir)
    marker = out / f".{msg_name}.seed{cfg.seed}.events{cfg.events}"
    if (out / msg_name).exists() and (out / ob_name).exists() and marker.exists():
        return out / msg_name
    path = write_day(cfg, out)
    marker.touch()
    return path


def main(argv: list[str] | None = None) -> None:
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
    path = write_day(cfg, a.out)
    print(f"wrote {path} and its orderbook ({a.events} events, {a.levels} levels, seed {a.seed})")


if __name__ == "__main__":
    main()
