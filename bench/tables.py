"""DataFrames as Markdown and LaTeX tables: the one cell format of every table the harness prints or writes."""

from __future__ import annotations

import pandas as pd


def cell(value) -> str:
    """One table cell: empty for None/NaN, floats to 4 significant digits, anything else as str()."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table: the header from df's columns, one row per row of df."""
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def latex(df: pd.DataFrame) -> str:
    """A booktabs tabular: the first two columns left-aligned (names), the rest right-aligned (numbers)."""
    escape = lambda s: str(s).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")
    lines = [r"\begin{tabular}{" + "l" * 2 + "r" * (len(df.columns) - 2) + "}", r"\toprule",
             " & ".join(escape(c) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(escape(cell(v)) for v in row) + r" \\" for row in df.itertuples(index=False)]
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"]) + "\n"
