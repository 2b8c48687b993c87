"""What the scheme declarations generate: validation, identity, description, config dict and command-line
options, for every registered scheme and every declared parameter; and a scheme added in this file alone."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass

import pytest

import fastpinn
from fastpinn.schemes import (SCHEME_NAMES, GradientStatsScheme, Param, add_scheme_options, param, register,
                              scheme_class, scheme_from_dict, scheme_from_name, scheme_params_from_args)


def _declared() -> list[tuple[str, str, Param]]:
    return [(name, key, spec) for name in SCHEME_NAMES for key, spec in scheme_class(name).parameters().items()]


def _allowed(spec: Param, value) -> bool:
    try:
        spec.check(value)
        return True
    except ValueError:
        return False


def other_allowed_value(spec: Param):
    """Another allowed value of a parameter (None: it has only one, e.g. tau of a scheme trained every step)."""
    d = spec.default
    if spec.kind == "bool":
        return not d
    if spec.kind == "str":
        return next(c for c in spec.choices if c != d)
    if spec.kind == "int":
        candidates = [c for c in (spec.choices or ()) if c != d] or [(d or 1) + 1, (d or 1) - 1, 7]
    elif spec.kind == "float":
        candidates = [d * 0.5, d + 0.25, 1.0 - (1.0 - d) / 2, 0.0, 3.0, math.inf]
    elif spec.kind == "floats":
        candidates = [(1.0, 2.0)] if d is None else [(d[0] / 2, *d[1:])]
    else:
        candidates = [(0, 4)] if d is None else [(d[0] + 1, *d[1:])]
    good = [c for c in candidates if c != d and _allowed(spec, c)]
    return good[0] if good else None


@pytest.mark.parametrize("name, key, spec", _declared(), ids=lambda v: v if isinstance(v, str) else "")
def test_changing_any_declared_parameter_changes_identity_and_description(name, key, spec):
    """A run is never reused for another configuration: every declared parameter is part of the identity."""
    base = scheme_from_name(name)
    other = other_allowed_value(spec)
    if other is None:
        assert spec.choices is not None and len(spec.choices) == 1, f"{name}.{key}: no other allowed value found"
        return
    changed = scheme_from_name(name, **{key: other})
    assert changed != base
    assert changed.identity() != base.identity(), (name, key, other)
    assert changed.describe() != base.describe(), (name, key, other)  # a non-default value is shown
    # JSON round trip of the config dict (inf as "inf", tuples as lists)
    text = json.dumps(changed.to_dict(), allow_nan=False)
    assert scheme_from_dict(json.loads(text)) == changed


@pytest.mark.parametrize("name, key, spec", _declared(), ids=lambda v: v if isinstance(v, str) else "")
def test_a_bad_value_of_any_parameter_is_one_line_naming_it(name, key, spec):
    with pytest.raises(ValueError) as info:
        scheme_from_name(name, **{key: "not-a-value"})
    message = str(info.value)
    assert "\n" not in message and spec.name in message and "'not-a-value'" in message


def test_identity_lists_every_declared_parameter_json_safe():
    ident = fastpinn.DN(beta=0.99, p=math.inf).identity()
    assert ident == {"scheme": "dn", "beta": 0.99, "p": "inf", "bias_correction": False, "tau": 10}
    json.dumps(ident, allow_nan=False)
    assert fastpinn.SoftAdapt(temperature=5.0).identity()["temperature"] == 5.0
    assert fastpinn.ReLoBRaLo(alpha=0.5).identity()["alpha"] == 0.5
    for name in SCHEME_NAMES:
        s = scheme_from_name(name)
        assert set(s.identity()) == {"scheme", *s.parameters()}


def test_descriptions_show_declared_parameters_only():
    assert fastpinn.DN(beta=0.99, p=1).describe() == "DN-PINN (β=0.99, p=1)"
    assert fastpinn.DN().describe() == "DN-PINN (β=0.9)"
    assert fastpinn.DN().describe(show=("p",)) == "DN-PINN (β=0.9, p=2)"
    assert fastpinn.MA(form="wang", tau=5, bias_correction=True).describe() == "MA-PINN (β=0.9, bias corr., τ=5, form=wang)"
    assert fastpinn.PINN().describe() == "PINN"
    assert fastpinn.LRA(alpha=0.5).describe() == "LRA (α=0.5)"
    soft = fastpinn.SoftAdapt().describe()
    assert soft == "SoftAdapt (T=0.1)" and "β" not in soft  # the header once said "SOFTADAPT-PINN (β=0.9)"


def test_scheme_from_name_refuses_parameters_the_scheme_does_not_declare():
    with pytest.raises(ValueError, match="scheme 'softadapt' has no parameter 'beta'"):
        scheme_from_name("softadapt", beta=0.5)
    assert scheme_from_name("ma", ma_form="wang") == scheme_from_name("ma", form="wang") == fastpinn.MA(form="wang")
    with pytest.raises(ValueError, match="scheme must be one of"):
        scheme_from_name("softmax")


def test_base_classes_agree_with_what_the_weighter_reads():
    for name in SCHEME_NAMES:
        scheme = scheme_from_name(name)
        w = fastpinn.Weighter(scheme, n_terms=2)
        assert w.reads == type(scheme).reads, name
        assert isinstance(scheme, fastpinn.schemes.Scheme)
    assert isinstance(fastpinn.GradNorm(), fastpinn.schemes.StatefulStatsScheme)
    assert not isinstance(fastpinn.GradNorm(), fastpinn.schemes.LossScheme)  # it reads gradient statistics
    assert isinstance(fastpinn.NTK(), fastpinn.schemes.TraceScheme)


# ----------------------------------------------------------------------------------- command-line options
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_scheme_options(parser)
    return parser


def test_every_parameter_key_is_one_option_defaulting_to_the_schemes_own():
    parser = _parser()
    args = parser.parse_args([])
    for _, key, _ in _declared():
        assert getattr(args, key) is None
    help_text = parser.format_help()
    assert "--temperature" in help_text and "0.1 for softadapt, relobralo" in help_text
    assert "--alpha" in help_text and "gradnorm: " in help_text  # different meanings: each scheme's help
    args = parser.parse_args(["--p", "inf", "--no-bias-correction", "--weights-betas", "0.5,0.9", "--subsample",
                              "none", "--columns", "0,8"])
    assert args.p == math.inf and args.bias_correction is False and args.weights_betas == (0.5, 0.9)
    assert args.subsample is None and args.columns == (0, 8)


def test_options_build_the_scheme_and_refuse_what_it_does_not_read():
    parser = _parser()
    args = parser.parse_args(["--temperature", "5.0", "--tau", "3"])
    params = scheme_params_from_args(["softadapt"], args)
    assert scheme_from_name("softadapt", **params) == fastpinn.SoftAdapt(tau=3, temperature=5.0)
    with pytest.raises(ValueError) as info:
        scheme_params_from_args(["dn"], args)
    assert str(info.value) == ("--temperature is not an option of scheme 'dn' "
                               "(its options: --beta, --p, --bias-correction, --tau, --weight-min, --weight-max, "
                               "--weight-warmup)")
    # the user trial: LRA's listing left out the remedy options it accepts (--weight-max 100 trains LRA with λ_max)
    with pytest.raises(ValueError) as info:
        scheme_params_from_args(["lra"], parser.parse_args(["--beta", "0.9"]))
    assert str(info.value) == ("--beta is not an option of scheme 'lra' (its options: --alpha, --tau, "
                               "--bias-correction, --weight-min, --weight-max, --weight-warmup)")
    assert scheme_params_from_args(["lra"], parser.parse_args(["--weight-max", "100"])) == {"weight_max": 100.0}
    # several schemes (compare): an option is fine if one of them reads it
    assert scheme_params_from_args(["dn", "softadapt"], args) == {"temperature": 5.0, "tau": 3}


def test_a_parameter_key_has_one_kind_across_schemes():
    @dataclass(frozen=True)
    class Clash(GradientStatsScheme):
        tau: float = param(1.5, help="not an integer")

    with pytest.raises(ValueError, match="tau"):
        register("clash", title="Clash")(Clash)
    assert "clash" not in SCHEME_NAMES
