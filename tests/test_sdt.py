"""Correspondence: hit and false-alarm rates, d' and c against hand computations, and humans
and SAVC models on the same stimuli in one comparison."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from avmit_psych.analysis import sdt as SDT
from avmit_psych.analysis.compare import run_comparison, write_comparison
from avmit_psych.analysis.observers import load_observations


def test_loglinear_d_prime_and_c_equal_hand_computations():
    # 8/10 hits, 2/10 false alarms: H = 8.5/11, F = 2.5/11
    h, f = SDT.loglinear_rates(8, 10, 2, 10)
    assert h == pytest.approx(8.5 / 11) and f == pytest.approx(2.5 / 11)
    d, c = SDT.d_prime(h, f)
    assert d == pytest.approx(stats.norm.ppf(8.5 / 11) - stats.norm.ppf(2.5 / 11))
    assert d == pytest.approx(1.4958, abs=1e-4) and c == pytest.approx(0.0, abs=1e-12)
    # rates of 1 and 0: 10/10 hits, 0/10 false alarms -> 10.5/11 and 0.5/11, d' finite
    h, f = SDT.loglinear_rates(10, 10, 0, 10)
    d, c = SDT.d_prime(h, f)
    assert d == pytest.approx(2 * stats.norm.ppf(10.5 / 11)) and np.isfinite(d)
    assert d == pytest.approx(3.3812, abs=1e-4)
    # a bias toward 'same': few 'different' answers overall
    h, f = SDT.loglinear_rates(6, 10, 0, 10)
    d, c = SDT.d_prime(h, f)
    zh, zf = stats.norm.ppf(6.5 / 11), stats.norm.ppf(0.5 / 11)
    assert c == pytest.approx(-(zh + zf) / 2) and c > 0


def correspondence_study(folder, n_humans=3, seed=0):
    """Humans' trials and two SAVC models' predictions on the same 60 stimuli: 20 none,
    20 audio noise, 20 semantic swaps; answer key same/different."""
    rng = np.random.default_rng(seed)
    stim = pd.DataFrame({
        "stimulus_id": [f"s{i:02d}" for i in range(60)],
        "manipulation": ["none"] * 20 + ["audio_noise"] * 20 + ["semantic_swap"] * 20,
        "level": [""] * 20 + ["-10.0"] * 20 + ["laughing"] * 20})
    stim["label"] = np.where(stim["manipulation"] == "semantic_swap", "different", "same")
    humans, models = folder / "h", folder / "m"
    humans.mkdir(parents=True)
    models.mkdir(parents=True)
    for i in range(n_humans):
        p_right = np.where(stim["manipulation"] == "audio_noise", 0.7, 0.9)
        right = rng.random(60) < p_right
        resp = np.where(right, stim["label"], np.where(stim["label"] == "same", "different",
                                                       "same"))
        pd.DataFrame({"participant": f"P{i + 1}", "session": 1, "task": "correspondence",
                      "block": "main", "trial": np.arange(1, 61),
                      "stimulus_id": stim["stimulus_id"], "label": stim["label"],
                      "manipulation": stim["manipulation"], "level": stim["level"],
                      "response": resp, "correct": resp == stim["label"], "rt": 1.0}
                     ).to_csv(humans / f"P{i + 1}.csv", index=False)
    for m, p in (("savc_a", 0.95), ("savc_b", 0.6)):
        right = rng.random(60) < p
        resp = np.where(right, stim["label"], np.where(stim["label"] == "same", "different",
                                                       "same"))
        pd.DataFrame({"model": m, "stimulus_id": stim["stimulus_id"], "label": stim["label"],
                      "manipulation": stim["manipulation"], "level": stim["level"],
                      "response": resp, "correct": resp == stim["label"],
                      "p_same": np.where(resp == "same", 0.8, 0.2)}
                     ).to_csv(models / f"{m}.csv", index=False)
    return humans, models


def test_humans_and_savc_models_on_the_same_trials(tmp_path):
    humans, models = correspondence_study(tmp_path)
    obs = load_observations([humans], [models])
    assert set(obs.trials["task"]) == {"correspondence"}
    assert set(obs.trials["label"]) == {"same", "different"}
    res = run_comparison(obs, n_boot=100, psychometric=False)
    sdt = res.sdt.set_index(["observer", "condition"])
    # hand computation for P1 on 'none': hits over all 20 swaps, false alarms on 'none'
    p1 = pd.read_csv(humans / "P1.csv", keep_default_na=False)
    swaps = p1[p1["label"] == "different"]
    none = p1[p1["manipulation"] == "none"]
    hits, fas = (swaps["response"] == "different").sum(), (none["response"] == "different").sum()
    h, f = (hits + 0.5) / 21, (fas + 0.5) / 21
    row = sdt.loc[("P1", "none")]
    assert row["hits"] == hits and row["false_alarms"] == fas
    assert row["d_prime"] == pytest.approx(stats.norm.ppf(h) - stats.norm.ppf(f))
    assert row["reference"] == "hits: all incongruent trials"
    swap_row = sdt.loc[("P1", "semantic_swap=laughing")]
    assert swap_row["reference"] == "false alarms: none" and swap_row["n_noise"] == 20
    # the models sit in the same tables, paired with the humans on the same stimuli
    assert {"savc_a", "savc_b"} <= set(res.sdt["observer"])
    summ = res.sdt_summary
    assert set(summ["model"]) == {"savc_a", "savc_b"} and (summ["n_humans"] == 3).all()
    hm = res.pairs[res.pairs["pair_type"] == "human-model"]
    assert len(hm) and (hm["n_trials"] == 20).all() and (hm["n_unmatched"] == 0).all()
    assert res.summary["model"].isin(["savc_a", "savc_b"]).all()
    files = write_comparison(res, tmp_path / "out")
    assert {"sdt.csv", "sdt_summary.csv", "dprime.png"} <= set(files)
    report = files["report.md"].read_text()
    assert "## Correspondence: signal detection" in report and "](dprime.png)" in report
    assert "**savc_a** vs humans" in report


def test_older_human_files_with_class_labels_get_the_same_different_key(tmp_path):
    humans, models = correspondence_study(tmp_path)
    p1 = pd.read_csv(humans / "P1.csv", keep_default_na=False)
    p1["label"] = "barking"                    # as the experiment wrote it before
    p1.to_csv(humans / "P1.csv", index=False)
    obs = load_observations([humans], [models])
    t = obs.trials[obs.trials["observer"] == "P1"]
    assert set(t["label"]) == {"same", "different"}
    assert (t.loc[t["manipulation"] == "semantic_swap", "label"] == "different").all()


def test_savc_predictions_on_random_pairs_speak_the_same_answers(tmp_path):
    pd.DataFrame({"model": "m", "stimulus_id": ["a|b", "c|c"], "label": ["incongruent",
                                                                          "congruent"],
                  "manipulation": "none", "level": "", "response": ["incongruent", "incongruent"],
                  "correct": [True, False]}).to_csv(tmp_path / "p.csv", index=False)
    obs = load_observations([], [tmp_path / "p.csv"])
    assert set(obs.trials["label"]) == {"same", "different"}
    assert obs.trials["response"].tolist() == ["different", "different"]
