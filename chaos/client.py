"""The Python async API of the chaos controller (the CLI and drills both use it).

async with ChaosClient() as chaos:
    async with chaos.fault("loss", "media-a", "60s", pct=20):
        ...  # the fault is live here, and reverted on the way out
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from chaos.catalog import parse_duration
from core.settings import HostSettings

DEFAULT_URL = "http://10.77.9.7:8070"  # the `chaos` service on the backbone (core/topology.py)


class ChaosError(RuntimeError):
    """The controller refused or failed a request; `status` is its HTTP status (0: unreachable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ChaosUnavailable(ChaosError, ConnectionError):
    """No controller answers at the configured address."""


class ChaosClient:
    def __init__(self, url: str | None = None, token: str | None = None, timeout_s: float = 60.0) -> None:
        settings = HostSettings.from_env()
        self.url = (url or settings.chaos_url or DEFAULT_URL).rstrip("/")
        self.token = token or settings.token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=3.0)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ChaosClient:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if self._session is None:
            raise RuntimeError("use ChaosClient as `async with ChaosClient() as chaos:`")
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            async with self._session.request(method, self.url + path, json=body, headers=headers) as resp:
                try:
                    data = await resp.json(content_type=None)
                except ValueError:
                    data = {"error": (await resp.text())[:200]}
                if resp.status >= 400:
                    msg = data.get("error") if isinstance(data, dict) else str(data)
                    raise ChaosError(resp.status, str(msg))
                return data
        except aiohttp.ClientConnectionError as exc:
            raise ChaosUnavailable(
                0, f"no chaos controller at {self.url} ({exc}); is the lab up? (`make up`; `wobble status`)"
            ) from exc
        except TimeoutError as exc:
            raise ChaosUnavailable(0, f"the chaos controller at {self.url} did not answer in time") from exc

    async def add(
        self, kind: str, target: str, duration: str | float, backend: str | None = None, **params: Any
    ) -> dict[str, Any]:
        seconds = duration if isinstance(duration, int | float) else parse_duration(duration)
        body = {"kind": kind, "target": target, "duration_s": float(seconds), "params": params, "backend": backend}
        result: dict[str, Any] = await self._call("POST", "/v1/faults", body)
        return result

    async def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._call("GET", "/v1/faults")
        return result

    async def remove(self, fault_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("DELETE", f"/v1/faults/{fault_id}")
        return result

    async def clear(self) -> list[dict[str, Any]]:
        result: dict[str, Any] = await self._call("DELETE", "/v1/faults")
        return list(result.get("cleared", []))

    async def backends(self) -> dict[str, str]:
        result: dict[str, str] = await self._call("GET", "/v1/backends")
        return result

    @asynccontextmanager
    async def fault(
        self, kind: str, target: str, duration: str | float, **params: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """Apply a fault for the block's duration; reverted on exit, even on error or Ctrl-C."""
        active = await self.add(kind, target, duration, **params)
        try:
            yield active
        finally:
            try:
                await self.remove(active["id"])
            except ChaosError as exc:
                if exc.status != 404:  # 404: it already ended on its own
                    raise
