"""Idle CPU of the whole `registrar up` process tree: what the system users run costs while nobody
uses it.

It starts `registrar up` (bench/registrar_up.py: API, relay, the five Kafka-fed projectors and the
promotions publisher, ingest consumers, the embedded broker; an embedded PostgreSQL unless
--database machine), waits until it has started and --settle more seconds, then, sending it
nothing, reads from /proc every second, over --seconds, the CPU time (utime + stime) and the
context switches of every process it is made of: `up`'s own Python process (API, relay), its
children (the companion process running the projectors and ingest consumers, the multiprocessing
resource tracker, the watchdog, the Tansu broker), and the embedded PostgreSQL's postmaster and
its children (it is not a child of `up`: found by its data directory's postmaster.pid). With
--database machine, only the backends connected to `up`'s database are counted.

It prints, as % of one core, each process role, each part (registrar python, broker, postgres)
and the whole tree, next to the goal (issue 14): < 3% of one core. The context switches per
second say how often each part wakes up. Figures are printed, never asserted; on a shared machine
other work slows everything, so compare runs on an idle machine.

    .venv/bin/python bench/idle_cpu.py [--seconds 60] [--settle 10] [--database embedded|machine]
                                       [--py-spy FILE [--py-spy-rate 100]] [--keep]

--py-spy FILE records, during the window, the Python processes of the tree (`up` and its
subprocesses: py-spy --subprocesses --nonblocking, idle threads left out) in py-spy's raw format
(collapsed stacks): bench/profile_summary.py FILE summarises it; this script prints which tasks
were running in the samples, per process, i.e. what wakes them up. py-spy runs beside the
processes (it reads their memory) and costs them little, but it loads the machine.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from registrar_up import PARTS, RegistrarUp, TreeCpu, add_database_option  # noqa: E402

GOAL_PERCENT = 3.0
GOAL = "idle CPU of the whole `registrar up` process tree < 3% of one core"

_PROCESS = re.compile(r'process (\d+):"([^"]*)"(;|$)')
"""py-spy --subprocesses starts each stack with the processes it is in, outermost first."""
_LOOP = "Runner.run (asyncio/runners.py"
"""The event loop's frame (uvloop runs it in C): the frame after it is the task that ran."""


