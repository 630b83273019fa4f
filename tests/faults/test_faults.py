"""Every fault of the scenario, injected into a real topology, with every assertion.

The short version of ``bench/faults.py``: fewer clients and shorter faults, the
same code and the same verdicts (tidings/testing/faults/observe.py). The run is one
test because the faults follow each other on one running system, as in
production; a failure message lists every broken promise at once, and the
per-fault table is printed (pytest -s shows it).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import orjson
import pytest

from tests.support import unavailable
from tidings.testing.faults.observe import judge, table
from tidings.testing.faults.run import Config, Run


@pytest.mark.timeout(480)
def test_every_fault_costs_no_update_no_error_and_recovers_to_push(
    postgres_admin_url: str, tmp_path: Path
) -> None:
    missing = [t for t in ("haproxy", "redis-server") if shutil.which(t) is None]
    if missing:
        unavailable(f"{missing} not installed (./dev test installs them)")
    run = Run(Config(), tmp_path, postgres_admin_url)
    try:
        # Limits against a hang: starting ~10 processes and 120 clients takes ~30 s on
        # an idle 2-core machine and has taken 117 s on a loaded one; the faults
        # themselves take ~110 s.
        result = asyncio.run(run.run(start_within=180.0, finish_within=240.0))
    finally:
        run.close()
    (tmp_path / "faults.json").write_bytes(orjson.dumps(result))  # kept for a failure's analysis
    rows, failures, summary = judge(result)
    print("\n" + table(rows))
    print(summary)
    assert len(rows) == 9, [r.fault for r in rows]
    assert summary["writes"] > 50
    assert not failures, "\n".join(failures)
