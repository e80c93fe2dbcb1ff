"""Malformed inputs: one line naming file, row and column, exit code 2, and no output."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

HEADER = "filename,AVMIT_label,MIT_label,video_location,rating,participant\n"
GOOD = [
    "barking/a.mp4,barking,barking,training,3,P1\n",
    "barking/a.mp4,barking,barking,training,2,P2\n",
    "barking/a.mp4,barking,barking,training,3,P3\n",
]
VR_HEADER = "filename,r1,r2,r3,AVMIT_label,MIT_label,video_location,tfrecord_filename\n"
VR_GOOD = "barking/a.mp4,0,1,2,barking,barking,training,barking/a.tfrecord\n"


def raw(*rows, header=HEADER):
    return header + "".join(rows)


# (id, command, file content (str or bytes), expected fragment of the error line)
CASES = [
    ("missing column", "aggregate",
     raw(*[r.rsplit(",", 2)[0] + "," + r.rsplit(",", 1)[1] for r in GOOD],
         header="filename,AVMIT_label,MIT_label,video_location,participant\n"),
     "column 'rating': required column 'rating' is missing"),
    ("misspelled column", "aggregate",
     raw(*GOOD, header=HEADER.replace("rating", "ratng")),
     "a column is named 'ratng': rename it to 'rating'"),
    ("rating out of range", "aggregate",
     raw(GOOD[0], "barking/a.mp4,barking,barking,training,4,P2\n"),
     "row 2 (line 3), column 'rating': rating must be 1, 2 or 3, got 4"),
    ("rating not a number", "aggregate",
     raw(GOOD[0], GOOD[1], "barking/a.mp4,barking,barking,training,three,P3\n"),
     "row 3 (line 4), column 'rating': expected a rating 1, 2 or 3, got 'three'"),
    ("empty rating", "aggregate",
     raw(GOOD[0], "barking/a.mp4,barking,barking,training,,P2\n"),
     "row 2 (line 3), column 'rating': expected a rating 1, 2 or 3, got an empty cell"),
    ("empty file", "aggregate", "", "the file is empty"),
    ("header only", "aggregate", HEADER, "the file has a header but no data rows"),
    ("duplicate rating by one participant", "aggregate",
     raw(*GOOD, "barking/a.mp4,barking,barking,training,1,P2\n"),
     "row 4 (line 5), column 'filename': participant 'P2' rated video 'barking/a.mp4' twice "
     "(first at row 2)"),
    ("label not a class name", "aggregate",
     raw(GOOD[0], "barking/a.mp4,Barking!,barking,training,2,P2\n"),
     "row 2 (line 3), column 'AVMIT_label': label 'Barking!' is not a class name"),
    ("relabelling not in Table 1", "aggregate",
     raw("barking/b.mp4,giggling,barking,training,3,P1\n"),
     "column 'MIT_label': MIT label 'barking' cannot be relabelled as AVMIT class 'giggling'"),
    ("conflicting metadata", "aggregate",
     raw(GOOD[0], GOOD[1], "barking/a.mp4,barking,barking,validation,3,P3\n"),
     "row 3 (line 4), column 'video_location': video 'barking/a.mp4' has video_location "
     "'validation' here but 'training' at row 1"),
    ("semicolon delimiter", "aggregate", raw(*GOOD).replace(",", ";"),
     "the header is separated by semicolons, not commas"),
    ("latin-1 encoding", "aggregate",
     raw(GOOD[0], "barking/caf\u00e9.mp4,barking,barking,training,3,P2\n").encode("latin-1"),
     "row 2 (line 3): not UTF-8 text (byte 0xe9 at line 3)"),
    ("ragged row", "aggregate", raw(GOOD[0], "barking/a.mp4,barking,barking,training,3,P2,x\n"),
     "malformed CSV"),
    ("non-numeric count", "summary", VR_HEADER + VR_GOOD.replace(",0,1,2,", ",0,x,2,"),
     "row 1 (line 2), column 'r2': expected a whole number >= 0, got 'x'"),
    ("negative count", "summary", VR_HEADER + VR_GOOD.replace(",0,1,2,", ",-1,1,2,"),
     "row 1 (line 2), column 'r1': a count cannot be negative, got -1"),
    ("fractional count", "summary", VR_HEADER + VR_GOOD.replace(",0,1,2,", ",0,1.5,2,"),
     "column 'r2': expected a whole number, got '1.5'"),
    ("duplicate video in video ratings", "summary", VR_HEADER + VR_GOOD + VR_GOOD,
     "row 2 (line 3), column 'filename': duplicate filename 'barking/a.mp4' (first at row 1)"),
    ("released training label not a test class", "summary",
     "filename,actual_label,r1,r2,r3,label,video_location,tfrecord_filename\n"
     "a/b.mp4,barkng,0,0,3,barkng,MIT_training,barkng/b.tfrecord\n",
     "column 'label': label 'barkng' is not one of the 16 AVMIT test classes. Fix: did you "
     "mean 'barking'?"),
]


def _command(kind, path, out):
    if kind == "aggregate":
        return ["ratings", "aggregate", path, "-o", out / "video_ratings.csv"]
    return ["ratings", "summary", path, "--out", out / "summary"]


@pytest.mark.parametrize("name, kind, content, expected", CASES, ids=[c[0] for c in CASES])
def test_malformed_input_is_one_clear_line_exit_2_and_no_output(tmp_path, cli, name, kind,
                                                                content, expected):
    path = tmp_path / "input.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    r = cli("analysis", _command(kind, path, out))
    assert r.code == 2
    assert r.err.startswith(f"error: {path}")
    assert expected in r.err
    assert r.err.count("\n") == 1, "the error is exactly one line"
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.csv"], "no stray files"


def test_at_least_ten_malformed_cases():
    assert len(CASES) >= 10


def test_label_outside_a_given_class_list(tmp_path, cli):
    (tmp_path / "classes.txt").write_text("barking\ndiving\n")
    (tmp_path / "raw.csv").write_text(raw(GOOD[0], "barking/b.mp4,barkng,barking,training,3,P2\n"))
    r = cli("analysis", ["ratings", "aggregate", tmp_path / "raw.csv", "-o", tmp_path / "o.csv",
                         "--classes", tmp_path / "classes.txt"])
    assert r.code == 2
    assert "row 2 (line 3), column 'AVMIT_label': label 'barkng' is not in the class list. " \
           "Fix: did you mean 'barking'?" in r.err
    assert not (tmp_path / "o.csv").exists()


def test_missing_file_and_bad_select_side_inputs(tmp_path, cli):
    r = cli("analysis", ["ratings", "aggregate", tmp_path / "nope.csv", "-o", tmp_path / "o.csv"])
    assert r.code == 2 and "nope.csv: file not found" in r.err
    (tmp_path / "vr.csv").write_text(VR_HEADER + VR_GOOD)
    (tmp_path / "fps.csv").write_text("filename,fps\nbarking/a.mp4,thirty\n")
    r = cli("analysis", ["ratings", "select", tmp_path / "vr.csv", "--out", tmp_path / "sel",
                         "--fps", tmp_path / "fps.csv"])
    assert r.code == 2
    assert "fps.csv, row 1 (line 2), column 'fps': expected a number or an empty cell, got 'thirty'" in r.err
    (tmp_path / "x.csv").write_text("file,reason\nbarking/a.mp4,watermark\n")
    r = cli("analysis", ["ratings", "select", tmp_path / "vr.csv", "--out", tmp_path / "sel",
                         "--exclude", tmp_path / "x.csv"])
    assert r.code == 2 and "x.csv, column 'filename': required column 'filename'" in r.err
    assert not (tmp_path / "sel").exists()


def test_bom_and_crlf_are_accepted(tmp_path, cli):
    text = raw(*GOOD).replace("\n", "\r\n")
    (tmp_path / "raw.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    r = cli("analysis", ["ratings", "aggregate", tmp_path / "raw.csv", "-o", tmp_path / "vr.csv"])
    assert r.code == 0, r.err
    assert (tmp_path / "vr.csv").read_text() == (
        VR_HEADER + "barking/a.mp4,0,1,2,barking,barking,training,barking/a.tfrecord\n")


def test_exit_code_2_from_the_real_command_line(tmp_path):
    (tmp_path / "raw.csv").write_text(raw(GOOD[0], "barking/a.mp4,barking,barking,training,9,P2\n"))
    proc = subprocess.run(
        [sys.executable, "-m", "avmit_psych.analysis", "ratings", "aggregate",
         str(tmp_path / "raw.csv"), "-o", str(tmp_path / "vr.csv")],
        capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith(
        "rating must be 1, 2 or 3, got 9. Fix: 1 = event absent, 2 = present but not most "
        "prominent, 3 = present and most prominent")
    assert not (tmp_path / "vr.csv").exists()
