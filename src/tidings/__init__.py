"""tidings: push for an event-sourced, polling web app, with polling as the safety net."""

__version__ = "0.1.0"
