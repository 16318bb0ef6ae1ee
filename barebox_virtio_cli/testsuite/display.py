"""What `bbv test` shows while it works: one status line per target, live (rich) on a
terminal, else a status line (util/status.py) per change."""

from __future__ import annotations

import re
import threading

from barebox_virtio_cli.util.status import say

_MARKUP = re.compile(r"\[/?[a-z ]*\]")


class TargetLines:
    def __init__(self, names: list[str], live: bool) -> None:
        self.lines = dict.fromkeys(names, "waiting")
        self.lock = threading.Lock()
        self.live = None
        if live:
            from rich.console import Console
            from rich.live import Live

            self.live = Live(self, console=Console(stderr=True), refresh_per_second=4,
                             transient=True)
            self.live.start()

    def __rich__(self):
        from rich.table import Table

        table = Table.grid(padding=(0, 1))
        with self.lock:
            for name, line in self.lines.items():
                table.add_row(f"[bold]{name}[/]", line)
        return table

    def set(self, name: str, line: str, say_it: bool = True) -> None:
        with self.lock:
            changed = self.lines.get(name) != line
            self.lines[name] = line
        if changed and self.live is None and say_it:
            say(f"{name}: {_MARKUP.sub('', line)}")

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
