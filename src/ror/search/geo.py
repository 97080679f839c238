"""Great-circle distance, in Python and as SQL (SQLite gets a registered function; PostgreSQL an expression)."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import func, literal

EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1: float | None, lon1: float | None, lat2: float | None, lon2: float | None) -> float | None:
    if lat1 is None or lon1 is None or lat2 is None or lon2 is None:
        return None
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def register_sqlite_functions(dbapi_connection: Any) -> None:
    dbapi_connection.create_function("ror_distance_km", 4, haversine_km, deterministic=True)


def distance_sql(lat: float, lon: float, col_lat: Any, col_lon: Any, sqlite: bool) -> Any:
    if sqlite:
        return func.ror_distance_km(literal(lat), literal(lon), col_lat, col_lon)
    p1 = func.radians(literal(lat))
    p2 = func.radians(col_lat)
    a = func.power(func.sin((p2 - p1) / 2), 2) + func.cos(p1) * func.cos(p2) * func.power(
        func.sin(func.radians(col_lon - literal(lon)) / 2), 2
    )
    return 2 * EARTH_RADIUS_KM * func.asin(func.least(1.0, func.sqrt(a)))


def bounding_box(lat: float, lon: float, km: float) -> tuple[float, float, float, float]:
    """(min_lat, max_lat, min_lon, max_lon) enclosing the circle — the index-friendly prefilter."""
    dlat = km / 111.0
    coslat = max(math.cos(math.radians(lat)), 0.01)
    dlon = km / (111.320 * coslat)
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon
