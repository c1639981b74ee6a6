"""One process's access control, whatever the door (HTTP, MLflow, Kafka commands): who a bearer
token is, whether they may do what a request needs, and the record of every refusal. The token
cache and the refusal recorder run for as long as the process serves."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from registrar.access.administration import AccessAdministration
from registrar.access.permissions import Requirement, Verdict, needs_ownership_check, verdict
from registrar.access.principal import Principal
from registrar.access.refusals import RefusalRecorder
from registrar.access.token_cache import TokenCache
from registrar.access.tokens import BadCredentials, credentials_from, token_hash
from registrar.contracts.events import AccessRefused
from registrar.registry import Registry

MAX_RECORDED_PATH = 1000


class NotAuthenticated(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AccessGuard:
    """One API process's access control: its token cache and its refusal recorder."""

    def __init__(self, refresh_seconds: float = 5.0) -> None:
        self.refresh_seconds = refresh_seconds
        self._running: tuple[TokenCache, RefusalRecorder, AccessAdministration] | None = None

    @contextlib.asynccontextmanager
    async def running(self, registry: Registry) -> AsyncIterator[None]:
        """Load the tokens, then keep them fresh and record refusals until the block ends."""
        cache = TokenCache(registry.engine, self.refresh_seconds)
        await cache.reload()
        recorder = RefusalRecorder(registry.store)
        self._running = (cache, recorder, AccessAdministration(registry.store))
        tasks = [
            asyncio.create_task(cache.run(), name="access-tokens"),
            asyncio.create_task(recorder.run(), name="access-refusals"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(Exception):
                await asyncio.wait_for(recorder.flush(), 5)
            self._running = None

    @property
    def cache(self) -> TokenCache:
        return self._parts()[0]

    @property
    def refusals(self) -> RefusalRecorder:
        return self._parts()[1]

    @property
    def administration(self) -> AccessAdministration:
        return self._parts()[2]

    def _parts(self) -> tuple[TokenCache, RefusalRecorder, AccessAdministration]:
        if self._running is None:
            raise RuntimeError("access control is not running (start the app's lifespan)")
        return self._running

    def authenticate(self, authorization: str | None) -> Principal:
        """The caller an Authorization value (bearer token, or basic auth with the token as
        password) stands for; NotAuthenticated says why there is none."""
        try:
            credentials = credentials_from(authorization)
        except BadCredentials as bad:
            raise NotAuthenticated(str(bad)) from None
        if credentials is None:
            raise NotAuthenticated(
                "no token: send 'Authorization: Bearer <token>' (MLFLOW_TRACKING_TOKEN)"
            )
        principal = self.cache.principal(token_hash(credentials.token))
        if principal is None:
            raise NotAuthenticated("the token is unknown or revoked")
        if credentials.claimed_user is not None and credentials.claimed_user != principal.user:
            raise NotAuthenticated(f"the token is not {credentials.claimed_user!r}'s")
        return principal

    async def authorize(self, principal: Principal, need: Requirement) -> Verdict:
        """Whether `principal` may do what `need` describes (owning its model, where that is
        enough, is looked up)."""
        owns = False
        if needs_ownership_check(principal.role, need) and need.model is not None:
            owns = await self.administration.owns(principal.user, need.model)
        return verdict(principal.user, principal.role, need, owns)

    def record_refusal(
        self, actor: str, need: Requirement, reason: str, method: str, path: str, status: int
    ) -> None:
        """Record a refusal as an event, off the request's path."""
        self.refusals.record(
            AccessRefused(
                actor=actor,
                action=need.action.value,
                reason=reason,
                method=method,
                path=path[:MAX_RECORDED_PATH],
                status=401 if status == 401 else 403,
                model=need.model or "",
            )
        )
