"""Resolution of the code-system names people and the IG examples write (`R211`, `R66-CategorieEtablissement`,
`R13-CommuneOM`, `TRE_R30-RegionOM`, full URLs) into canonical NOS URLs."""

from __future__ import annotations

import re
from collections.abc import Callable

from ror.errors import InvalidRequest

_NAMED = re.compile(r"^(?:TRE[_-])?(?P<id>[RG]\d+)-(?P<name>[A-Za-z0-9]+)$")


def make_system_resolver(lookup: Callable[[str], str] | None) -> Callable[[str], str]:
    """`lookup` is the terminology's resolver (knows every loaded code system); names with their label part
    (`R13-CommuneOM`) resolve by the NOS URL pattern even when that system is not loaded (communes)."""

    def resolve(ref: str) -> str:
        if "://" in ref or ref.startswith("urn:"):
            return ref
        if lookup is not None:
            try:
                return lookup(ref)
            except Exception:
                pass
        m = _NAMED.match(ref)
        if m:
            tre = f"TRE_{m['id']}-{m['name']}"
            return f"https://mos.esante.gouv.fr/NOS/{tre}/FHIR/TRE-{m['id']}-{m['name']}"
        raise InvalidRequest(
            f"unknown code system {ref!r}: give its URL or a NOS name such as R211 or R66-CategorieEtablissement"
        )

    return resolve
