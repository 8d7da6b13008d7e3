"""``quietly import``: load local events files (the SDK's local mode) into a running collector.

Each line of a file is one wire event, exactly as in the ``events`` array of
``POST /v1/batch``. Lines are posted there in gzip batches, so validation,
scrubbing and duplicate detection apply as to live traffic: importing a file
twice stores each event once, and an interrupted import can simply be rerun.
"""

from __future__ import annotations

import argparse
import email.utils
import gzip
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from quietly_collector.commands.flags import add_setting_flags
from quietly_collector.settings import Settings

BATCH_EVENTS = 500
# Uncompressed bytes per batch: half the collector's default decompressed limit.
BATCH_BYTES = 4 << 20
MAX_ATTEMPTS = 8  # per batch, for 429/503 answers
MAX_WAIT_SECONDS = 60.0
TIMEOUT_SECONDS = 60.0


class ImportFailed(Exception):
    """The import cannot go on: collector unreachable, key refused, or busy for too long."""


@dataclass
class Line:
    number: int
    data: bytes


@dataclass
class FileResult:
    path: Path
    events: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    unreadable: list[tuple[int, str]] = field(default_factory=list)


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_lines(path: Path, result: FileResult) -> Iterator[Line]:
    """Events of a file, re-encoded as strict JSON; blank lines are skipped and
    unreadable ones recorded in ``result`` with their line number."""
    with _open(path) as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            result.events += 1
            try:
                obj = json.loads(raw, parse_constant=_reject_constant)
            except ValueError as exc:  # includes bad UTF-8 and NaN/Infinity
                result.unreadable.append((number, f"not JSON ({exc})"))
                continue
            if not isinstance(obj, dict):
                result.unreadable.append((number, "not a JSON object (one event per line)"))
                continue
            yield Line(number, json.dumps(obj, separators=(",", ":")).encode())


def _batches(lines: Iterator[Line], max_events: int) -> Iterator[list[Line]]:
    batch: list[Line] = []
    size = 0
    for line in lines:
        if batch and (len(batch) >= max_events or size + len(line.data) > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(line)
        size += len(line.data) + 1
    if batch:
        yield batch


def _retry_after(value: str | None) -> float:
    if not value:
        return 1.0
    try:
        seconds = float(value)
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)  # the HTTP-date form
        seconds = when.timestamp() - time.time() if when else 1.0
    return min(max(seconds, 0.0), MAX_WAIT_SECONDS)


