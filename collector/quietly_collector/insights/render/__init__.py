"""HTML and SVG that the dashboard and the HTML report share: charts, the stylesheet."""
