"""Progress that reaches whoever is waiting: bars in JupyterLab or a terminal, plain lines headlessly.

`progress_bar(...)` is a tqdm-like bar (iterate it or call `update`, `set_postfix`, `close`) whose form
follows `ANIRA_PROGRESS`:

    bar    (default) tqdm.auto: a widget in JupyterLab, a redrawn line in a terminal
    lines  one plain line every `interval` seconds (and at the start and the end): what a notebook
           executed headlessly prints, so papermill can stream it to the terminal and keep it in the
           executed copy (`python -m anira_lib.notebooks run` sets this)
    off    nothing

Runs trained in worker processes (`parallel_training.train_parallel`) report through a queue with `QueueBar`;
the parent redraws them with `relay`, one bar per run.
"""

from __future__ import annotations

import os
import sys
import time

from tqdm.auto import tqdm

MODE_ENV = "ANIRA_PROGRESS"
MODES = ("bar", "lines", "off")
LINE_INTERVAL_S = 5.0


def progress_mode() -> str:
    """The form progress takes in this process ('bar', 'lines' or 'off'), from $ANIRA_PROGRESS."""
    mode = os.environ.get(MODE_ENV, "bar").strip().lower() or "bar"
    if mode not in MODES:
        raise ValueError(f"{MODE_ENV}={mode!r} is not a progress mode; use one of {list(MODES)}.")
    return mode


def format_duration(seconds: float) -> str:
    """Seconds -> 'm:ss' or 'h:mm:ss'."""
    s = int(round(max(seconds, 0.0)))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class _Bar:
    """What every bar here shares: iterate (update per item, close at the end), count, keep a postfix.
    Subclasses draw (LineBar), send (QueueBar) or do nothing (mode 'off')."""

    def __init__(self, iterable=None, total=None, initial=0):
        self.iterable, self.n, self.postfix = iterable, initial, {}
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def __len__(self):
        return self.total

    def update(self, n: int = 1):
        self.n += n

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        self.postfix = {**(ordered_dict or {}), **kwargs}

    def set_description(self, desc, refresh=True):
        self.desc = desc

    def refresh(self):
        pass

    def close(self):
        pass


class LineBar(_Bar):
    """A tqdm-like bar printing one self-contained line at most every `interval` seconds.

    A line reads `desc  n/total  pct | key value ... | elapsed m:ss, remaining m:ss`; the remaining
    time comes from the rate since the first update (a compile before it does not count)."""

    def __init__(self, iterable=None, total=None, desc="", initial=0, interval=LINE_INTERVAL_S,
                 file=None, clock=time.monotonic):
        super().__init__(iterable, total, initial)
        self.desc, self.interval, self.file, self.clock, self.closed = desc, interval, file, clock, False
        self.start_t, self._first = clock(), None  # _first: (time, n) of the first update
        self._last_print = None
        self._print()

    def update(self, n: int = 1):
        self.n += n
        if self._first is None and n > 0:  # the rate counts from the end of the first step
            self._first = (self.clock(), self.n)
        if self.clock() - self._last_print >= self.interval:
            self._print()

    def line(self) -> str:
        now = self.clock()
        parts = [self.desc or "progress"]
        if self.total:
            parts.append(f"{self.n}/{self.total} {100 * self.n / self.total:3.0f}%")
        else:
            parts.append(str(self.n))
        line = "  ".join(parts)
        if self.postfix:
            line += " | " + " ".join(f"{k} {v}" for k, v in self.postfix.items())
        line += f" | elapsed {format_duration(now - self.start_t)}"
        if self._first is not None and self.total and self.n > self._first[1]:
            rate = (self.n - self._first[1]) / max(now - self._first[0], 1e-9)
            line += f", remaining {format_duration((self.total - self.n) / rate)}"
        return line

    def _print(self):
        self._last_print, self._printed = self.clock(), (self.n, dict(self.postfix))
        print(self.line(), file=self.file or sys.stdout, flush=True)

    def refresh(self):
        self._print()

    def tick(self):
        """A line if `interval` has passed since the last one, progress or not (a long compile)."""
        if not self.closed and self.clock() - self._last_print >= self.interval:
            self._print()

    def close(self):
        if not self.closed:
            self.closed = True
            if self._printed != (self.n, self.postfix):  # the last line already says it
                self._print()


