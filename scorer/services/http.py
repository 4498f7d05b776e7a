"""The one request loop of the service clients: a GET whose answer is JSON, waited out while the service says it
is busy. Each client keeps what is its own: pacing, the statuses that mean busy and how long to wait, and how a
refusal is put into words. (Covers go through :mod:`scorer.fetch`, whose aiohttp fetcher has its own retries;
spotipy's session takes urllib3's ``Retry``, see :mod:`scorer.services.spotify_client`.)"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from scorer.errors import ServiceError


@dataclass
class JsonGet:
    """How one service is asked: ``service`` names it in messages (``the Deezer API``), ``error`` is its
    :class:`~scorer.errors.ServiceError`; an answer in ``busy`` is retried ``retries`` times after ``wait(n,
    retry_after)`` seconds; ``before`` runs before every attempt (pacing); ``refused`` words any other non-200
    answer (the default names the status)."""

    service: str
    error: type[ServiceError]
    timeout: float
    busy: Collection[int] = ()
    retries: int = 0
    wait: Callable[[int, str | None], float] = lambda n, retry_after: 2.0 ** n
    sleep: Callable[[float], None] = field(default=lambda s: None)
    before: Callable[[], None] = lambda: None
    refused: Callable[[Any, str], ServiceError] | None = None

    def __call__(self, session: Any, base: str, path: str, params: dict[str, Any] | None = None
                 ) -> tuple[Any, int]:
        """``(the answer's JSON, how many busy answers were waited out)``, or the service's error."""
        import requests

        waits = 0
        while True:
            self.before()
            try:
                r = session.get(base + path, params=params, timeout=self.timeout)
            except requests.RequestException as e:
                raise self.error(f"could not reach {self.service} at {base}: {type(e).__name__}") from e
            if r.status_code in self.busy and waits < self.retries:
                waits += 1
                self.sleep(self.wait(waits, r.headers.get("Retry-After")))
                continue
            if r.status_code != 200:
                raise (self.refused(r, path) if self.refused
                       else self.error(f"{self.service} answered HTTP {r.status_code} for /{path}"))
            try:
                return r.json(), waits
            except ValueError as e:
                raise self.error(f"{self.service} answered /{path} with something that is not JSON") from e
