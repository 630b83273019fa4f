"""A command's answer is sent with exactly the headers the generic JSON response would send."""

from __future__ import annotations

import pytest

from tidings.app.routes.responses import JSON, VersionedJSON
from tidings.protocol.poll import version_headers


@pytest.mark.parametrize("status", [200, 201])
@pytest.mark.parametrize("version", [1, 42, 9_007_199_254_740_991])
def test_a_versioned_answer_is_the_generic_one_header_for_header(status: int, version: int) -> None:
    body = b'{"project":7,"version":%d}' % version
    fast = VersionedJSON(body, version, status_code=status)
    generic = JSON(body, status_code=status, headers=version_headers(version))
    assert fast.raw_headers == generic.raw_headers
    assert (fast.body, fast.status_code, fast.background) == (
        generic.body,
        generic.status_code,
        generic.background,
    )
