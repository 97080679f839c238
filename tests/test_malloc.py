"""ror.malloc: freed memory kept for reuse (fewer page faults per request), an operator's setting respected."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt (Linux)")

# the allocation pattern of a search request: ~200 stored contents of a few KB read by a pool thread, then freed
PROBE = """
import resource, sys
from concurrent.futures import ThreadPoolExecutor
from ror.malloc import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "apply" else False
def request():
    contents = [bytes(7000) for _ in range(200)]
    return len(contents)
pool = ThreadPoolExecutor(1)
for _ in range(3):
    pool.submit(request).result()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    pool.submit(request).result()
print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def _probe(mode: str, env: dict[str, str] | None = None) -> tuple[bool, float]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    ).stdout.split()
    return out[0] == "True", float(out[1])


def test_freed_memory_is_reused_without_page_faults() -> None:
    _, faults_default = _probe("default")
    applied, faults_kept = _probe("apply")
    assert applied
    # glibc's defaults give the ~1.4 MB back after each "request" and fault it in again (~100 faults)
    assert faults_default > 50
    assert faults_kept < 10


def test_an_operators_malloc_setting_wins() -> None:
    applied, _ = _probe("apply", {"MALLOC_TRIM_THRESHOLD_": "131072"})
    assert not applied
