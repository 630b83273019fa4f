"""Server -> client messages of protocol/push.py."""

from __future__ import annotations

import orjson
import pytest

from tidings.protocol import push


@pytest.mark.parametrize(
    ("delay", "said"), [(0.0, 0.0), (0.0004, 0.0), (0.25, 0.25), (0.9996, 0.999), (29.9999, 29.999)]
)
def test_drain_says_its_delay_in_milliseconds_rounded_down(delay: float, said: float) -> None:
    # Rounded down, a delay drawn from [0, window) never reads as the window itself.
    assert orjson.loads(push.drain(delay)) == {"type": "drain", "reconnect_after": said}
