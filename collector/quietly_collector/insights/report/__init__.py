"""KPI summaries over a period, compared with the period before (``quietly report``).

The dashboard reads the same figures, so a report and a dashboard never disagree.
"""
