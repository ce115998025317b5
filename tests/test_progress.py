"""Progress: plain lines on a clock, worker bars relayed through a queue, the mode switch."""

import io
import queue
import threading
import time

import pytest

from anira_lib.progress import LineBar, QueueBar, format_duration, progress_bar, progress_mode, relay


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_line_bar_prints_at_start_every_interval_and_at_close():
    clock, out = Clock(), io.StringIO()
    bar = LineBar(total=100, desc="train mano early", interval=5.0, file=out, clock=clock)
    for step in range(100):
        clock.t += 0.5  # 2 steps/s: a line every 10 steps
        if step == 49:
            bar.set_postfix(loss="0.123", acc="0.90")
        bar.update()
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "train mano early  0/100   0% | elapsed 0:00"
    # one line each time 5 s have passed since the last one; closing adds none, the last says 100/100
    assert [ln.split()[3] for ln in lines[1:]] == [f"{n}/100" for n in range(10, 101, 10)]
    assert lines[5] == "train mano early  50/100  50% | loss 0.123 acc 0.90 | elapsed 0:25, remaining 0:25"
    assert lines[-1].endswith("elapsed 0:50, remaining 0:00")


def test_remaining_time_leaves_out_the_time_before_the_first_step():
    clock, out = Clock(), io.StringIO()
    bar = LineBar(total=10, desc="d", interval=0.0, file=out, clock=clock)
    clock.t = 30.0
    bar.set_postfix(status="compiling")
    bar.update(0)   # a refresh that is not a step
    clock.t = 36.0
    bar.tick()      # no step for 6 s: a line all the same
    assert out.getvalue().splitlines()[-1] == "d  0/10   0% | status compiling | elapsed 0:36"
    bar.set_postfix()
    clock.t = 60.0  # a minute of compiling
    bar.update()    # first step: the rate starts here
    clock.t = 61.0
    bar.update()    # 1 step/s from here on
    assert bar.line() == "d  2/10  20% | elapsed 1:01, remaining 0:08"


def test_line_bar_iterates_and_closes_at_the_end():
    out = io.StringIO()
    bar = LineBar(range(3), desc="evaluate", interval=1e9, file=out)
    assert list(bar) == [0, 1, 2]
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[-1].startswith("evaluate  3/3 100%")
    bar.close()
    assert len(out.getvalue().splitlines()) == 2  # closing twice prints nothing more


def test_format_duration():
    assert [format_duration(s) for s in (0, 59.6, 61, 3600 + 62)] == ["0:00", "1:00", "1:01", "1:01:02"]


def test_progress_mode_reads_the_environment(monkeypatch):
    monkeypatch.setenv("ANIRA_PROGRESS", "lines")
    assert progress_mode() == "lines" and isinstance(progress_bar(total=1), LineBar)
    monkeypatch.setenv("ANIRA_PROGRESS", "off")
    bar = progress_bar(range(4))
    assert list(bar) == [0, 1, 2, 3] and bar.n == 4
    monkeypatch.setenv("ANIRA_PROGRESS", "loud")
    with pytest.raises(ValueError, match="ANIRA_PROGRESS='loud'.*'bar', 'lines', 'off'"):
        progress_mode()


def test_worker_bars_reach_the_parent_one_bar_per_run(monkeypatch, capsys):
    monkeypatch.setenv("ANIRA_PROGRESS", "lines")
    q, finished = queue.Queue(), threading.Event()

    def worker(key, steps):
        bar = QueueBar(q, key, total=steps, desc=f"train {key}", interval=0.0)
        for i in range(steps):
            bar.set_postfix(loss=f"{1 / (i + 1):.2f}")
            bar.update()
        bar.close()

    threads = [threading.Thread(target=worker, args=(k, n)) for k, n in (("early", 7), ("online", 5))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    finished.set()
    bars = relay(q, done=finished.is_set, poll_s=0.01)
    assert {k: (b.n, b.total, b.closed) for k, b in bars.items()} == {"early": (7, 7, True), "online": (5, 5, True)}
    printed = capsys.readouterr().out.splitlines()
    assert "train early  7/7 100% | loss 0.14" in [ln.split(" | elapsed")[0] for ln in printed]
    assert "train online  5/5 100% | loss 0.20" in [ln.split(" | elapsed")[0] for ln in printed]


def test_relay_asks_done_even_while_the_queue_never_goes_quiet(monkeypatch):
    """A worker that keeps sending must not hide that another one ended (train_parallel then starts the
    next run): relay returns soon after done() turns true, having drawn what was queued."""
    monkeypatch.setenv("ANIRA_PROGRESS", "off")
    q, stop = queue.Queue(), threading.Event()

    def chatty():
        bar = QueueBar(q, "busy", total=10**9, interval=0.0)
        while not stop.is_set():
            bar.update()
            time.sleep(0.001)

    t = threading.Thread(target=chatty)
    t.start()
    t0 = time.monotonic()
    try:
        bars = relay(q, done=lambda: time.monotonic() - t0 > 0.3, poll_s=0.05)
    finally:
        stop.set()
        t.join()
    assert time.monotonic() - t0 < 5 and bars["busy"].n > 0
