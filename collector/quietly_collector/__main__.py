from __future__ import annotations

from quietly_collector.cli import main

raise SystemExit(main())
