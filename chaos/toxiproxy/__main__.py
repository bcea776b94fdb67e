"""`python -m chaos.toxiproxy --host 0.0.0.0 --port 8474 [--config proxies.json] [--seed N]`.

The -config file is upstream's: a JSON array of {name, listen, upstream, enabled} (plus our
optional `protocol`). Unlike upstream, a config that cannot be loaded (bad JSON, bad field, a
listen address in use) stops the server with exit code 1 instead of being logged and skipped.
SIGTERM or SIGINT closes the API, the listeners and every connection, then exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from chaos.toxiproxy import toxics
from chaos.toxiproxy.api import Server
from chaos.toxiproxy.model import API_VERSION, ApiError
from core.settings import ToxiproxySettings

log = logging.getLogger("chaos.toxiproxy")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m chaos.toxiproxy", description="A Toxiproxy-API server (TCP and UDP).")
    # Upstream's single-dash spellings (-host, -port, -config, -seed) work too: a drop-in for its CLI.
    p.add_argument("--host", "-host", default="127.0.0.1", help="address of the HTTP API (default 127.0.0.1)")
    p.add_argument("--port", "-port", type=int, default=8474, help="port of the HTTP API (default 8474)")
    p.add_argument("--config", "-config", type=Path, help="JSON file of proxies to create at start (as POST /populate)")
    p.add_argument("--seed", "-seed", type=int, help="seed for toxicity, jitter, slicing, loss and http_error")
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    if args.seed is not None:
        toxics.seed(args.seed)
    server = Server()
    if args.config is not None:
        try:
            proxies = await server.proxies.load_config(args.config)
        except (OSError, ApiError) as exc:
            log.error("config %s: %s", args.config, exc)
            await server.close()
            return 1
        log.info("config %s: %d proxies", args.config, len(proxies))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start(args.host, args.port)
    except OSError as exc:
        log.error("API %s:%s: %s", args.host, args.port, exc)
        await server.close()
        return 1
    log.info("Toxiproxy-API server %s ready", API_VERSION)
    await stop.wait()
    log.info("stopping")
    await server.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=ToxiproxySettings.from_env().log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
