"""The one progress bar: ``label done/total [####....] <postfix> <rate> ETA`` on stderr.

Used by training (steps, with loss and throughput), the converters (images) and
batch inference (photos). On a terminal the line is redrawn in place; otherwise
(logs, CI) a line is written at most every ``log_interval_s`` seconds and when
forced (a phase end, the last item), so logs stay short.
"""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


def format_duration(seconds: float) -> str:
    """``3725.2`` -> ``"1:02:05"``, ``65`` -> ``"1:05"``; ``"?"`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0 or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressBar:
    """A one-line progress bar with rate and ETA.

    Args:
        total: items (steps, images) of the whole job.
        label: what is progressing (changed per ``update`` as phases change).
        unit: the rate's unit (``steps/s``, ``img/s``).
        stream: where to write (default ``sys.stderr``).
        enabled: False writes nothing (the counts are still kept).
        width: characters of the bar.
        log_interval_s: minimum seconds between lines when not on a terminal.
        initial: items already done before this process (a resumed job): the rate
            and ETA count only this process's work.
    """

    def __init__(self, total: int, label: str = "", unit: str = "it/s", stream: Optional[TextIO] = None,
                 enabled: bool = True, width: int = 24, log_interval_s: float = 10.0, initial: int = 0):
        self.total = max(int(total), 1)
        self.label, self.unit = label, unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.width = width
        self.log_interval_s = log_interval_s
        self.done = self._initial = int(initial)
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_len = 0
        self._busy_seconds = 0.0
        self._start = self._last_line_time = time.monotonic()

    @property
    def rate(self) -> float:
        """Items per second of this process (measured seconds when given, else wall time)."""
        seconds = self._busy_seconds or (time.monotonic() - self._start)
        return (self.done - self._initial) / seconds if seconds > 0 else 0.0

    def update(self, n: int = 1, done: Optional[int] = None, label: Optional[str] = None, postfix: str = "",
               seconds: Optional[float] = None, force: bool = False) -> str:
        """Advances by ``n`` items (or to ``done``) and redraws the line.

        Args:
            n: items finished since the last call (ignored when ``done`` is given).
            done: items finished in all (absolute).
            label: a new label (e.g. the training phase).
            postfix: text after the bar (``loss 0.5  123.4 ex/s``).
            seconds: the time those items took, when the caller measured it (excludes
                what is not the job's work, such as evaluation); else wall time counts.
            force: write a line even when not on a terminal and inside the interval.

        Returns:
            The rendered line.
        """
        self.done = int(done) if done is not None else self.done + int(n)
        if label is not None:
            self.label = label
        if seconds is not None:
            self._busy_seconds += float(seconds)
        rate = self.rate
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        filled = int(self.width * min(self.done / self.total, 1.0))
        bar = "#" * filled + "." * (self.width - filled)
        parts = [f"{self.label} {self.done}/{self.total} [{bar}]", postfix, f"{rate:,.1f} {self.unit}",
                 f"ETA {format_duration(eta)}"]
        line = " ".join(p for p in parts if p)
        if not self.enabled:
            return line
        now = time.monotonic()
        if self._tty:
            pad = " " * max(self._last_len - len(line), 0)
            self.stream.write("\r" + line + pad)
            self._last_len = len(line)
            self.stream.flush()
        elif force or self.done >= self.total or now - self._last_line_time >= self.log_interval_s:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_line_time = now
        return line

    def close(self) -> None:
        """Ends the in-place line on a terminal."""
        if self.enabled and self._tty and self._last_len:
            self.stream.write("\n")
            self.stream.flush()
            self._last_len = 0
