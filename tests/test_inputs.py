"""Input defects of issue 16, each as its reproduction: a CSV with a byte-order mark, ``demo --epochs 0``,
``evaluate`` printing ``Infinity``, ``--threads`` above the cores; and the readers and writers behind them
(``fastpinn._io.read_csv``, ``json_text``, ``atomic_write_json``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fastpinn import _io, cli, threads

TRAIN = ["train", "poisson1d", "--epochs", "4", "--eval-every", "2", "--n-pde", "16", "--no-progress", "--no-figures",
         "--compile", "off", "--backend", "torch"]


def _strict_json(text: str):
    """``json.loads`` that refuses the non-standard NaN / Infinity / -Infinity tokens."""
    def refuse(token: str):
        raise ValueError(f"not standard JSON: {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("inputs") / "run"
    assert cli.main(TRAIN + ["--out", str(out)]) == 0
    return out


# ------------------------------------------------------------------------------------------ CSV
def test_predict_reads_every_row_of_a_csv_with_a_byte_order_mark(run_dir, tmp_path, capsys):
    # Excel's "CSV UTF-8" starts with a BOM; the first row "\ufeff0.25" was not a number, so it was taken for a
    # header and dropped without a word: 2 points in, 1 prediction out.
    pts = tmp_path / "pts.csv"
    pts.write_text("0.25\n0.5\n", encoding="utf-8-sig")
    assert pts.read_bytes().startswith(b"\xef\xbb\xbf")
    assert cli.main(["predict", str(run_dir), "--points", str(pts), "--out", str(tmp_path / "p.npy")]) == 0
    plain = tmp_path / "plain.csv"
    plain.write_text("0.25\n0.5\n")
    assert cli.main(["predict", str(run_dir), "--points", str(plain), "--out", str(tmp_path / "q.npy")]) == 0
    pred = np.load(tmp_path / "p.npy")
    assert pred.shape == (2, 1)
    np.testing.assert_array_equal(pred, np.load(tmp_path / "q.npy"))


def test_read_csv_header_or_data_first_row(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("x,y\n1,2\n3,4\n", encoding="utf-8-sig")  # a header after a BOM
    np.testing.assert_array_equal(_io.read_csv(f), [[1, 2], [3, 4]])
    f.write_text("# written by hand\n\n1,2\n\n3, 4\n")  # comments, blank lines, spaces
    np.testing.assert_array_equal(_io.read_csv(f), [[1, 2], [3, 4]])
    f.write_text('"x","y"\n-1e-3,inf\n')  # quoted names; inf is a number (read_points refuses it later)
    assert _io.read_csv(f).tolist() == [[-1e-3, math.inf]]
    f.write_text("0.5\n")
    assert _io.read_csv(f).shape == (1, 1)


@pytest.mark.parametrize("text,message", [
    ("x,1\n2,3\n", "line 1 mixes names and numbers"),
    ("1,2\n3\n", "line 2 has 1 columns, the first data row 2"),
    ("1,2\n3,y\n", "line 2 holds a field that is not a number"),
    ("", "holds no rows of numbers"),
    ("x,y\n", "holds no rows of numbers"),
])
def test_read_csv_refuses_what_it_cannot_read(tmp_path, text, message):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        _io.read_csv(f, "points")
    assert str(info.value).startswith(f"points file {str(f)!r}") and "\n" not in str(info.value)


def test_read_csv_refuses_a_binary_file(tmp_path):
    f = tmp_path / "bin.csv"
    f.write_bytes(b"\x80\x81\xff\x00")
    with pytest.raises(ValueError, match="is not a UTF-8 CSV text file"):
        _io.read_csv(f)


# ------------------------------------------------------------------------------------------ JSON
def test_evaluate_prints_standard_json(run_dir, tmp_path, capsys):
    # The reproduction: values that are all zero make the relative error infinite, printed as `Infinity`,
    # which JSON readers other than Python's refuse.
    (tmp_path / "pts.csv").write_text("0.25\n0.5\n")
    (tmp_path / "zeros.csv").write_text("0\n0\n")
    capsys.readouterr()
    argv = ["evaluate", str(run_dir), "--points", str(tmp_path / "pts.csv"), "--values", str(tmp_path / "zeros.csv"),
            "--out", str(tmp_path / "e.json")]
    assert cli.main(argv) == 0
    printed = _strict_json(capsys.readouterr().out)
    assert printed["rel_l2_mean"] is None and printed["rel_l2_per_seed"] == [None]
    assert _strict_json((tmp_path / "e.json").read_text()) == printed


def test_json_text_is_standard_json():
    obj = {"inf": math.inf, "nan": np.float32("nan"), "arr": np.array([1.0, -np.inf]), "n": np.int64(3),
           "t": (1, 2.5), "ok": np.bool_(True), "path": __import__("pathlib").Path("a/b")}
    text = _io.json_text(obj)
    assert _strict_json(text) == {"inf": None, "nan": None, "arr": [1.0, None], "n": 3, "t": [1, 2.5], "ok": True,
                                  "path": "a/b"}
    with pytest.raises(TypeError):
        _io.json_text({"x": object()})


def test_atomic_write_json_writes_standard_json(tmp_path):
    _io.atomic_write_json(tmp_path / "m.json", {"rel_l2": float("inf"), "sem": [float("nan")]})
    assert _strict_json((tmp_path / "m.json").read_text()) == {"rel_l2": None, "sem": [None]}


# ------------------------------------------------------------------------------------------ demo
@pytest.mark.parametrize("argv", [["demo", "--epochs", "0"], ["reproduce", "demo", "--epochs", "0"],
                                  ["demo", "--n-pde", "0"], ["demo", "--eval-every", "0"]])
def test_demo_validates_its_arguments_like_train(argv, tmp_path, capsys):
    # `demo --epochs 0` silently trained the default 3000 epochs (0 was replaced by the default).
    out = tmp_path / "demo"
    assert cli.main(argv + ["--out", str(out), "--no-progress"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    option = argv[-2].lstrip("-").replace("-", "_")
    assert err.startswith(f"fastpinn {argv[0]}: error: {option} must be an integer >= 1, got 0"), err
    assert "\n" not in err and not out.exists()


# ------------------------------------------------------------------------------------------ threads
def test_threads_above_the_cores_warn_once(tmp_path, capsys, monkeypatch):
    # `--threads 1000` on 2 cores was accepted silently and ran 70x slower. Here the machine has 2 cores (patched,
    # so that training with 3 threads stays quick) and --threads asks for 3.
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    assert cli.main(TRAIN + ["--threads", "3", "--out", str(tmp_path / "a")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == ["fastpinn train: warning: --threads 3 exceeds the 2 cores available to this process; "
                        "training will be much slower than with 2 (omit it to use the idle cores)"]
    assert cli.main(TRAIN + ["--threads", "2", "--out", str(tmp_path / "b")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_threads_variable_above_the_cores_warns(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 1)
    monkeypatch.setenv(threads.ENV, "2")
    assert cli.main(TRAIN + ["--out", str(tmp_path / "a")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "FASTPINN_THREADS 2 exceeds the 1 core available" in warnings[0]
