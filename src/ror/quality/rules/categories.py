"""FINESS category groups of docs/quality-rules.md §4 (JDV_J55 perimeter)."""

from __future__ import annotations

PRACTICES = frozenset({"SA05", "SA07", "SA08", "SA09"})
NOT_TRACKED = frozenset({"124"}) | PRACTICES
SANITAIRE = frozenset(
    [
        "101",
        "106",
        "109",
        "114",
        "122",
        "127",
        "128",
        "129",
        "131",
        "141",
        "146",
        "355",
        "362",
        "365",
        "696",
        "697",
        "698",
        "166",
        "638",
    ]
)
PSY = frozenset(["156", "161", "292", "366", "412", "415", "425", "430", "444"])
PA = frozenset(["202", "207", "381", "500", "501", "502"])
PH = frozenset(
    [
        "182",
        "183",
        "186",
        "188",
        "189",
        "190",
        "192",
        "194",
        "195",
        "196",
        "198",
        "221",
        "238",
        "246",
        "249",
        "252",
        "253",
        "255",
        "370",
        "377",
        "379",
        "382",
        "390",
        "395",
        "396",
        "402",
        "437",
        "445",
        "446",
        "448",
        "449",
    ]
)
DOMICILE = frozenset({"209", "354", "460"})
AUTRES_MS = frozenset(["178", "197", "228", "165", "180", "213", "231", "608"])
COORDINATION = frozenset({"604", "606"})
VILLE = frozenset({"603", "617", "618"})
MEDICO_SOCIAL = PA | PH | DOMICILE | AUTRES_MS
TRACKED = SANITAIRE | PSY | MEDICO_SOCIAL | COORDINATION | VILLE
