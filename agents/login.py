"""Agent login against the identity provider (lab.deps.idp).

Policy (what the agents service does with it):
- An agent logs in before it registers. One that cannot log in retries every `retry_s` seconds
  and does NOT register until a login succeeds.
- Once logged in an agent stays registered and keeps answering even if the IdP goes away later:
  login happens only at start and when the token is due for renewal (`relogin_delay`); a failed
  renewal is retried but never takes the agent out of service.
- Every attempt appends an `agent_login` event {agent, region, ok, latency_ms, error, relogin}.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from core import events

log = logging.getLogger("agents.login")

DEFAULT_TIMEOUT_S = 3.0
DEFAULT_RETRY_S = 3.0


@dataclass(frozen=True)
class LoginResult:
    ok: bool
    latency_ms: float
    error: str | None = None
    token: str | None = None
    expires_in: float | None = None


async def login(
    session: aiohttp.ClientSession, idp_url: str, agent: str, secret: str, timeout: float = DEFAULT_TIMEOUT_S
) -> LoginResult:
    """One login attempt: POST {idp_url}/v1/login. Never raises (except on cancellation)."""
    t0 = time.monotonic()

    def done(error: str | None = None, token: str | None = None, expires_in: float | None = None) -> LoginResult:
        ms = round((time.monotonic() - t0) * 1000.0, 1)
        return LoginResult(ok=error is None, latency_ms=ms, error=error, token=token, expires_in=expires_in)

    try:
        async with session.post(
            f"{idp_url.rstrip('/')}/v1/login",
            json={"agent": agent, "secret": secret},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            if resp.status != 200:
                detail = ""
                try:
                    body = await resp.json(content_type=None)
                    if isinstance(body, dict) and body.get("error"):
                        detail = f": {body['error']}"
                except (ValueError, aiohttp.ClientError):
                    pass
                return done(f"http {resp.status}{detail}")
            body = await resp.json(content_type=None)
    except TimeoutError:
        return done(f"timeout after {timeout:g} s")
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return done(f"{type(exc).__name__}: {exc}".strip().rstrip(":"))
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        return done("no token in the IdP's answer")
    expires = body.get("expires_in")
    return done(token=token, expires_in=float(expires) if isinstance(expires, int | float) else None)


def login_event(result: LoginResult, agent: str, region: str, relogin: bool = False) -> dict[str, Any]:
    """The `agent_login` event record of one attempt (the token is never logged)."""
    return {
        "agent": agent,
        "region": region,
        "ok": result.ok,
        "latency_ms": result.latency_ms,
        "error": result.error,
        "relogin": relogin,
    }


async def record(result: LoginResult, agent: str, region: str, relogin: bool = False) -> None:
    try:
        await asyncio.to_thread(events.append, events.AgentLogin.of(login_event(result, agent, region, relogin)))
    except OSError:
        log.exception("could not append agent_login event")


def relogin_delay(expires_in: float | None, floor_s: float = 30.0) -> float | None:
    """Seconds until a token should be renewed (at 80 % of its life); None: never expires."""
    if expires_in is None or expires_in <= 0:
        return None
    return max(floor_s, expires_in * 0.8)


async def login_until_ok(
    session: aiohttp.ClientSession,
    idp_url: str,
    agent: str,
    secret: str,
    region: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    retry_s: float = DEFAULT_RETRY_S,
    relogin: bool = False,
    on_attempt: Callable[[LoginResult], object] | None = None,
) -> LoginResult:
    """Attempt, record the event, and retry every `retry_s` seconds until a login succeeds."""
    while True:
        result = await login(session, idp_url, agent, secret, timeout)
        await record(result, agent, region, relogin)
        if on_attempt is not None:
            on_attempt(result)
        if result.ok:
            log.info("%s logged in (%.0f ms)%s", agent, result.latency_ms, " again" if relogin else "")
            return result
        log.warning("%s: login failed (%s); retrying in %g s", agent, result.error, retry_s)
        await asyncio.sleep(retry_s)


async def keep_logged_in(
    session: aiohttp.ClientSession,
    idp_url: str,
    agent: str,
    secret: str,
    region: str,
    first: LoginResult,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    retry_s: float = DEFAULT_RETRY_S,
    on_attempt: Callable[[LoginResult], object] | None = None,
) -> None:
    """Renew the token before it expires, forever (run as a task; cancel to stop). A failing IdP
    only produces failed `agent_login` events: the agent stays in service."""
    current = first
    while (delay := relogin_delay(current.expires_in)) is not None:
        await asyncio.sleep(delay)
        current = await login_until_ok(
            session,
            idp_url,
            agent,
            secret,
            region,
            timeout=timeout,
            retry_s=retry_s,
            relogin=True,
            on_attempt=on_attempt,
        )
