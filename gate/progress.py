"""How scoring progress shows: live bars for a person at a terminal, plain throttled lines in a CI log.

A log (stdout or stderr not a TTY, or `CI` set) gets no carriage-return bars from any library (tqdm in lm-eval,
transformers, datasets, the hub, the gate's scorer): a log viewer shows each bar update as a line of its own. Instead
ItemProgress prints one plain line per model and task at most every PLAIN_INTERVAL seconds.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

PLAIN_INTERVAL = 30.0  # seconds between two plain progress lines of one model and task
_BAR_SWITCHES = ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")


def live_bars() -> bool:
    """Whether progress bars are wanted: stdout and stderr are a terminal and no CI variable is set."""
    return sys.stdout.isatty() and sys.stderr.isatty() and not os.environ.get("CI")


def quiet_library_bars() -> None:
    """In a log, switch the libraries' bars off; tqdm reads TQDM_DISABLE when first imported, so call this early."""
    if live_bars():
        return
    for name in _BAR_SWITCHES:
        os.environ.setdefault(name, "1")
    if "transformers" in sys.modules:  # imported already: its switch was read at import
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


class ItemProgress:
    """Counts one model's items on a task and reports them as a plain line at most every `interval` seconds."""

    def __init__(self, label: str, total: int, say: Callable[[str], None], *, interval: float = PLAIN_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.total, self.say, self.interval, self.clock = label, total, say, interval, clock
        self.done = 0.0
        self.started = self.last = clock()

    def advance(self, items: float) -> None:
        """Add finished items (a fraction where an item has several requests); report if the interval passed."""
        self.done = min(self.total, self.done + items)
        now = self.clock()
        if now - self.last >= self.interval and self.done < self.total:
            self.last = now
            self.say(self.line(now))

    def line(self, now: float) -> str:
        """`label: done/total items, rate items/s, ETA`."""
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        eta = _duration((self.total - self.done) / rate) if rate > 0 else "unknown"
        return f"{self.label}: {int(self.done)}/{self.total} items, {rate:.2f} items/s, ETA {eta}"