def start_py_spy(pid: int, output: Path, seconds: float, rate: int) -> subprocess.Popen[bytes]:
    py_spy = Path(sys.executable).parent / "py-spy"
    command = [
        str(py_spy),
        "record",
        "--pid",
        str(pid),
        "--subprocesses",
        "--nonblocking",
        "--format",
        "raw",
        "--rate",
        str(rate),
        "--duration",
        str(int(round(seconds))),
        "--output",
        str(output),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def frame_name(frame: str) -> str:
    """`function (file.py:line)` → `function (file.py)`."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0].rstrip(')')})" if where else name


def parse_stack(line: str) -> tuple[str, str, str, int] | None:
    """(process, task, innermost frame, samples) of a raw py-spy line."""
    stack, _, count = line.rpartition(" ")
    if not count.isdigit():
        return None
    process = "?"
    while match := _PROCESS.match(stack):
        process = f"{match[1]} {match[2]}"
        stack = stack[match.end() :]
    frames = [f for f in stack.split(";") if f and not f.startswith("thread ")]
    if not frames:
        return None
    loop = max((i for i, f in enumerate(frames) if f.startswith(_LOOP)), default=-1)
    if loop + 1 == len(frames):
        return process, "(the event loop itself: timers, I/O polling)", "-", int(count)
    return process, frame_name(frames[loop + 1]), frame_name(frames[-1]), int(count)


def summarise_py_spy(path: Path, seconds: float, rate: int, top: int = 10) -> None:
    """Per process: how many samples caught it running, in which task (the coroutine or callback
    the event loop was running) and where (the innermost frames)."""
    by_process: dict[str, Counter[tuple[str, str]]] = {}
    for line in path.read_text(errors="replace").splitlines():
        parsed = parse_stack(line)
        if parsed is not None:
            process, task, leaf, count = parsed
            by_process.setdefault(process, Counter())[(task, leaf)] += count
    expected = int(seconds * rate)
    print(f"py-spy: samples that caught a process running (of ~{expected} each at {rate}/s):")
    for process, stacks in sorted(by_process.items(), key=lambda kv: -sum(kv[1].values())):
        total = sum(stacks.values())
        print(f"  {process[:100]}: {total} ({100 * total / max(expected, 1):.1f}% of the time)")
        tasks: Counter[str] = Counter()
        for (task, _), n in stacks.items():
            tasks[task] += n
        for task, n in tasks.most_common(top):
            leaves = Counter({leaf: c for (t, leaf), c in stacks.items() if t == task})
            where = ", ".join(f"{leaf} {c}" for leaf, c in leaves.most_common(2))
            print(f"    {n:>6}  {task[:72]:<72}  in: {where[:140]}")


def report(cpu: TreeCpu, settle: float) -> None:
    print(
        f"idle over {cpu.seconds:.1f} s, {settle:g} s after it started"
        " (% of one core; wake-ups = context switches per second):"
    )
    print(f"  {'':<52}{'procs':>6}{'CPU s':>8}{'% core':>8}{'wake/s':>9}")
    rows = cpu.by_role()
    for part in (*PARTS, "other"):
        mine = [u for u in rows if u.part == part]
        if not mine:
            continue
        cpu_seconds = sum(u.cpu_seconds for u in mine)
        switches = sum(u.switches for u in mine) / cpu.seconds
        print(
            f"  {part:<52}{sum(u.processes for u in mine):>6}{cpu_seconds:>8.2f}"
            f"{cpu.share(cpu_seconds):>8.2f}{switches:>9.0f}"
        )
        for u in mine:
            print(
                f"    {u.role:<50}{u.processes:>6}{u.cpu_seconds:>8.2f}"
                f"{cpu.share(u.cpu_seconds):>8.2f}{u.switches / cpu.seconds:>9.0f}"
            )
    total = sum(u.cpu_seconds for u in rows)
    switches = sum(u.switches for u in rows) / cpu.seconds
    print(
        f"  {'WHOLE TREE':<52}{sum(u.processes for u in rows):>6}{total:>8.2f}"
        f"{cpu.share(total):>8.2f}{switches:>9.0f}"
    )
    verdict = "meets" if cpu.share(total) < GOAL_PERCENT else "MISSES"
    print(f"goal {GOAL}: {verdict} it ({cpu.share(total):.1f}%)")
    print(
        f"machine: {cpu.machine_share():.0f}% busy of all cores over the window (other work"
        " included: on a busy machine the same work takes longer)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the idle window")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds after start, before")
    add_database_option(parser)
    parser.add_argument("--py-spy", type=Path, metavar="FILE", help="record the Python processes")
    parser.add_argument("--py-spy-rate", type=int, default=100, help="samples per second")
    parser.add_argument("--keep", action="store_true", help="keep REGISTRAR_HOME and up's log")
    args = parser.parse_args()

    up = RegistrarUp(database=args.database, keep=args.keep)
    with up:
        up.start(settle=0)
        database = "embedded PostgreSQL" if args.database == "embedded" else "machine's PostgreSQL"
        print(
            f"registrar up ({database}, embedded broker) started in {up.started_in:.1f} s;"
            f" settling {args.settle:g} s, then measuring {args.seconds:g} s"
        )
        time.sleep(args.settle)
        spy = None
        if args.py_spy is not None:
            spy = start_py_spy(up.pid, args.py_spy, args.seconds, args.py_spy_rate)
        cpu = TreeCpu(up)
        cpu.start()
        end = time.perf_counter() + args.seconds
        while (left := end - time.perf_counter()) > 0:
            time.sleep(min(1.0, left))
            cpu.sample()
        cpu.stop()
        ok = up.alive()
        if not ok:
            up.failed = True
            print(f"registrar up ended during the window; its log ends:\n{up.tail(20)}")
        report(cpu, args.settle)
        if spy is not None:
            try:
                _, errors = spy.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
                _, errors = spy.communicate()
            if spy.returncode == 0 and args.py_spy.exists():
                summarise_py_spy(args.py_spy, args.seconds, args.py_spy_rate)
                print(f"py-spy profile: {args.py_spy} (bench/profile_summary.py summarises it)")
            else:
                print(f"py-spy failed ({spy.returncode}): {errors.decode(errors='replace')[-500:]}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
