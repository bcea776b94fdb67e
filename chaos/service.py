"""`python -m chaos.service`: the lab's chaos controller (compose service `chaos`)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import docker
from aiohttp import web

from chaos.api import make_app
from chaos.controller import Controller

log = logging.getLogger("wobble.chaos")
PORT = 8070


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    controller = Controller(
        docker.from_env(timeout=60),
        project=os.environ.get("WOBBLE_PROJECT", "wobble"),
        ttl_s=float(os.environ.get("CHAOS_LEASE_TTL", "3")),
    )
    await controller.start()
    runner = web.AppRunner(make_app(controller, os.environ.get("CHAOS_TOKEN", "wobble-operator")))
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", int(os.environ.get("CHAOS_PORT", PORT))).start()
    log.info("chaos controller on :%s", os.environ.get("CHAOS_PORT", PORT))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    renew = asyncio.create_task(controller.renew_forever())
    await stop.wait()
    renew.cancel()
    # A graceful stop reverts everything now rather than waiting for the leases to lapse.
    await controller.clear()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
