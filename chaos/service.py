"""`python -m chaos.service`: the lab's chaos controller (compose service `chaos`)."""

from __future__ import annotations

import asyncio
import logging
import signal

import docker
from aiohttp import web

from chaos.api import make_app
from chaos.controller import Controller
from core.settings import ChaosSettings

log = logging.getLogger("wobble.chaos")
PORT = 8070


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = ChaosSettings.from_env()
    controller = Controller(
        docker.from_env(timeout=60), project=settings.project, ttl_s=settings.lease_ttl_s, host_var=settings.host_var
    )
    await controller.start()  # adopts an earlier controller's live faults, and renews leases from then on
    runner = web.AppRunner(make_app(controller, settings.token))
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", settings.port).start()
    log.info("chaos controller on :%s", settings.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # A graceful stop (`docker stop`: not restarted) reverts everything now rather than waiting for
    # the leases to lapse; only a crash leaves faults live, for the restarted controller to adopt.
    await controller.clear()
    await controller.stop()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
