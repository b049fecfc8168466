"""Run every `bench/bench_*.py` (or the ones named) and print their figures.

python -m bench            full sizes
python -m bench --short    CI's quick report
python -m bench journal    only bench_journal.py
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time

import bench


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmark names (bench_NAME.py); default all")
    parser.add_argument("--short", action="store_true", help="small sizes, for a quick report")
    args = parser.parse_args()
    found = sorted(
        m.name[len("bench_") :] for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )
    unknown = set(args.names) - set(found)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; known: {found}")
    failed = 0
    for name in args.names or found:
        print(f"\n=== bench_{name} {'(short)' if args.short else ''}", flush=True)
        start = time.perf_counter()
        try:
            importlib.import_module(f"bench.bench_{name}").main(short=args.short)
        except Exception as exc:  # a report, not a gate: say what broke and go on
            failed += 1
            print(f"bench_{name} failed: {exc!r}", flush=True)
        print(f"--- bench_{name}: {time.perf_counter() - start:.1f}s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
