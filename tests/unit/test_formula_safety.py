from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from uvm_reporting.exports.formula_safety import FORMULA_TRIGGERS, neutralise_formula


@given(st.text())
def test_no_neutralised_cell_starts_a_formula(value: str) -> None:
    assert not neutralise_formula(value).startswith(FORMULA_TRIGGERS)


@given(st.text())
def test_the_original_text_is_kept_after_at_most_one_quote(value: str) -> None:
    result = neutralise_formula(value)
    assert result in (value, "'" + value)


@given(st.text().filter(lambda text: not text.startswith(FORMULA_TRIGGERS)))
def test_harmless_text_is_unchanged(value: str) -> None:
    assert neutralise_formula(value) == value


def test_known_payloads_are_neutralised() -> None:
    for payload in ('=HYPERLINK("http://evil","x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"):
        assert neutralise_formula(payload) == "'" + payload
