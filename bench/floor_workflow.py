"""The floor workflow of `bench/floor.py`: signal-with-start, trivial local activities, a call.

Imports nothing but the SDK, so the sandbox's cost for it is the SDK's own.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

FLOOR_TYPE = "BenchFloorWorkflow"


@activity.defn(name="floor_step")
async def floor_step(n: int) -> int:
    """A trivial local activity: the cost of one step without its work."""
    return n


@workflow.defn(name=FLOOR_TYPE)
class FloorWorkflow:
    """Signal-with-start, `locals` trivial local activities, then the callback activity."""

    def __init__(self) -> None:
        self._events = 0

    @workflow.run
    async def run(self, target: list[str], locals_: int) -> int:
        """Run the steps; return the callback's status."""
        for n in range(locals_):
            await workflow.execute_local_activity(
                floor_step, n, start_to_close_timeout=timedelta(seconds=10)
            )
        return int(
            await workflow.execute_activity(
                "floor_callback", target, start_to_close_timeout=timedelta(seconds=10)
            )
        )

    @workflow.signal(name="event")
    def event(self, _n: int) -> None:
        """An event, counted like the dispatcher's digest."""
        self._events += 1
