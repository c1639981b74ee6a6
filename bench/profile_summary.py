"""Summarise a py-spy profile of the server: where its CPU goes, by function and by component.

    .venv/bin/python bench/profile_summary.py /tmp/registrar-profile.txt [--top 30]

Takes py-spy's raw format (collapsed stacks: `frame;frame;... count`, from `py-spy record
--format raw`, or `http_load.py --py-spy FILE.txt`). Prints:

  * self time per function (the frame on top of the stack);
  * inclusive time per component (a sample counts once for every component on its stack), and
    "exclusive" time per component (the component of the topmost frame);
  * inclusive time of selected "landmark" functions (validation, serialisation, SQL, ...);
  * inclusive time of Registrar's own functions.

Shares are of the samples py-spy took while the server's threads were running (idle excluded;
with --gil, only the thread holding the GIL). SQLAlchemy runs its driver calls in greenlets, whose
stacks py-spy shows without the frames that called them: inclusive shares of Registrar's functions
therefore leave out most of their SQL work. "By owner" has no such gap: read it first.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

# (component, pattern on the frame's file) in order: the first match names the frame.
COMPONENTS = [
    ("registrar: services/", r"^services/"),
    ("registrar: contracts/", r"^contracts/"),
    ("registrar: projections/", r"^projections/"),
    ("registrar: domain/", r"^domain/"),
    ("uvicorn (h11 protocol)", r"^(uvicorn/|h11/)"),
    ("fastapi", r"^fastapi/"),
    ("starlette", r"^starlette/"),
    ("pydantic", r"^(pydantic/|pydantic_core/)"),
    ("sqlalchemy", r"^sqlalchemy/"),
    ("asyncpg", r"^asyncpg/"),
    ("asyncio (event loop)", r"^asyncio/"),
    (
        "stdlib other",
        r"^(json/|uuid|typing|enum|dataclasses|copy|re/|functools|contextlib|"
        r"inspect|collections/|email/|urllib/|logging/|datetime|hashlib|abc|weakref|"
        r"threading|socket|selectors|ssl|http/)",
    ),  # fmt: skip
]
BASE = {"asyncio (event loop)", "stdlib other"} | {
    f"other: {name}"
    for name in (
        "<frozen _collections_abc>",
        "<frozen abc>",
        "<frozen os>",
        "<string>",
        "_weakrefset.py",
        "queue.py",
        "threading.py",
    )
}
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# Functions whose inclusive share answers "how much goes to X?" (matched on `function (file)`).
LANDMARKS = [
    ("FastAPI request handling: solve_dependencies", r"solve_dependencies \(fastapi/", None),
    (
        "FastAPI body read + JSON decode (Request.json/body)",
        r"(Request\.json|Request\.body) \(starlette/",
        None,
    ),
    (
        "FastAPI request validation (_validate_unwrapped... / request_body_to_args)",
        r"(request_body_to_args|_validate_value_with_model_field|validate) \(fastapi/",
        None,
    ),
    (
        "pydantic validation (any)",
        r"(validate_python|validate_json|__init__|model_validate) \(pydantic/",
        None,
    ),
    (
        "pydantic serialisation (model_dump / dump_python)",
        r"(model_dump|dump_python|model_copy) \(pydantic/",
        None,
    ),
    (
        "SQLAlchemy execute path (AsyncConnection.execute)",
        r"AsyncConnection\.execute \(sqlalchemy/",
        None,
    ),
    (
        "SQLAlchemy connect/checkout/begin/commit/close",
        r"(AsyncConnection\.(start|close|__aexit__|__aenter__)|AsyncTransaction|AsyncEngine\.begin|_ConnectionFairy|checkout|_checkin) \(sqlalchemy/",
        None,
    ),
    ("asyncpg protocol (bind/execute/prepare)", r"\(asyncpg/", None),
    (
        "Command handler: CommandHandler.handle",
        r"CommandHandler\.handle \(services/commands/command_handler",
        None,
    ),
    ("  event store append", r"PostgresEventStore\.append \(services/store/event_store", None),
    (
        "  event store resolve_name",
        r"PostgresEventStore\.resolve_name \(services/store/event_store",
        None,
    ),
    (
        "  load_stream (read_stream + fold)",
        r"CommandHandler\.load_stream \(services/commands/command_handler",
        None,
    ),
    ("  fold / evolve (state)", r"^(fold|evolve) \(domain/state", None),
    ("  decide", r"^decide \(domain/decider", None),
    (
        "  chain hashing (chain / chain_hash)",
        r"^(chain|chain_hash) \((services/store/event_store|contracts/envelope)",
        None,
    ),
    ("  snapshot (save_snapshot / state_to_json)", r"(_snapshot_if_due|state_to_json)", None),
    ("Projector (catch_up_once)", r"Projector\.catch_up_once \(services/projector/runner", None),
    ("Route: register_version", r"^register_version \(services/api/version_routes", None),
    (
        "Response: version_view + with_position/JSON render",
        r"(version_view|with_position|JSON\.render|_version_answer)",
        None,
    ),
    ("command_meta dependency (uuid7)", r"command_meta \(services/api/context", None),
]


def parse(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks.append((stack.split(";"), int(count)))
    return stacks


def short_file(frame: str) -> str:
    m = _FRAME.match(frame)
    return m.group("file") if m else frame


def strip_line(frame: str) -> str:
    m = _FRAME.match(frame)
    return f"{m.group('func')} ({m.group('file')})" if m else frame


def component(frame: str) -> str:
    file = short_file(frame)
    file = re.sub(r"^.*?site-packages/", "", file)
    for name, pattern in COMPONENTS:
        if re.search(pattern, file):
            return name
    return "other: " + (file.split("/", 1)[0] if "/" in file else file)


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("profile", type=Path, help="py-spy raw (collapsed stacks) file")
    args.add_argument("--top", type=int, default=30)
    opts = args.parse_args()
    stacks = parse(opts.profile)
    total = sum(n for _, n in stacks)
    if not total:
        print("no samples", file=sys.stderr)
        return 1

    def pct(n: int) -> str:
        return f"{100 * n / total:5.1f}%"

    self_time: Counter[str] = Counter()
    inclusive_fn: Counter[str] = Counter()
    comp_incl: Counter[str] = Counter()
    comp_excl: Counter[str] = Counter()
    owner: Counter[str] = Counter()
    landmark: Counter[str] = Counter()
    for frames, n in stacks:
        names = [strip_line(f) for f in frames]
        self_time[names[-1]] += n
        comp_excl[component(frames[-1])] += n
        owner[
            next(
                (c for c in map(component, reversed(frames)) if c not in BASE),
                "event loop / stdlib",
            )
        ] += n
        for name in set(names):
            inclusive_fn[name] += n
        for comp in {component(f) for f in frames}:
            comp_incl[comp] += n
        for label, pattern, _ in LANDMARKS:
            if any(re.search(pattern, name) for name in names):
                landmark[label] += n

    print(f"{opts.profile}: {total} samples (server threads running)\n")
    print("Exclusive by component (the component of the frame on top of the stack):")
    for comp, n in comp_excl.most_common():
        print(f"  {pct(n)}  {comp}")
    print("\nBy owner (the innermost frame that is not asyncio/stdlib: who asked for the work):")
    for comp, n in owner.most_common():
        print(f"  {pct(n)}  {comp}")
    print("\nInclusive by component (anywhere on the stack):")
    for comp, n in comp_incl.most_common(20):
        print(f"  {pct(n)}  {comp}")
    print("\nLandmarks (inclusive):")
    for label, _, _ in LANDMARKS:
        print(f"  {pct(landmark[label])}  {label}")
    print(f"\nTop {opts.top} functions by self time:")
    for name, n in self_time.most_common(opts.top):
        print(f"  {pct(n)}  {name}")
    print(f"\nTop {opts.top} of Registrar's own functions by inclusive time:")
    ours = [(name, n) for name, n in inclusive_fn.most_common()
            if re.search(r"\((services|contracts|projections)/", name)]  # fmt: skip
    for name, n in ours[: opts.top]:
        print(f"  {pct(n)}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
