"""The runner's live view (rich): phase, elapsed time, per-second new-call success (the last 30 s),
active faults with their time left, steering's state per region; notes scroll above it."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from lab.drill.runner import LiveStatus

BLOCKS = " ▁▂▃▄▅▆▇█"
STATE_STYLE = {"UP": "green", "SUSPECT": "yellow", "DOWN": "bold red"}


def sparkline(values: list[float | None]) -> Text:
    """One character per second: the block's height is the success ratio; `·` no judged call; red below 0.9."""
    out = Text()
    for v in values:
        if v is None:
            out.append("·", style="dim")
        else:
            out.append(BLOCKS[round(v * (len(BLOCKS) - 1))], style="green" if v >= 0.9 else "red")
    return out


def render(status: LiveStatus) -> Any:
    head = Table.grid(padding=(0, 2))
    head.add_row(
        Text(f"drill {status.scenario}", style="bold"),
        Text(status.phase, style="cyan"),
        Text(f"{status.elapsed_s:6.1f} s"),
        Text(f"steering mode {status.mode or '?'}"),
    )
    last = next((v for v in reversed(status.success_last) if v is not None), None)
    success = Text("new-call success ")
    success.append_text(sparkline(status.success_last))
    success.append(f"  {'n/a' if last is None else f'{100 * last:.0f} %'}")
    regions = Text("regions ")
    for name, state in sorted(status.regions.items()):
        regions.append(f"{name} ", style="bold")
        regions.append(f"{state}  ", style=STATE_STYLE.get(state, ""))
    faults = Table("fault", "target", "left", box=None, padding=(0, 2))
    for f in status.faults:
        faults.add_row(str(f["kind"]), str(f["target"]), f"{f['left_s']:.0f} s")
    parts: list[Any] = [head, success, regions]
    if status.faults:
        parts.append(faults)
    if status.note:
        parts.append(Text(status.note, style="dim"))
    return Group(*parts)


class RichView:
    """Live on stderr (stdout stays for --json); off when stderr is not a terminal, notes still printed."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._live: Live | None = None
        if self.console.is_terminal:
            self._live = Live(console=self.console, refresh_per_second=4, transient=False)
            self._live.start()

    def update(self, status: LiveStatus) -> None:
        if self._live is not None:
            self._live.update(render(status))

    def message(self, text: str) -> None:
        self.console.print(text)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
