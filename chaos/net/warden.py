"""The network warden: applies one network fault inside the current network namespace, holds it
while its lease is live, and always reverts it.

    python -m chaos.net.warden apply --spec JSON --id ID --lease-dir DIR [--ttl-check 0.2]
    python -m chaos.net.warden cleanup [--id ID]
    python -m chaos.net.warden probe --json

`apply` probes the backends, applies the fault's rules atomically (a failing command reverts what
went in before it, and the warden exits 1 naming that command), prints `LIVE <id>` once the fault
is active, serves the NFQUEUE delay line when the fault needs one, and polls the lease every
`--ttl-check` seconds. It reverts and exits 0 when the lease is expired, ended or missing, on
SIGTERM/SIGINT/SIGHUP, and reverts on every other way out too (try/finally). Only `kill -9` can
leave rules behind: `cleanup` removes every wobble-owned nft table/chain, iptables chain and jump,
tc qdisc/class/filter and ifb device in the namespace (or one fault's), and is idempotent.

Exit codes: 0 reverted normally; 1 apply or revert failed; 2 invalid request (spec, id, backend);
3 the lease was not live at start (nothing applied).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from chaos import lease
from chaos.net import probe as probemod
from chaos.net import rules
from chaos.net.delayline import DelayLine, Scheduler
from chaos.net.spec import InvalidNetFault, NetFault, parse_net_fault
from core.settings import WardenSettings

log = logging.getLogger("wobble.netwarden")
#: What may remain of wobble in a namespace after cleanup: nothing matching this.
LEFTOVER = re.compile(r"wobble|WOBBLE_|\bb0b:|\bwb[ip][0-9a-f]{4,}")
QUEUE_TRIES = 64


class ApplyError(RuntimeError):
    """A command of the plan failed; everything applied before it has been reverted."""


class RevertError(RuntimeError):
    """Some revert command failed (the rest ran); `cleanup` is the way out."""


class Stop(Exception):
    """A signal asked the warden to revert and exit."""


# ---- running commands ----------------------------------------------------------------------


def _exec(argv: tuple[str, ...], stdin: str | None = None) -> tuple[int, str, str]:
    try:
        p = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=20, check=False)
    except FileNotFoundError:
        return 127, "", f"{argv[0]}: command not found"
    except subprocess.TimeoutExpired:
        return 124, "", f"{argv[0]}: timed out"
    return p.returncode, p.stdout, p.stderr


def run_cmd(cmd: rules.Cmd) -> tuple[str, str]:
    """Run one command: ("ran" | "skipped" | "absent" | "failed", error text)."""
    for check in cmd.when:
        rc, out, _ = _exec(check.argv)
        if not check.holds(out if rc == 0 else ""):
            return "skipped", ""
    rc, out, err = _exec(cmd.argv, cmd.stdin)
    if rc == 0:
        return "ran", ""
    text = (err + out).strip()
    if any(fragment in text for fragment in cmd.ok_errors):
        return "absent", text
    return "failed", text or f"exit status {rc}"


def apply_plan(plan: rules.Plan) -> None:
    """All of the plan or none of it: on the first failure, revert and raise ApplyError."""
    for cmd in plan.apply:
        status, err = run_cmd(cmd)
        if status == "failed":
            leftovers = revert_plan(plan)
            extra = f"; revert also failed: {'; '.join(leftovers)}" if leftovers else "; reverted what was applied"
            raise ApplyError(f"{cmd.what} failed: `{cmd.shell()}`: {err.splitlines()[0] if err else ''}{extra}")
        log.info("applied %s (%s)", cmd.what, status)


def revert_plan(plan: rules.Plan) -> list[str]:
    """Run every revert command (idempotent); returns the failures (it goes on past them)."""
    failures = []
    for cmd in plan.revert:
        status, err = run_cmd(cmd)
        if status == "failed":
            failures.append(f"{cmd.what}: `{cmd.shell()}`: {err.splitlines()[0] if err else ''}")
    return failures


@contextlib.contextmanager
def netlock(lease_dir: str | None) -> Iterator[None]:
    """Serialize rule changes between wardens (one namespace's shared table/qdisc GC vs. adds)."""
    fd = None
    if lease_dir:
        try:
            Path(lease_dir).mkdir(parents=True, exist_ok=True)
            fd = os.open(Path(lease_dir) / ".net.lock", os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            log.warning("no lock (%s); going on without", exc)
            fd = None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


# ---- apply ----------------------------------------------------------------------------------


def free_mark_bit(fault_id: str) -> int:
    """A mark bit no live NFQUEUE fault in this namespace uses (call under the netlock)."""
    rc, save, _ = _exec(("iptables-save", "-t", "mangle"))
    return rules.mark_bit(fault_id, rules.mark_bits_in_use(save if rc == 0 else ""))


def bind_queue(fault_id: str, scheduler: Scheduler, copy: bool, mark_bit: int) -> DelayLine:
    """Bind the first free NFQUEUE number from the fault's own."""
    first = rules.default_queue_num(fault_id)
    last_err: OSError | None = None
    for i in range(QUEUE_TRIES):
        num = 1000 + (first - 1000 + i) % 60000
        line = DelayLine(num, scheduler, copy, mark_bit)
        try:
            line.bind()
            return line
        except OSError as exc:
            last_err = exc
    raise ApplyError(f"no free NFQUEUE from {first} ({QUEUE_TRIES} tried): {last_err}")


async def hold(
    fault: NetFault, fault_id: str, lease_dir: str, ttl_check: float, backend: str, interfaces: list[str]
) -> str:
    """Apply, hold while the lease is live, revert. Returns why it ended; raises ApplyError."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reason = "error"
    signalled: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        signalled.append(sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, on_signal, sig)
    line: DelayLine | None = None
    plan: rules.Plan | None = None
    try:
        with netlock(lease_dir):
            if backend == "nfqueue":
                params = rules.delay_params(fault)
                bit = free_mark_bit(fault_id)
                line = bind_queue(fault_id, Scheduler(params), params.dup_pct > 0, bit)
                line.start(loop)
                plan = rules.plan(fault, interfaces, fault_id, backend, queue_num=line.queue_num, mark=bit)
            else:
                plan = rules.plan(fault, interfaces, fault_id, backend)
            apply_plan(plan)
            effect_at = time.time()  # the rules are in: the fault acts from here (the LIVE line says so)
        for note in plan.notes:
            log.info("note: %s", note)
        log.info("%s live via %s on %s", fault.kind, backend, ",".join(interfaces))
        print(f"LIVE {fault_id} {effect_at:.6f}", flush=True)
        while True:
            if stop.is_set():
                reason = f"signal {signalled[0] if signalled else ''}".strip()
                break
            state = lease.lease_state(lease.read_lease(lease_dir, fault_id), time.time())
            if state != "live":
                reason = f"lease {state}"
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), ttl_check)
        return reason
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)  # a second signal must not cut the revert short
        failures: list[str] = []
        if plan is not None:
            with netlock(lease_dir):
                failures = revert_plan(plan)
        if line is not None:
            line.close()
            s = line.stats
            log.info(
                "delay line: queued %d, dropped %d, duplicated %d, max held %d",
                s.queued,
                s.dropped,
                s.duplicated,
                s.max_held,
            )
        if plan is not None:
            record_revert(fault, fault_id, backend, reason, failures)
        if failures:
            raise RevertError(f"revert incomplete: {'; '.join(failures)}; run `cleanup --id {fault_id}`")
        if plan is not None:
            log.info("reverted %s (%s)", fault_id, reason)


def record_revert(fault: NetFault, fault_id: str, backend: str, reason: str, failures: list[str]) -> None:
    """The revert as an event in the lab's log (only where a lab log is configured: the containers)."""
    settings = WardenSettings.from_env()
    if settings.events is None:
        return
    from core import events

    record = {
        "id": fault_id,
        "fault": fault.kind,
        "target": settings.fault_target,
        "backend": backend,
        "by": "warden",
        "reason": reason,
        "mono": time.monotonic(),
    }
    try:
        if failures:
            events.append(events.FaultRevertFailed.of({**record, "error": "; ".join(failures)}))
        else:
            events.append(events.FaultRevert.of(record))
    except OSError as exc:  # the revert itself matters more than its record
        log.error("could not record the revert: %s", exc)


def cmd_apply(args: argparse.Namespace) -> int:
    # Until the event loop takes over, a TERM must still end in the finally blocks.
    def early(signum: int, frame: object) -> None:
        raise Stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, early) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        try:
            fault = parse_net_fault(json.loads(args.spec))
            rules.check_id(args.id)
        except (InvalidNetFault, rules.PlanError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 2
        state = lease.lease_state(lease.read_lease(args.lease_dir, args.id), time.time())
        if state != "live":
            print(f"error: lease of {args.id} is {state} in {args.lease_dir}; nothing applied", file=sys.stderr)
            return 3
        notes: list[str] = []
        backend = args.backend or probemod.probe(notes).get(fault.kind)
        if not backend:
            why = "; ".join(notes) or "no backend"
            print(f"error: this kernel cannot serve {fault.kind} ({why})", file=sys.stderr, flush=True)
            return 2
        interfaces = args.interfaces.split(",") if args.interfaces else probemod.interfaces()
        try:
            reason = asyncio.run(hold(fault, args.id, args.lease_dir, args.ttl_check, backend, interfaces))
        except (ApplyError, RevertError, rules.PlanError) as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 1
        log.info("exit: %s", reason)
        return 0
    except Stop as stop:
        log.info("stopped by %s before the fault was live", stop)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ---- cleanup --------------------------------------------------------------------------------


def cleanup(fault_id: str | None) -> tuple[list[str], list[str]]:
    """Remove wobble's objects here (or one fault's): (what was removed, what failed)."""
    devices = [name for _, name in socket.if_nameindex()]
    _, tables, _ = _exec(("nft", "list", "tables"))
    _, listing, _ = _exec(("nft", "list", "table", rules.TABLE_FAMILY, rules.TABLE))
    rc, save, _ = _exec(("iptables-save", "-t", "mangle"))
    cmds = rules.cleanup_commands(fault_id, devices, tables, listing, save if rc == 0 else "")
    removed: list[str] = []
    failed: list[str] = []
    for cmd in cmds:
        status, err = run_cmd(cmd)
        if status == "ran":
            removed.append(cmd.what)
        elif status == "failed":
            failed.append(f"{cmd.what}: {err.splitlines()[0] if err else ''}")
    return removed, failed


def leftovers() -> list[str]:
    """Lines of `nft list ruleset`, `iptables-save`, `tc qdisc show`, `ip link` that are wobble's."""
    found = []
    for argv in (("nft", "list", "ruleset"), ("iptables-save",), ("tc", "qdisc", "show"), ("ip", "-o", "link")):
        _, out, _ = _exec(argv)
        found += [f"{argv[0]}: {line.strip()}" for line in out.splitlines() if LEFTOVER.search(line)]
    return found


def cmd_cleanup(args: argparse.Namespace) -> int:
    if args.id:
        try:
            rules.check_id(args.id)
        except rules.PlanError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    removed, failed = cleanup(args.id)
    for what in removed:
        print(f"removed {what}", flush=True)
    if not removed:
        print("nothing to remove", flush=True)
    for what in failed:
        print(f"error: {what}", file=sys.stderr, flush=True)
    if args.id is None:
        left = leftovers()
        for line in left:
            print(f"error: still there: {line}", file=sys.stderr, flush=True)
        failed += left
    return 1 if failed else 0


# ---- probe ----------------------------------------------------------------------------------


def cmd_probe(args: argparse.Namespace) -> int:
    notes: list[str] = []
    caps = probemod.capabilities(notes)
    chosen = probemod.choose(caps)
    for note in notes:
        print(f"probe: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(chosen, sort_keys=True), flush=True)
    else:
        for name, ok in caps.items():
            print(f"{name:18} {'yes' if ok else 'no'}")
        for kind, backend in chosen.items():
            print(f"{kind:12} -> {backend}")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s netwarden %(message)s")
    ap = argparse.ArgumentParser(prog="python -m chaos.net.warden")
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("apply", help="apply one network fault and hold it while its lease is live")
    a.add_argument("--spec", required=True, help="the fault (chaos.net.spec.NetFault) as JSON")
    a.add_argument("--id", required=True)
    a.add_argument("--lease-dir", required=True)
    a.add_argument("--ttl-check", type=float, default=0.2, help="seconds between lease polls")
    a.add_argument(
        "--backend",
        choices=sorted({b for bs in rules.BACKENDS.values() for b in bs}),
        help="skip the probe and use this backend",
    )
    a.add_argument("--interfaces", help="comma-separated devices (default: every one but lo)")
    c = sub.add_parser("cleanup", help="remove wobble's network rules here (all, or one fault's)")
    c.add_argument("--id")
    p = sub.add_parser("probe", help="which backend serves each fault kind here")
    p.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.cmd == "apply":
        return cmd_apply(args)
    if args.cmd == "cleanup":
        return cmd_cleanup(args)
    return cmd_probe(args)


if __name__ == "__main__":
    sys.exit(main())
