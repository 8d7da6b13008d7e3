from __future__ import annotations

from quietly_collector.commands.main import main

raise SystemExit(main())
