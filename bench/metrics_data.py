"""The metrics benchmark's synthetic data set: its shape (installs, days, sessions,
insert block size) and ``load_sql``, the ``INSERT ... SELECT FROM numbers(...)`` that
generates the same IDE telemetry on every run."""

from __future__ import annotations

from datetime import date

# The data set's shape.
DAYS = 90
INSTALLS = 20_000
EVENTS_PER_SESSION = 25
START = date(2026, 8, 3)
LOAD_CHUNK = 1_000_000
# The collector inserts at most `flush_rows` rows at a time (default 50,000; 20,000
# before 2026-12-02), and each insert block fires the materialized views once: the
# aggregate tables get one partial row per key per block, which background merges fold
# later. 20,000-row blocks keep runs comparable, and leave more partial rows to fold.
BLOCK_ROWS = 20_000


# -- the data -------------------------------------------------------------------------


def _u(key: str, salt: int) -> str:
    """A uniform number in [0, 1) from a hash: every run loads the very same events."""
    return f"(cityHash64({key}, {salt}) / 18446744073709551616.)"


FEATURES = (
    "completion", "search", "debugging", "terminal", "git.commit", "format", "test.run",
    "refactor.rename", "go_to_definition", "find_references", "snippets", "multi_cursor",
    "git.blame", "outline", "lint.fix", "refactor.extract", "profiler", "docker",
    "notebook", "remote.ssh",
)
JOBS = ("ship_a_fix", "write_tests", "review_change", "refactor_module", "set_up_project")
OPERATIONS = ("startup", "file_open", "search", "autocomplete", "build", "idle")
# Median duration (ms) per timed operation; samples spread about 0.26x-3.8x around it.
OPERATION_MS = {"startup": 1800.0, "file_open": 80.0, "search": 45.0, "autocomplete": 30.0,
                "build": 1500.0}


