"""The app's metrics: every error series is exported from the start, at zero."""

from __future__ import annotations

from tidings.app.metrics import Metrics


def test_error_series_exist_at_zero_before_any_error() -> None:
    text = Metrics().render().decode()
    for line in (
        'tidings_broker_errors_total{op="get_version"} 0.0',
        'tidings_broker_errors_total{op="set_version"} 0.0',
        'tidings_sweeper_errors_total{op="store"} 0.0',
        'tidings_sweeper_errors_total{op="get_versions"} 0.0',
        'tidings_sweeper_errors_total{op="heal"} 0.0',
        'tidings_revocations_total{outcome="failed"} 0.0',
    ):
        assert line in text, line
