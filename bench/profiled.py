"""Run a module's `main()` under cProfile and write the stats when it stops (bench runs only).

python -m bench.profiled OUT.prof api
"""

from __future__ import annotations

import cProfile
import importlib
import signal
import sys
from types import FrameType


def _exit(_signum: int, _frame: FrameType | None) -> None:
    # uvicorn restores this handler and re-raises the signal it caught after shutting down:
    # exiting through Python (not the default handler) lets the stats be written.
    sys.exit(0)


def main() -> None:
    """Profile `python -m <module>` until it ends, then dump the stats to the given path."""
    out, module = sys.argv[1], sys.argv[2]
    sys.argv = [module, *sys.argv[3:]]
    signal.signal(signal.SIGTERM, _exit)
    target = importlib.import_module(f"{module}.__main__" if module == "api" else module)
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        target.main()
    finally:
        profiler.disable()
        profiler.dump_stats(out)


if __name__ == "__main__":
    main()