def _sql_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def load_sql(first: int, count: int, start: date = START) -> str:
    """``count`` events, numbers ``first`` onwards, as ``INSERT ... SELECT``.

    Event ``n`` is position ``n % 25`` of session ``n // 25``: position 0 is
    session_start, 24 session_end (with the session's duration), the rest drawn from
    the mix below. A session falls on a day (more sessions as the user base grows)
    and an install among those that exist by then (20,000 in all, 30% there at the
    start, the rest arriving over the 90 days), the newer ones more likely: older
    installs drift away, which gives retention something to show. Installs with
    ``k % 3 = 0`` are ``my-cli``, the others ``my-ide``. Each install uses its own
    handful of features (the popular ones first), so breadth and adoption vary.
    """
    k_last = EVENTS_PER_SESSION - 1
    ops_ms = ", ".join(f"{v}" for v in OPERATION_MS.values())
    return f"""
INSERT INTO events (event_id, project, event, version, install_hash, session_hash, ts,
    client_ts, sent_at, received_at, ts_source, app, app_version, os, os_version, locale,
    sdk, sdk_version, consent, props)
SELECT generateUUIDv4(number), 'bench', ev, 1, cityHash64('install', k),
    cityHash64('session', s), t, t, t + toIntervalMillisecond(300),
    t + toIntervalMillisecond(800), 'sent_at_skew', app, ver, os, '6.1', 'en_US',
    if(app = 'my-cli', 'quietly-go', 'quietly-python'), '0.1.0', 'basic', props
FROM
(
    SELECT number,
        intDiv(number, {EVENTS_PER_SESSION}) AS s,
        number % {EVENTS_PER_SESSION} AS p,
        toUInt32(floor({DAYS} * pow({_u("s", 1)}, 0.75))) AS d,
        toUInt32(floor({INSTALLS} * (0.3 + 0.7 * (d + 1) / {DAYS}) * pow({_u("s", 2)}, 0.6)))
            AS k,
        -- each install sticks to its own few features (2-20, most use few)
        toUInt32(2 + floor({len(FEATURES) - 2} * pow({_u("k", 20)}, 2))) AS n_features,
        if(k % 3 = 0, 'my-cli', 'my-ide') AS app,
        multiIf(d >= 60 + k % 10, '1.5.0', d >= 30 + k % 10, '1.4.0', '1.3.0') AS ver,
        ['linux', 'macos', 'windows'][intDiv(k, 3) % 3 + 1] AS os,
        toUInt64(7 * 3600000 + cityHash64(s, 3) % (15 * 3600000)) AS start_ms,
        toUInt64(10000 + cityHash64(s, 4) % 230000) AS gap,
        if(p = 0 OR p = {k_last}, 0, cityHash64(number, 5) % intDiv(gap, 2)) AS jitter,
        toDateTime64('{start.isoformat()}', 3, 'UTC') + toIntervalDay(d)
            + toIntervalMillisecond(start_ms + p * gap + jitter) AS t,
        {_u("number", 6)} * 100 AS r,
        multiIf(p = 0, 'session_start', p = {k_last}, 'session_end',
                r < 52, 'feature_used', r < 73, 'performance', r < 84, 'screen_viewed',
                r < 88, 'job_started', r < 94, 'job_step', r < 97.5, 'job_completed',
                r < 98.3, 'error', r < 98.5, 'crash', r < 99, 'survey_response',
                r < 99.4, 'build_finished', r < 99.5, 'experiment_exposure',
                'deployment') AS ev,
        {_sql_list(JOBS)}[cityHash64(s, 7) % {len(JOBS)} + 1] AS job,
        {_u("number", 8)} AS v1,
        {_u("number", 9)} AS v2,
        {_u("number", 10)} AS v3,
        {_sql_list(OPERATIONS)}[cityHash64(number, 11) % {len(OPERATIONS)} + 1] AS op,
        exp(4 * (v1 + v2 + v3 - 1.5) / 3) AS spread,
        cityHash64(number, 12) AS pick,
        multiIf(
            ev = 'session_start', '{{}}',
            ev = 'session_end', concat('{{"duration_ms":', toString({k_last} * gap), '}}'),
            ev = 'feature_used', concat(
                '{{"feature":"',
                {_sql_list(FEATURES)}[toUInt32(floor(n_features * pow(v1, 1.5))) + 1],
                '","duration_ms":', toString(toUInt32(50 + v2 * 5000)),
                ',"success":', if(v3 < 0.95, 'true', 'false'), '}}'),
            ev = 'performance' AND op = 'idle', concat(
                '{{"operation":"idle","memory_mb":', printf('%.1f', 400 * spread),
                ',"cpu_pct":', printf('%.1f', 1.5 * spread), '}}'),
            ev = 'performance', concat(
                '{{"operation":"', op, '","duration_ms":',
                printf('%.1f', transform(op, {_sql_list(tuple(OPERATION_MS))}, [{ops_ms}], 100.)
                               * spread),
                ',"memory_mb":', printf('%.1f', 350 + 100 * v3), '}}'),
            ev = 'screen_viewed', concat(
                '{{"screen":"',
                ['editor', 'explorer', 'settings', 'terminal', 'debug'][pick % 5 + 1], '"}}'),
            ev = 'job_started', concat('{{"job":"', job, '"}}'),
            ev = 'job_step', concat(
                '{{"job":"', job, '","step":"step_', toString(pick % 4 + 1), '"}}'),
            ev = 'job_completed', concat(
                '{{"job":"', job, '","success":', if(v1 < 0.85, 'true', 'false'), '}}'),
            ev = 'error', concat(
                '{{"kind":"', ['IOError', 'TimeoutError', 'PermissionError'][pick % 3 + 1],
                '","code":"E', toString(intDiv(pick, 3) % 20), '"}}'),
            ev = 'crash', concat(
                '{{"kind":"', ['SIGSEGV', 'OutOfMemoryError', 'AssertionError'][pick % 3 + 1],
                '"}}'),
            ev = 'survey_response', multiIf(
                v1 < 0.6, concat('{{"survey":"nps","score":',
                                 toString(toUInt8(least(10, floor(11 * pow(v2, 0.6))))), '}}'),
                v1 < 0.9, concat('{{"survey":"job_satisfaction","score":',
                                 toString(toUInt8(least(10, floor(11 * pow(v2, 0.7))))),
                                 ',"job":"', job, '"}}'),
                v1 < 0.97, concat('{{"survey":"suggestion_relevance","score":',
                                  toString(toUInt8(floor(11 * v2))), ',"job":"', job, '"}}'),
                -- dismissed without a score: counted nowhere
                '{{"survey":"nps"}}'),
            ev = 'build_finished', concat(
                '{{"success":', if(v1 < multiIf(ver = '1.4.0', 0.75, 0.92), 'true', 'false'),
                ',"duration_ms":', toString(toUInt32(2000 + 90000 * pow(v2, 3))),
                ',"kind":"', ['incremental', 'full', 'test'][pick % 3 + 1], '"}}'),
            -- one variant per install (the first exposure decides in any case)
            ev = 'experiment_exposure', concat(
                '{{"experiment":"onboarding","variant":"',
                ['control', 'tour'][cityHash64(k, 13) % 2 + 1], '"}}'),
            concat('{{"environment":"', if(v1 < 0.7, 'production', 'staging'),
                   '","success":', if(v2 < 0.9, 'true', 'false'),
                   ',"duration_ms":', toString(toUInt32(30000 + v3 * 600000)), '}}')
        ) AS props
    FROM numbers({first}, {count})
)
"""


# Declared segments for the breakdown timings: one `segments` event per install, at its
# first event (so cohorts and days stay as loaded), with a channel, plan and team
# drawn from its hash.
SEGMENTS_SQL = """
INSERT INTO events (event_id, project, event, version, install_hash, session_hash, ts,
    client_ts, sent_at, received_at, ts_source, app, app_version, os, os_version, locale,
    sdk, sdk_version, consent, props)
SELECT generateUUIDv4(install_hash), 'bench', 'segments', 1, install_hash,
    argMin(session_hash, ts), min(ts) AS t, t, t, t, 'sent_at_skew', app, argMin(app_version, ts),
    argMin(os, ts), '6.1', 'en_US', any(sdk), '0.1.0', 'basic',
    concat('{"channel":"', ['beta', 'launch_week', 'organic', 'paid_ads', 'enterprise',
                            'referral', 'other'][install_hash % 7 + 1],
           '","plan":"', ['free', 'paid', 'enterprise'][intDiv(install_hash, 7) % 3 + 1],
           '","team":"', ['individual', 'team'][intDiv(install_hash, 21) % 2 + 1], '"}')
FROM events
GROUP BY install_hash, app
"""
