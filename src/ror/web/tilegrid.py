"""The tile-grid map of France: one square per département at a fixed (column, row) position, kept in
`data/tilegrid.json` (we hold no département geometry). The positions were computed once by `build_grid` from the
population-weighted centroids of the communes (INSEE COG), each département taking the free cell nearest to its
projected centroid (largest populations first); overseas départements sit on the bottom row. Regenerate with
`python -m ror.web.tilegrid <database url>` after a change of the COG."""

from __future__ import annotations

import json
import math
import sys
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).parent / "data" / "tilegrid.json"
COLS, ROWS = 14, 13  # metropolitan grid; overseas départements go on row ROWS + 1
OVERSEAS = ("971", "972", "973", "974", "976")


@lru_cache(maxsize=1)
def grid() -> dict[str, tuple[int, int]]:
    """Département code -> (column, row)."""
    raw = json.loads(DATA.read_text(encoding="utf-8"))
    return {code: (int(pos[0]), int(pos[1])) for code, pos in raw["positions"].items()}


def build_grid(centroids: dict[str, tuple[float, float, float]]) -> dict[str, tuple[int, int]]:
    """(lat, lon, population) per metropolitan département -> a grid cell each, close to its geography."""
    metro = {k: v for k, v in centroids.items() if k not in OVERSEAS}
    lats = [v[0] for v in metro.values()]
    lons = [v[1] for v in metro.values()]
    # longitude degrees are shorter than latitude ones at 46.5°N
    kx = math.cos(math.radians(46.5))
    width, height = (max(lons) - min(lons)) * kx, max(lats) - min(lats)
    taken: dict[tuple[int, int], str] = {}
    out: dict[str, tuple[int, int]] = {}
    for code, (lat, lon, _pop) in sorted(metro.items(), key=lambda kv: -kv[1][2]):
        x = (lon - min(lons)) * kx / width * (COLS - 1)
        y = (max(lats) - lat) / height * (ROWS - 1)
        cells = sorted(
            ((c, r) for c in range(COLS) for r in range(ROWS) if (c, r) not in taken),
            key=lambda cell: (cell[0] - x) ** 2 + (cell[1] - y) ** 2,
        )
        taken[cells[0]] = code
        out[code] = cells[0]
    for i, code in enumerate(OVERSEAS):
        out[code] = (i, ROWS + 1)
    return out


def main(url: str) -> None:
    from sqlalchemy import func, select

    from ror.db.engine import make_engine
    from ror.db.tables import geo_commune as g

    engine = make_engine(url)
    pop = func.coalesce(g.c.population, 1)
    with engine.connect() as c:
        rows = c.execute(
            select(
                g.c.departement,
                func.sum(g.c.lat * pop) / func.sum(pop),
                func.sum(g.c.lon * pop) / func.sum(pop),
                func.sum(pop),
            )
            .where(g.c.type == "commune-actuelle", g.c.lat.is_not(None))
            .group_by(g.c.departement)
        ).all()
    centroids = {r[0]: (float(r[1]), float(r[2]), float(r[3])) for r in rows if r[0]}
    positions = build_grid(centroids)
    DATA.write_text(
        json.dumps(
            {
                "about": "tile-grid cartogram of the départements: code -> [column, row]; see ror/web/tilegrid.py",
                "columns": COLS,
                "rows": ROWS + 2,
                "positions": {k: list(v) for k, v in sorted(positions.items())},
            },
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main(sys.argv[1])
