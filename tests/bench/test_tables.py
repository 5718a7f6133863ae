"""bench.tables: empty cells for missing values, 4 significant digits, and Markdown / LaTeX of one shape."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench.tables import cell, latex, markdown

DF = pd.DataFrame([{"model": "ddgan_t4", "steps": 4, "fid": 3.14159265, "recall": None},
                   {"model": "ddpm & ddim", "steps": 1000, "fid": float("nan"), "recall": 0.5}])


@pytest.mark.parametrize(("value", "text"), [(None, ""), (math.nan, ""), (3.14159265, "3.142"), (12345.6, "1.235e+04"),
                                             (4, "4"), ("ok", "ok")])
def test_cell_formats_missing_values_floats_and_the_rest(value, text):
    assert cell(value) == text


def test_markdown_has_a_header_a_rule_and_one_line_per_row():
    assert markdown(DF).splitlines() == ["| model | steps | fid | recall |", "|---|---|---|---|",
                                         "| ddgan_t4 | 4 | 3.142 |  |", "| ddpm & ddim | 1000 |  | 0.5 |"]


def test_latex_escapes_and_aligns_names_left_and_numbers_right():
    lines = latex(DF).splitlines()
    assert lines[0] == r"\begin{tabular}{llrr}" and lines[-1] == r"\end{tabular}"
    assert r"model & steps & fid & recall \\" in lines
    assert r"ddgan\_t4 & 4 & 3.142 &  \\" in lines and r"ddpm \& ddim & 1000 &  & 0.5 \\" in lines
