"""The shared argument checks: accepted values come back converted, rejected ones name field and range."""

import math

import pytest

from fastpinn.validation import check_choice, check_flag, check_int, check_number, check_optional_int


def test_int_accepts_and_bounds():
    assert check_int("epochs", 5, minimum=1) == 5
    for bad in (0, True, 2.0, "3", None):
        with pytest.raises(ValueError, match=r"^epochs must be an integer >= 1, got "):
            check_int("epochs", bad, minimum=1)
    with pytest.raises(ValueError, match=r"in \[1, 4\]"):
        check_int("k", 5, minimum=1, maximum=4)


def test_optional_int_names_none():
    assert check_optional_int("patience", None, minimum=1) is None
    with pytest.raises(ValueError, match="patience must be None or an integer >= 1, got 0"):
        check_optional_int("patience", 0, minimum=1)


def test_number_open_bounds_inf_and_nan():
    assert check_number("beta", 0, minimum=0, maximum=1, high_open=True) == 0.0
    with pytest.raises(ValueError, match=r"beta must be a finite number in \[0, 1\), got 1.0"):
        check_number("beta", 1.0, minimum=0, maximum=1, high_open=True)
    with pytest.raises(ValueError, match=r"> 0"):
        check_number("lr", 0.0, minimum=0, low_open=True)
    assert check_number("p", math.inf, minimum=1, finite=False) == math.inf
    for bad in (math.nan, math.inf, True, "1"):
        with pytest.raises(ValueError, match="^lr must be"):
            check_number("lr", bad, minimum=0, low_open=True)


def test_choice_and_flag():
    assert check_choice("dtype", "float32", ("float32", "float64")) == "float32"
    with pytest.raises(ValueError, match="dtype must be one of float32, float64, got 'f16'"):
        check_choice("dtype", "f16", ("float32", "float64"))
    assert check_flag("keep_best", False) is False
    with pytest.raises(ValueError, match="keep_best must be True or False, got 1"):
        check_flag("keep_best", 1)
