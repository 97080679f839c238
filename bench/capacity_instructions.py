"""Instructions per capacity write, counted by valgrind (callgrind): a figure that does not move with the machine.

The throughput of `bench_capacity.py` moved by 2x within an hour on the same code on these shared machines (CPU
steal, other tenants); an instruction count is repeatable to ~1 %. Each variant runs the ASGI app in process
(httpx's ASGI transport: the HTTP client's own instructions are included, the same for every variant; PostgreSQL's
are not) on the database of `bench_capacity.py`: 20 warm-up requests, then callgrind counts `--requests` single
PATCHes and `--bundles` Bundles of 50 PATCH entries on 64 units ("own units", as a feeder's software sends them).
`--baseline SRC` runs another checkout's `src` side by side (e.g. `git worktree add /tmp/base <commit>`).

    .venv/bin/python bench/bench_capacity.py --backend postgresql --seconds 1   # once: the database
    .venv/bin/python bench/capacity_instructions.py [--baseline /tmp/base/src] [--requests 60] [--bundles 6]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/ror_bench_capacity"
SECRET = "bench-capacity-secret-key-0123456789-abcdefghijklmnop"


def _callgrind(on: bool) -> None:
    subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(os.getpid())], capture_output=True)


async def _child(mode: str, n: int, url: str) -> None:
    """Run inside valgrind: warm up, then count `n` requests of `mode` (single | bundle)."""
    # httpx's ASGITransport tries `import sniffio` on every request (not installed: a failed import searches
    # sys.path each time, ~0.3 M instructions of the client's); None in sys.modules makes it fail at once
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]
    import httpx
    import orjson

    import bench_capacity as bc
    from ror.server import create_app

    units, client_id, secret = bc.units_and_client(url)
    app = create_app()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            token = await client.post(
                "/oauth/token",
                data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
            )
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            headers["Content-Type"] = "application/fhir+json"
            rnd, counter = random.Random(1), itertools.count(50_000_000)

            async def one() -> None:
                u = rnd.choice(units)
                body = orjson.dumps(bc.patch_body(u, next(counter)))
                r = await client.patch(f"/fhir/Location/{u.location_id}", content=body, headers=headers)
                assert r.status_code == 200, r.text

            async def bundle() -> None:
                entries: list[dict[str, Any]] = [
                    {
                        "request": {"method": "PATCH", "url": f"Location/{u.location_id}"},
                        "resource": bc.patch_body(u, next(counter)),
                    }
                    for u in rnd.sample(units[:64], 50)
                ]
                body = orjson.dumps({"resourceType": "Bundle", "type": "batch", "entry": entries})
                r = await client.post("/fhir", content=body, headers=headers)
                assert r.status_code == 200, r.text

            request = one if mode == "single" else bundle
            for _ in range(20):
                await request()
            _callgrind(True)
            for _ in range(n):
                await request()
            _callgrind(False)


def count(mode: str, n: int, url: str, src: str | None) -> int:
    """Instructions of `n` requests of `mode`, the code of `src` (None: this checkout)."""
    env = {**os.environ, "ROR_DATABASE_URL": url, "ROR_SECRET_KEY": SECRET, "ROR_WRITE_RATE": "1000000/60"}
    if src:
        env["PYTHONPATH"] = src
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=/dev/null"]
    cmd += [sys.executable, __file__, "--child", mode, "--n", str(n), "--database", url]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or not found:
        raise RuntimeError(f"callgrind run failed: {done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database", default=DATABASE)
    ap.add_argument("--baseline", help="another checkout's src directory, measured side by side")
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--bundles", type=int, default=6)
    ap.add_argument("--child", choices=("single", "bundle"), help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        asyncio.run(_child(args.child, args.n, args.database))
        return
    from common import write_result

    variants = ([("baseline", args.baseline)] if args.baseline else []) + [("this checkout", None)]
    results: dict[str, dict[str, float]] = {}
    for name, src in variants:
        single = count("single", args.requests, args.database, src) / args.requests
        entry = count("bundle", args.bundles, args.database, src) / (args.bundles * 50)
        results[name] = {"per_patch_M": round(single / 1e6, 2), "per_bundle_entry_M": round(entry / 1e6, 2)}
        print(f"{name:14} {single / 1e6:6.2f} M instructions per PATCH, {entry / 1e6:6.2f} M per Bundle entry")
    if args.baseline:
        base, now = results["baseline"], results["this checkout"]
        print(
            f"ratio          {now['per_patch_M'] / base['per_patch_M']:.2f} per PATCH, "
            f"{now['per_bundle_entry_M'] / base['per_bundle_entry_M']:.2f} per Bundle entry"
        )
    write_result("capacity_instructions", {"args": vars(args), "results": results})


if __name__ == "__main__":
    main()
