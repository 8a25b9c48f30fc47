"""A synthetic trading day written as a LOBSTER message + orderbook pair: lobnet's default data everywhere.

The order-flow model (one event at a time, on a one-cent price grid):

Events are drawn by their rates (Cont, Stoikov & Talreja 2010), so the book is stationary:

* **Limit orders** arrive at rate ``limit_rate``, at i = 1..K ticks from the *opposite* best quote with
  probability falling as a power of i: when the spread is wide many land inside it and move the mid.
  Joining the best queue is *queue-reactive*: the longer the queue, the more likely the order goes one tick
  deeper instead (Huang, Lehalle & Rosenbaum's queue-reactive model: limit intensity falls with queue size).
* **Cancellations** arrive at ``cancel_rate`` per resting order, so a level's cancel intensity grows with its
  number of orders; some are partial (type 2), most full deletions (type 3).
* **Market orders** execute against the best opposite queue in time priority (one type-4 row per resting order
  touched, all at the same timestamp; a large one can sweep a second level). Their side depends on queue
  imbalance (aggressors hit the thinner queue more often) and on a latent informed flow.
* **Informed flow**: traders who know a fundamental value V (a random walk) buy when the mid is below it and
  sell when above, plus a persistent Ornstein-Uhlenbeck component. Their tilt of market-order and limit-order
  sides makes order flow autocorrelated, so order-flow imbalance carries real information about the next
  mid-price moves (tested), while the price stays anchored to V.
* A small share of executions hit hidden liquidity (type 5: no visible book change).

Like LOBSTER's own level-N files, only events that touch the N visible levels are written; deeper events still
change the full book the model keeps. Every file passes ``read_lobster(..., strict=True)``. Deterministic per
seed (Python's ``random.Random``).
"""

from __future__ import annotations

import bisect
import math
import random
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from lobnet.data.schema import DEFAULT_TICK, LOBSTER_DUMMY_ASK, LOBSTER_DUMMY_BID
from lobnet.io import atomic_file

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
    depth: int = 40  # price levels (ticks) the model keeps per side
    limit_rate: float = 1.0  # limit orders per unit of model time (both sides)
    market_rate: float = 0.12  # market orders per unit of model time (both sides)
    cancel_rate: float = 0.03  # cancellations per resting order per unit of model time
    placement: float = 0.3  # limit orders at i ticks from the opposite best: weight i ** -placement
    p_hidden: float = 0.05  # share of market orders that hit hidden liquidity
    informed: float = 0.35  # strength of the informed tilt on market-order side
    persistence: int = 400  # events: memory of the informed flow's noise component
    value_vol: float = 0.1  # ticks per event: volatility of the fundamental value V
    mispricing: float = 30.0  # ticks of mid - V that make the informed tilt tanh(1)
    queue_scale: float = 600.0  # shares: best-queue size at which joining it becomes unlikely


def _lot(r: random.Random) -> int:
    u = r.random()
    if u < 0.08:
        return r.randint(1, 99)  # odd lot
    return 100 * (1, 1, 1, 2, 2, 3, 4, 5, 10)[int(u * 1000) % 9]


class _Book:
    """Full two-sided book: price -> deque of [order_id, size], total size per price, and the occupied prices
    of each side in ascending order (so the n best levels are a slice)."""

    def __init__(self, tick: int):
        self.tick = tick
        self.orders: tuple[dict[int, deque], dict[int, deque]] = ({}, {})  # 0 bid, 1 ask
        self.qty: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self.prices: tuple[list[int], list[int]] = ([], [])  # ascending; best bid last, best ask first
        self.n_orders = [0, 0]

    @property
    def best(self) -> tuple[int, int]:
        return self.prices[0][-1], self.prices[1][0]

    def add(self, side: int, price: int, oid: int, size: int) -> None:
        lvl = self.orders[side].get(price)
        if lvl is None:
            lvl = self.orders[side][price] = deque()
            self.qty[side][price] = 0
            bisect.insort(self.prices[side], price)
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
                self.drop_level(side, price)

    def drop_level(self, side: int, price: int) -> None:
        self.n_orders[side] -= len(self.orders[side][price])
        del self.orders[side][price], self.qty[side][price]
        ps = self.prices[side]
        del ps[bisect.bisect_left(ps, price)]

    def visible(self, side: int, n: int) -> list[int]:
        """The n best occupied prices on a side (fewer if the side is thin), best first."""
        ps = self.prices[side]
        return ps[: -n - 1 : -1] if side == 0 else ps[:n]


