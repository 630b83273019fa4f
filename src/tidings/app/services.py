"""Everything a request handler needs, built once per app and passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request

from tidings.app.auth import Authenticator
from tidings.app.fleet import PushFleet
from tidings.app.metrics import Metrics
from tidings.app.passwords import PasswordPool
from tidings.app.publisher import PokePublisher
from tidings.app.ratelimit import SignInLimiter, TelemetryLimiter
from tidings.app.settings import AppSettings
from tidings.app.sweeper import Sweeper
from tidings.app.versions import MembershipCache, VersionCache
from tidings.broker.base import Publisher
from tidings.publish.advice import Advice, Cadence, PushFlags, advise
from tidings.store.accounts import Accounts
from tidings.store.engine import Engines
from tidings.store.events import EventStore
from tidings.store.flags import FlagCache, FlagStore

if TYPE_CHECKING:
    from tidings.app.polling import Poller


@dataclass
class Services:
    settings: AppSettings
    engines: Engines
    store: EventStore
    accounts: Accounts
    auth: Authenticator
    flags: FlagStore
    flag_cache: FlagCache
    versions: VersionCache
    members: MembershipCache
    broker: Publisher
    pokes: PokePublisher
    sweeper: Sweeper
    metrics: Metrics
    signin_limiter: SignInLimiter
    passwords: PasswordPool
    telemetry_limiter: TelemetryLimiter | None
    fleet: PushFleet
    poller: Poller = field(init=False)

    def advice(self, flags: PushFlags, user_id: int, project_id: int | None = None) -> Advice:
        s = self.settings
        cadence = Cadence(s.poll_interval_push, s.poll_interval, s.poll_jitter)
        return advise(flags, user_id, project_id, cadence)


async def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found
