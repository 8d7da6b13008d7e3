"""The built-in dashboard at ``/dashboard``: server-rendered HTML and inline SVG.

No script, font or stylesheet is fetched from anywhere (the pages carry their own
CSS and a Content-Security-Policy that forbids the rest), so it works offline
and tells no third party who looks at the numbers.
"""
