"""Reports: figures (matplotlib, headless) and self-contained HTML pages."""

from fmlab.report.html import write_index, write_run_report

__all__ = ["write_index", "write_run_report"]
