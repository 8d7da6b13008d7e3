"""The tables behind ``quietly simulate`` (simulate_model.py): releases and their
crash rates and speed, features, timings, screens, errors, crashes, personas, the
onboarding experiment and build outcomes per release."""

from __future__ import annotations

import itertools

# (version, release as a fraction of the window): upgrades appear mid-history.
RELEASES = (("1.4.0", -1.0), ("1.4.2", 0.3), ("1.5.0", 0.65))
CRASH_PER_SESSION = {"1.4.0": 0.03, "1.4.2": 0.02, "1.5.0": 0.01}
# How much slower (>1) or faster each release is per operation than the baseline.
VERSION_SPEED = {"1.4.0": {"startup": 1.25, "search": 1.3, "build": 1.2},
                 "1.4.2": {"startup": 1.1, "search": 1.2},
                 "1.5.0": {"startup": 0.85, "search": 0.75, "autocomplete": 0.8, "build": 0.9}}

# feature: (popularity weight, median duration ms, success rate)
FEATURES: dict[str, tuple[float, float, float]] = {
    "autocomplete": (30, 400, 0.97), "search": (18, 4_000, 0.98),
    "go_to_definition": (10, 800, 0.96), "terminal": (12, 60_000, 0.99),
    "git.commit": (9, 20_000, 0.97), "debugging": (8, 180_000, 0.8),
    "test.run": (8, 25_000, 0.75), "refactor.rename": (6, 3_000, 0.95),
    "format.document": (5, 600, 0.99), "find_references": (4, 1_500, 0.97),
    "git.push": (4, 6_000, 0.93), "ai.explain": (2, 9_000, 0.9),
    "multi_cursor": (1.5, 5_000, 0.99), "snippets.insert": (1.2, 700, 0.99),
    "refactor.extract_method": (1.0, 8_000, 0.9), "extensions.install": (0.8, 15_000, 0.95),
    "code_review": (0.8, 300_000, 0.97), "notebook.run": (0.7, 12_000, 0.9),
    "ai.generate_tests": (0.6, 20_000, 0.85), "docker.build": (0.5, 90_000, 0.85),
    "remote.ssh": (0.4, 30_000, 0.9), "profiler": (0.3, 120_000, 0.95),
}
# operation: (median ms, log-spread, share of slow outliers)
TIMINGS = {"startup": (1_400, 0.35, 0.03), "file_open": (45, 0.6, 0.02),
           "search": (40, 0.5, 0.02), "autocomplete": (28, 0.5, 0.01),
           "build": (1_000, 0.5, 0.03)}
SCREENS = ("editor", "editor", "editor", "search", "git", "debug", "terminal",
           "settings", "extensions", "problems")
ERRORS = (("lsp.timeout", "E_TIMEOUT", "The language server did not answer within 5000 ms"),
          ("git.push_rejected", "non_fast_forward", "Updates were rejected: fetch first"),
          ("extension.load_failed", "E_ACTIVATE", "Extension host terminated unexpectedly"),
          ("network.offline", "ENOTFOUND", "Could not resolve marketplace host"),
          ("file.save_failed", "EACCES", "Permission denied: /home/dana/app/.env"))
CRASHES = (("KeyError", "'project_root'", "ide/workspace/config.py", "load_workspace"),
           ("IndexError", "list index out of range", "ide/editor/buffer.py", "apply_edit"),
           ("RecursionError", "maximum recursion depth exceeded", "ide/lsp/symbols.py", "walk"),
           ("OSError", "[Errno 28] No space left on device", "ide/cache/index.py", "flush"),
           ("PermissionError", "[Errno 13] Permission denied: '/home/sam/proj/.git/index.lock'",
            "ide/git/repo.py", "commit"),
           ("SIGSEGV", "segmentation fault in the renderer", "renderer/gpu.c", "draw_glyphs"))
ACTIONS = ("feature", "file_open", "autocomplete", "search", "build", "screen", "error")
ACTION_CUM = list(itertools.accumulate((50, 16, 14, 5, 4, 7, 1.2)))
NPS_WEIGHTS = (1, 1, 1, 2, 2, 4, 6, 10, 18, 22, 20)  # ~48% promoters, ~20% detractors
# persona: (share, chance of being active on a day, daily churn hazard)
PERSONAS = {"core": (0.25, 0.85, 0.01), "regular": (0.5, 0.55, 0.025),
            "casual": (0.25, 0.25, 0.05)}

# The onboarding experiment: the guided tour nearly ends the share of users who only look
# around in their first session (and mostly never come back); the checklist changes
# nothing. So `quietly query experiment --name onboarding_tour --goal feature_used
# --window 1d` shows one real effect and one null.
EXPERIMENT = "onboarding_tour"
EXPLORER_SHARE = {"control": 0.25, "checklist": 0.25, "guided_tour": 0.03}
# build_finished: success per release (1.4.0 shipped a broken incremental compiler).
BUILD_SUCCESS = {"1.4.0": 0.72, "1.4.2": 0.9, "1.5.0": 0.96}
BUILD_KINDS = ("incremental", "incremental", "incremental", "full", "test")
