"""The tidings client: a sans-I/O sync controller (``controller``) and the asyncio
driver that carries out its actions (``driver.SyncClient``); ``watch`` is the CLI."""
