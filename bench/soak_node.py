"""The collector under test in bench/soak.py: ``quietly serve``'s app on its event
loop, plus a switch for storage outages.

SIGUSR1 detaches the ``events`` table of the embedded ClickHouse (every insert and
id lookup fails, as when a server is down), SIGUSR2 attaches it again. If the
outage file exists when it starts, it detaches right after start-up, so an outage
outlasts a SIGKILL. Settings come from ``QUIETLY_*`` variables.

    python bench/soak_node.py --data-dir D --outage-file F
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from quietly_collector.commands.main import loop_factory
from quietly_collector.pipeline.collector import COLLECTOR
from quietly_collector.server.app import init_app, start_server
from quietly_collector.settings import Settings, load_settings
from quietly_collector.storage.store import StorageError


async def _node(settings: Settings, outage_file: Path) -> None:
    app = init_app(settings)
    runner, port = await start_server(app, "127.0.0.1", 0)
    store = app[COLLECTOR].store

    async def storage(up: bool) -> None:
        for _ in range(300):
            try:
                await asyncio.to_thread(store.command, "ATTACH TABLE events" if up
                                        else "DETACH TABLE events")
                return
            except StorageError as exc:
                # "detached but still used by some query": an insert still holds it.
                print(f"soak-node: {exc}", file=sys.stderr, flush=True)
                if "retry later" not in str(exc).lower():
                    return  # already in that state
                await asyncio.sleep(0.1)

    tasks: set[asyncio.Task[None]] = set()

    def toggle(up: bool) -> None:
        task = asyncio.create_task(storage(up))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    if outage_file.exists():
        await storage(False)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, toggle, False)
    loop.add_signal_handler(signal.SIGUSR2, toggle, True)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"soak-node: listening on http://127.0.0.1:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--outage-file", type=Path, required=True)
    args = parser.parse_args()
    settings = load_settings(overrides={"data_dir": str(args.data_dir), "port": 0})
    # The event loop serve would run on (event_loop: uvloop where installed).
    factory, name = loop_factory(settings.event_loop)
    print(f"soak-node: event loop {name}", flush=True)
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_node(settings, args.outage_file))


if __name__ == "__main__":
    main()
