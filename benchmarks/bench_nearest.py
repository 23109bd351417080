"""Nearest-services query with 1k, 10k and 100k services, on SQLite and PostgreSQL.

Services are spread at random over a 60 km x 60 km area around Brescia (ten categories);
each query asks for the 5 nearest "meals" from a random point of the area. The measured
query is :func:`models.directory.nearest` (bounding box on the indexed latitude/longitude,
expanding, then exact haversine). The baseline, measured in the same run, is a full scan:
every service of the category loaded and sorted by haversine.

    python benchmarks/bench_nearest.py [--sizes 1000 10000 100000] [--postgres URL]

Without ``--postgres`` only SQLite runs (``TEST_DATABASE_URL`` is used if set). The
PostgreSQL database is emptied and rebuilt: give one made for benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select, text

from models.base import Base
from models.db import make_engine, make_sessionmaker
from models.directory import Category, Location, Service, haversine_m, nearest

CENTRE = (45.532408, 10.212783)
HALF_SIDE_DEG = (0.27, 0.385)  # about 30 km each way
CATEGORIES = [c.value for c in Category]
QUERIES = 200
SCAN_QUERIES = 5


def random_point(rng: random.Random) -> tuple[float, float]:
    return (
        CENTRE[0] + rng.uniform(-HALF_SIDE_DEG[0], HALF_SIDE_DEG[0]),
        CENTRE[1] + rng.uniform(-HALF_SIDE_DEG[1], HALF_SIDE_DEG[1]),
    )


async def fill(url: str, size: int) -> None:
    engine = make_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.run_sync(Base.metadata.create_all)
    rng = random.Random(size)
    locations: list[dict[str, Any]] = []
    services: list[dict[str, Any]] = []
    for n in range(1, size + 1):
        lat, lon = random_point(rng)
        locations.append(
            {"id": n, "key": f"l{n}", "name": f"L{n}", "address": f"A{n}", "area": "",
             "latitude": lat, "longitude": lon}
        )  # fmt: skip
        services.append(
            {"id": n, "key": f"s{n}", "location_id": n, "category": CATEGORIES[n % 10],
             "names": {"it": f"S{n}"}, "descriptions": {}, "eligibility": {},
             "application_process": {}, "notes": {}, "admits": "all",
             "referral_required": False, "documents_required": False, "fee": "free",
             "languages": "", "active": True}
        )  # fmt: skip
    async with engine.begin() as connection:
        for start in range(0, size, 5000):
            await connection.execute(insert(Location), locations[start : start + 5000])
            await connection.execute(insert(Service), services[start : start + 5000])
        if url.startswith("postgresql"):
            await connection.execute(text("ANALYZE"))
        else:
            await connection.execute(text("ANALYZE"))
    await engine.dispose()


async def full_scan(session: Any, lat: float, lon: float) -> list[str]:
    rows = (
        await session.execute(
            select(Service.key, Location.latitude, Location.longitude)
            .join(Location, Service.location_id == Location.id)
            .where(Service.category == "meals")
        )
    ).all()
    return [k for _d, k in sorted((haversine_m(lat, lon, a, b), k) for k, a, b in rows)[:5]]


async def measure(url: str, size: int) -> tuple[float, float]:
    await fill(url, size)
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    rng = random.Random(1)
    box_times, scan_times = [], []
    async with sessionmaker() as session:
        for n in range(QUERIES + 10):
            lat, lon = random_point(rng)
            started = time.perf_counter()
            found = await nearest(session, lat, lon, ["meals"], limit=5, max_distance_m=30_000)
            elapsed = time.perf_counter() - started
            session.expunge_all()
            if n >= 10:  # warm-up excluded
                box_times.append(elapsed)
            if n < SCAN_QUERIES:
                started = time.perf_counter()
                expected = await full_scan(session, lat, lon)
                scan_times.append(time.perf_counter() - started)
                assert [f.service.key for f in found] == expected[: len(found)]
    await engine.dispose()
    return statistics.median(box_times) * 1000, statistics.median(scan_times) * 1000


async def run(backends: dict[str, str], sizes: list[int]) -> None:
    print(f"{'backend':<11}{'services':>9}{'nearest ms':>12}{'full scan ms':>14}")
    for name, url in backends.items():
        first: float | None = None
        for size in sizes:
            box_ms, scan_ms = await measure(url, size)
            first = first or box_ms
            print(f"{name:<11}{size:>9}{box_ms:>12.2f}{scan_ms:>14.2f}")
        last = box_ms
        assert first is not None
        print(f"{name:<11}{'growth':>9}{last / first:>11.2f}x  (from {sizes[0]} to {sizes[-1]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL"))
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-nearest-"))
    backends = {"sqlite": f"sqlite+aiosqlite:///{folder / 'bench.db'}"}
    if args.postgres:
        backends["postgresql"] = args.postgres
    asyncio.run(run(backends, args.sizes))


if __name__ == "__main__":
    main()
