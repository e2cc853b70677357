"""HTML reports of suites: tables, plots and provenance rendered with Jinja2."""