class Importer:
    def __init__(
        self,
        url: str,
        write_key: str,
        batch_events: int = BATCH_EVENTS,
        log: IO[str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.endpoint = url.rstrip("/") + "/v1/batch"
        self.write_key = write_key
        self.batch_events = max(1, batch_events)
        self.log = log or sys.stderr
        self.sleep = sleep

    def import_file(self, result: FileResult) -> None:
        """Send ``result.path``, counting into ``result`` as batches are answered."""
        for batch in _batches(read_lines(result.path, result), self.batch_events):
            self._send(batch, result)

    def _send(self, batch: list[Line], result: FileResult) -> None:
        body = b'{"events":[' + b",".join(ln.data for ln in batch) + b"]}"
        status, answer = self._post(body)
        if status == 200:
            result.accepted += int(answer["accepted"])
            result.duplicates += int(answer["duplicates"])
            for r in answer["rejected"]:
                index = int(r["index"])
                # The reason's path is relative to the batch; the line is the event.
                reason = str(r["reason"]).replace(f"$.events[{index}]", "$")
                result.rejected.append((batch[index].number, reason))
            return
        error = str(answer.get("error", answer))
        if status in (400, 413):
            if len(batch) > 1:  # one event spoils the body: halve until it is found
                half = len(batch) // 2
                self._send(batch[:half], result)
                self._send(batch[half:], result)
            else:
                result.rejected.append((batch[0].number, error))
            return
        if status in (401, 403):
            raise ImportFailed(f"the collector refused the write key: {error}")
        raise ImportFailed(f"the collector answered {status}: {error}")

    def _post(self, body: bytes) -> tuple[int, dict[str, Any]]:
        data = gzip.compress(body, compresslevel=5)
        headers = {
            "Authorization": f"Bearer {self.write_key}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        }
        for attempt in range(1, MAX_ATTEMPTS + 1):
            req = urllib.request.Request(self.endpoint, data=data, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=TIMEOUT_SECONDS) as resp:
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                status, text = exc.code, exc.read()
                if status not in (429, 503):
                    try:
                        return status, json.loads(text)
                    except ValueError:
                        return status, {"error": text.decode("utf-8", "replace")[:500]}
                wait = _retry_after(exc.headers.get("Retry-After"))
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise ImportFailed(
                    f"cannot reach a collector at {self.endpoint} ({reason})"
                ) from None
            if attempt < MAX_ATTEMPTS:
                print(f"quietly import: collector busy ({status}), retrying in {wait:g} s",
                      file=self.log, flush=True)
                self.sleep(wait)
        raise ImportFailed(f"the collector was still busy after {MAX_ATTEMPTS} attempts")


def print_report(results: list[FileResult], out: IO[str]) -> None:
    for r in results:
        print(f"{r.path}: {r.events} events: {r.accepted} accepted, {r.duplicates} duplicates,"
              f" {len(r.rejected)} rejected, {len(r.unreadable)} unreadable", file=out)
        for kind, items in (("rejected", r.rejected), ("unreadable", r.unreadable)):
            for number, reason in sorted(items):
                print(f"  {r.path}:{number}: {kind}: {reason}", file=out)
    if len(results) > 1:
        total = FileResult(Path("total"))
        for r in results:
            total.events += r.events
            total.accepted += r.accepted
            total.duplicates += r.duplicates
        print(f"total: {total.events} events: {total.accepted} accepted,"
              f" {total.duplicates} duplicates,"
              f" {sum(len(r.rejected) for r in results)} rejected,"
              f" {sum(len(r.unreadable) for r in results)} unreadable", file=out)


def run_import(
    paths: list[Path], url: str, write_key: str, batch_events: int, out: IO[str]
) -> int:
    """0 when every line got a verdict (even a rejection), 1 when the import stopped."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(f"quietly import: no such file: {', '.join(map(str, missing))}", file=sys.stderr)
        return 1
    importer = Importer(url, write_key, batch_events)
    results: list[FileResult] = []
    try:
        for path in paths:
            results.append(FileResult(path))
            importer.import_file(results[-1])
    except ImportFailed as exc:
        print_report(results, out)
        print(f"quietly import: {exc}. Events already stored are recognised as duplicates:"
              " run the import again.", file=sys.stderr)
        return 1
    except OSError as exc:  # the file itself (e.g. a damaged .gz)
        print_report(results, out)
        print(f"quietly import: cannot read {results[-1].path}: {exc}", file=sys.stderr)
        return 1
    print_report(results, out)
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "import", help="load local events files (JSONL, one event per line) into a collector"
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE",
                   help="JSONL, one wire event per line (.gz is read as gzip)")
    p.add_argument("--url", default=None,
                   help="collector to send to (default http://127.0.0.1:8080, env QUIETLY_URL)")
    p.add_argument("--write-key", default=None,
                   help="write key of the project (env QUIETLY_WRITE_KEY; default: the"
                   " development key in the data directory)")
    p.add_argument("--batch-size", type=int, default=500, help="events per request")
    add_setting_flags(p, ("data_dir",))


def run(args: argparse.Namespace, settings: Settings) -> int:
    from quietly_collector.access.credentials import DEV_KEY_FILE


    url = args.url or os.environ.get("QUIETLY_URL") or "http://127.0.0.1:8080"
    key = args.write_key or os.environ.get("QUIETLY_WRITE_KEY")
    if not key:
        try:
            key = (settings.data_path / DEV_KEY_FILE).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            print("quietly: no write key: set QUIETLY_WRITE_KEY or --write-key", file=sys.stderr)
            return 2
    return run_import(args.files, url, key, args.batch_size, sys.stdout)