def progress_bar(iterable=None, *, total=None, desc="", initial=0, disable=False, position=None,
                 interval=LINE_INTERVAL_S):
    """A progress bar in the form `progress_mode()` names (see the module docstring)."""
    mode = progress_mode()
    if disable or mode == "off":
        return _Bar(iterable, total=total, initial=initial)
    if mode == "lines":
        return LineBar(iterable, total=total, desc=desc, initial=initial, interval=interval)
    return tqdm(iterable, total=total, desc=desc, initial=initial, position=position, dynamic_ncols=True)


class QueueBar(_Bar):
    """A worker process's bar: sends its state (throttled to `interval` s) to the parent through
    `queue` as (key, event, payload) tuples; `relay` in the parent draws it."""

    def __init__(self, queue, key, iterable=None, total=None, desc="", initial=0, interval=0.5,
                 clock=time.monotonic):
        super().__init__(iterable, total, initial)
        self.queue, self.key, self.interval, self.clock, self._sent = queue, key, interval, clock, clock()
        self.queue.put((key, "start", {"total": self.total, "desc": desc, "initial": initial}))

    def update(self, n: int = 1):
        self.n += n
        if self.clock() - self._sent >= self.interval:
            self._send()

    def set_description(self, desc, refresh=True):
        self.queue.put((self.key, "desc", desc))

    def refresh(self):
        self._send(refresh=True)

    def _send(self, refresh: bool = False):
        self._sent = self.clock()
        self.queue.put((self.key, "update", {"n": self.n, "postfix": dict(self.postfix), "refresh": refresh}))

    def close(self):
        self._send()
        self.queue.put((self.key, "close", None))


def relay(queue, done, poll_s: float = 0.2, bars: dict | None = None, events: dict | None = None) -> dict:
    """Draw the bars workers send through `queue` until `done()` is true and the queue is empty.
    done() is asked at least every `poll_s` seconds, however busy the queue; once it is true, what is
    queued already is drawn and relay returns.

    One `progress_bar` per key, created on its 'start' event. Events that draw nothing (a worker's
    'result' or 'error') are kept in `events[key] = (event, payload)`. Returns the bars (for tests)."""
    import queue as queue_module

    bars = {} if bars is None else bars
    finishing, checked = False, time.monotonic()
    while True:
        for bar in bars.values():  # plain lines keep coming while a worker compiles
            getattr(bar, "tick", lambda: None)()
        if not finishing and time.monotonic() - checked >= poll_s:  # busy workers must not hide done()
            finishing, checked = done(), time.monotonic()
        try:
            key, event, payload = queue.get_nowait() if finishing else queue.get(timeout=poll_s)
        except queue_module.Empty:
            if finishing or done():
                return bars
            checked = time.monotonic()
            continue
        except (EOFError, OSError):  # the queue went away: nothing more will come
            return bars
        if event == "start":
            bars[key] = progress_bar(total=payload["total"], desc=payload["desc"], initial=payload["initial"],
                                     position=len(bars))
        elif event not in ("update", "desc", "close"):
            if events is not None:
                events[key] = (event, payload)
        elif key not in bars:
            continue
        elif event == "update":
            bar = bars[key]
            bar.set_postfix(payload["postfix"], refresh=False)
            bar.update(payload["n"] - bar.n)
            if payload.get("refresh"):
                bar.refresh()
        elif event == "desc":
            bars[key].set_description(payload)
        elif event == "close":
            bars[key].close()
