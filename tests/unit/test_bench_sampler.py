"""bench's process sampler: every tree from one scan of /proc, with grandchildren and their CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from bench._watch import ProcessSampler

# A child that starts a grandchild burning CPU, then waits.
_PARENT = (
    "import subprocess, sys, time;"
    "subprocess.Popen([sys.executable, '-c', 'import time\\nt = time.process_time()\\n"
    "while time.process_time() - t < 0.3: pass\\ntime.sleep(60)']);"
    "time.sleep(60)"
)


def test_trees_hold_grandchildren_and_their_cpu_and_own_only_holds_the_process_alone():
    parent = subprocess.Popen([sys.executable, "-c", _PARENT])
    try:
        deadline = time.monotonic() + 20
        while not (grandchildren := psutil.Process(parent.pid).children()):
            assert time.monotonic() < deadline, "the grandchild did not start"
            time.sleep(0.05)
        (grandchild,) = grandchildren
        while sum(grandchild.cpu_times()[:2]) < 0.3:
            assert time.monotonic() < deadline, "the grandchild did not burn its CPU"
            time.sleep(0.05)
        sampler = ProcessSampler({"tree": parent.pid, "alone": parent.pid, "bench": os.getpid()})
        sampler.own_only.update({"alone", "bench"})

        trees = sampler.trees()
        assert [p.pid for p in trees["tree"]] == [parent.pid, grandchild.pid]
        assert [p.pid for p in trees["alone"]] == [parent.pid]
        assert parent.pid not in [p.pid for p in trees["bench"]]  # own_only: not our children

        cpu = sampler.cpu_seconds()
        assert cpu["tree"] - cpu["alone"] >= 0.3
        memory = sampler.rss(pss=False)
        assert memory["tree"] > memory["alone"] > 0
    finally:
        for proc in psutil.Process(parent.pid).children(recursive=True):
            proc.kill()
        parent.kill()
        parent.wait()


def test_postgres_pss_is_left_out_of_a_sample_that_skips_it():
    sampler = ProcessSampler({"postgres": os.getpid(), "bench": os.getpid()})
    assert set(sampler.rss(pss=False)) == {"bench"}
    assert set(sampler.rss()) == {"bench", "postgres"} and sampler.rss()["postgres"] > 0
