"""The simulated network: one-way latency drawn from a log-normal, and loss as delay.

Every connection in the model is TCP, so a lost segment is not lost data but a
retransmission: with probability ``loss`` a message waits one more ``rto``
(repeatedly, geometric). Latencies are drawn from the simulation's seeded RNG.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NetworkModel:
    #: Median one-way latency between a client and a server, seconds.
    median: float = 0.030
    #: Log-normal shape: p99 is median * exp(2.33 * sigma) (0.5: about 3.2x the median).
    sigma: float = 0.5
    #: Probability that a message needs a retransmission (each retry is drawn again).
    loss: float = 0.0
    #: Retransmission timeout added per loss (Linux' minimum RTO).
    rto: float = 0.2
    #: One-way latency inside the data centre (app or push server to Redis).
    internal: float = 0.0005

    def __post_init__(self) -> None:
        if not 0 <= self.loss < 1:
            raise ValueError("loss must be in [0, 1)")
        if self.median < 0 or self.sigma < 0 or self.rto < 0 or self.internal < 0:
            raise ValueError("latencies must be >= 0")


class Network:
    def __init__(self, model: NetworkModel, rng: random.Random) -> None:
        self.model = model
        self._rng = rng
        self._mu = math.log(model.median) if model.median > 0 else None

    def delay(self) -> float:
        """One client<->server message, one way."""
        m = self.model
        rng = self._rng
        if self._mu is None:
            d = 0.0
        elif m.sigma == 0:
            d = m.median
        else:
            # gauss() rather than lognormvariate(): the same law at half the cost.
            d = math.exp(self._mu + m.sigma * rng.gauss(0.0, 1.0))
        if m.loss:
            while rng.random() < m.loss:
                d += m.rto
        return d

    def round_trip(self) -> float:
        return self.delay() + self.delay()
