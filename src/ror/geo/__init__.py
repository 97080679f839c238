"""Reference geography: régions, départements, communes (INSEE COG) with centroids, and cached lookups."""

from ror.geo.service import (
    Commune,
    CommuneMatch,
    Departement,
    Geography,
    Region,
    departement_from_commune_code,
    normalise_place_name,
)

__all__ = [
    "Commune",
    "CommuneMatch",
    "Departement",
    "Geography",
    "Region",
    "departement_from_commune_code",
    "normalise_place_name",
]
