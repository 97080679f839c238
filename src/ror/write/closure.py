"""DELETE as closure: an offer (HealthcareService) or a place (Location) is closed, never erased (the IG's
`notAvailable` slice `closingReopeningDate`, and `operationalStatus` TRE_R203 "1 Fermé définitivement")."""

from __future__ import annotations

from datetime import date
from typing import Any

from ror.directory.ids import TRE_R203

CLOSING_ID = "closingReopeningDate"
CLOSED_TYPES = ("HealthcareService", "Location")


def close(res: dict[str, Any], on: date, reopening: date | None = None) -> dict[str, Any]:
    out = dict(res)
    if res["resourceType"] == "HealthcareService":
        during: dict[str, str] = {"start": on.isoformat()}
        if reopening is not None:
            during["end"] = reopening.isoformat()
        slice_ = {
            "id": CLOSING_ID,
            "description": "Période de fermeture et de réouverture prévisionnelle",
            "during": during,
        }
        others = [n for n in res.get("notAvailable") or [] if n.get("id") != CLOSING_ID]
        out["notAvailable"] = [*others, slice_]
    else:
        out["operationalStatus"] = {"system": TRE_R203, "code": "1", "display": "Fermé définitivement"}
        out["status"] = "inactive"
    return out


def reopen(res: dict[str, Any]) -> dict[str, Any]:
    out = dict(res)
    if res["resourceType"] == "HealthcareService":
        kept = [n for n in res.get("notAvailable") or [] if n.get("id") != CLOSING_ID]
        if kept:
            out["notAvailable"] = kept
        else:
            out.pop("notAvailable", None)
    else:
        out["operationalStatus"] = {"system": TRE_R203, "code": "3", "display": "Opérationnel"}
        out["status"] = "active"
    return out


def is_closed(res: dict[str, Any]) -> bool:
    if res.get("resourceType") == "HealthcareService":
        return any(n.get("id") == CLOSING_ID for n in res.get("notAvailable") or [])
    return (res.get("operationalStatus") or {}).get("code") == "1"
