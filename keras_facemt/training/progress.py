"""A one-line training progress bar with throughput and ETA on stderr."""

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
    """Shows ``phase  step/total [####....] loss  ex/s  ETA``.

    On a terminal the line is redrawn in place; otherwise (logs, CI) a line is written
    at most every ``log_interval_s`` seconds and at the end of each phase, so logs stay
    short.

    Args:
        total_steps: steps of the whole run (for the ETA).
        stream: where to write (default ``sys.stderr``).
        width: characters of the bar.
        log_interval_s: minimum seconds between lines when not on a terminal.
    """

    def __init__(self, total_steps: int, stream: Optional[TextIO] = None, width: int = 24,
                 log_interval_s: float = 10.0):
        self.total_steps = max(int(total_steps), 1)
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.log_interval_s = log_interval_s
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_line_time = 0.0
        self._rate_steps = 0
        self._rate_seconds = 0.0
        self._last_len = 0

    def update(self, step: int, phase: str, loss: float, examples_per_sec: float, seconds: float,
               steps_done: int, force: bool = False) -> str:
        """Records ``steps_done`` steps that took ``seconds`` and redraws the line.

        Args:
            step: global step reached.
            phase: current phase name.
            loss: mean total loss of the last loop.
            examples_per_sec: throughput of the last loop.
            seconds: wall time of the last loop.
            steps_done: steps of the last loop.
            force: write a line even when not on a terminal and inside the interval.

        Returns:
            The rendered line.
        """
        self._rate_steps += steps_done
        self._rate_seconds += seconds
        rate = self._rate_steps / self._rate_seconds if self._rate_seconds > 0 else 0.0
        remaining = self.total_steps - step
        eta = remaining / rate if rate > 0 else float("inf")
        filled = int(self.width * min(step / self.total_steps, 1.0))
        bar = "#" * filled + "." * (self.width - filled)
        line = (f"{phase} {step}/{self.total_steps} [{bar}] loss {loss:.4g} "
                f"{examples_per_sec:.1f} ex/s ETA {format_duration(eta)}")
        now = time.monotonic()
        if self._tty:
            pad = " " * max(self._last_len - len(line), 0)
            self.stream.write("\r" + line + pad)
            self._last_len = len(line)
            self.stream.flush()
        elif force or now - self._last_line_time >= self.log_interval_s:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_line_time = now
        return line

    def close(self):
        """Ends the in-place line on a terminal."""
        if self._tty and self._last_len:
            self.stream.write("\n")
            self.stream.flush()
            self._last_len = 0