def generate(cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """Run the model; returns (messages (M, 6) with time in ns, orderbook (M, 4*levels)) as int64 arrays."""
    r = random.Random(cfg.seed)
    L, tick = cfg.levels, cfg.tick
    K = max(cfg.depth, L + 2)
    book = _Book(tick)
    oid = 10_000_000
    for side, sgn in ((0, -1), (1, 1)):
        for i in range(K):
            for _ in range(r.randint(1, 3)):
                oid += 1
                book.add(side, cfg.start_price + sgn * (i + 1) * tick, oid, _lot(r))
    msgs = np.zeros((cfg.events, 6), dtype=np.int64)
    obs = np.zeros((cfg.events, 4 * L), dtype=np.int64)
    weights = [(i + 1) ** -cfg.placement for i in range(K)]
    cum = np.cumsum(weights).tolist()
    rho = 1.0 - 1.0 / cfg.persistence
    noise = (1.0 - rho * rho) ** 0.5
    z = 0.0
    value = float(cfg.start_price)
    clock = 0.0  # model time: unit-rate exponential gaps between order arrivals
    times = np.zeros(cfg.events)
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
        msgs[n] = (0, typ, order, size, price, direction)
        times[n] = clock
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
        clock += r.expovariate(1.0)
        z = rho * z + noise * r.gauss(0.0, 1.0)
        value += cfg.value_vol * tick * r.gauss(0.0, 1.0)
        mid2 = book.prices[0][-1] + book.prices[1][0]
        pi = math.tanh((value - mid2 / 2) / (cfg.mispricing * tick) + 1.0 * z)  # informed tilt in (-1, 1)
        qb, qa = book.qty[0].get(book.best[0], 0), book.qty[1].get(book.best[1], 0)
        u = r.random()
        # keep both sides deep enough that the visible levels never run dry
        for side in (0, 1):
            if len(book.orders[side]) < L + 2:
                price = book.visible(side, K + 5)[-1] + (-tick if side == 0 else tick)
                oid += 1
                book.add(side, price, oid, _lot(r))
                record(1, oid, book.orders[side][price][-1][1], price, 1 if side == 0 else -1)
        if n >= cfg.events:
            break
        rate_c = cfg.cancel_rate * (book.n_orders[0] + book.n_orders[1])
        u *= cfg.limit_rate + cfg.market_rate + rate_c
        if u < cfg.market_rate:
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
                while size > 0 and price in book.orders[side]:
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
        elif u < cfg.market_rate + rate_c:
            side = 0 if r.random() < 0.5 - 0.2 * pi else 1
            if book.n_orders[side] <= L + 2:
                continue
            # a uniformly chosen resting order among the K best levels: cancel intensity grows with queue count
            prices = book.visible(side, K)
            counts = [len(book.orders[side][p]) for p in prices]
            k = r.randrange(sum(counts))
            j = 0
            while k >= counts[j]:
                k -= counts[j]
                j += 1
            p = prices[j]
            order = book.orders[side][p][k]
            partial = order[1] > 1 and r.random() < 0.05
            size = r.randint(1, order[1] - 1) if partial else order[1]
            order_id = order[0]
            book.reduce(side, p, k, size)
            record(2 if partial else 3, order_id, size, p, 1 if side == 0 else -1)
        else:
            side = 0 if r.random() < 0.5 + 0.25 * pi else 1
            sgn = -1 if side == 0 else 1
            # i + 1 ticks from the opposite best, never crossing it; inside the spread when it is wide
            price = book.best[1 - side] + sgn * (_draw(r, cum) + 1) * tick
            if price == book.best[side] and r.random() > 1.0 / (1.0 + (qb if side == 0 else qa) / cfg.queue_scale):
                price += sgn * tick  # queue-reactive: a long best queue pushes new orders one tick deeper
            oid += 1
            size = _lot(r)
            book.add(side, price, oid, size)
            record(1, oid, size, price, 1 if side == 0 else -1)
        # drop orders left far from the touch (never visible): keeps the model's memory bounded
        if n % 4096 == 0:
            for side, sgn in ((0, -1), (1, 1)):
                vis = book.visible(side, L)
                limit = book.best[side] + sgn * 3 * K * tick
                for p in [p for p in book.prices[side] if (p - limit) * sgn > 0 and (p - vis[-1]) * sgn > 0]:
                    book.drop_level(side, p)
    # map model time onto the session (09:30 to 15:59), keeping ties: the fills of one market order share a time
    span = (CLOSE_S - OPEN_S - 60) * 1e9
    msgs[:n, 0] = OPEN_S * 1_000_000_000 + (times[:n] - times[0]) * (span / max(times[n - 1] - times[0], 1e-9))
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


def _write_csv(df: pl.DataFrame, path: Path) -> None:
    with atomic_file(path) as tmp:
        df.write_csv(tmp, include_header=False)


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
            "time": pl.Series(t // 1_000_000_000).cast(pl.Utf8)
            + "."
            + pl.Series(t % 1_000_000_000).cast(pl.Utf8).str.zfill(9),
            "type": msgs[:, 1],
            "order_id": msgs[:, 2],
            "size": msgs[:, 3],
            "price": msgs[:, 4],
            "direction": msgs[:, 5],
        }
    )
    book = pl.DataFrame(obs, schema=[f"c{i}" for i in range(obs.shape[1])], orient="row")
    _write_csv(book, out / ob_name)  # orderbook first: a message file never exists without its partner
    _write_csv(msg, out / msg_name)
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


GENERATOR_VERSION = 1  # bump when the model changes, so cached synthetic days are regenerated


def load_day(
    levels: int = 10,
    events: int = 200_000,
    seed: int = 0,
    symbol: str = "SYN",
    date: str = "2012-06-21",
    dir: str = ".lobnet_cache/synthetic",
    strict: bool = True,
):
    """The synthetic day as an events table: generated into ``dir`` once (deterministic per seed), then read
    back through the LOBSTER reader like any real file."""
    from lobnet.data.lobster import read_lobster

    cfg = SyntheticConfig(levels=levels, events=events, seed=seed, symbol=symbol, date=date)
    return read_lobster(ensure_day(cfg, Path(dir) / f"v{GENERATOR_VERSION}"), strict=strict)
