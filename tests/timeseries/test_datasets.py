"""PhysioNet 2012 and STMVL PM2.5 readers on miniature copies in the exact on-disk layout, and CSDI's protocols
checked against independent computations (numpy's global legacy RNG as CSDI seeds it, pandas/numpy statistics)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from omnidiffusion.timeseries.datasets import (
    PHYSIONET_PARAMETERS,
    PM25_TEST_MONTHS,
    physionet_protocol,
    pm25_protocol,
    read_physionet,
    read_physionet_stay,
    read_pm25,
)

HR, TEMP = PHYSIONET_PARAMETERS.index("HR"), PHYSIONET_PARAMETERS.index("Temp")


def write_stay(folder, record: str, rows: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{record}.txt").write_text("Time,Parameter,Value\n" + "\n".join(rows) + "\n")


def test_stay_reads_the_written_values_last_in_hour_wins(tmp_path):
    write_stay(
        tmp_path / "set-a",
        "132539",
        [
            "00:00,RecordID,132539",
            "00:00,Age,54",
            "00:00,Weight,-1",
            "00:07,HR,73",
            "00:37,HR,77",  # same hour: the later row wins
            "01:05,Temp,36.6",
            "47:59,HR,90",
            "48:00,HR,99",  # beyond 48 hours: dropped
        ],
    )
    table = read_physionet_stay(tmp_path / "set-a" / "132539.txt")
    assert table.shape == (48, 35)
    assert table[0, HR] == 77.0 and table[1, TEMP] == 36.6 and table[47, HR] == 90.0
    assert np.isnan(table).sum() == 48 * 35 - 3


def test_folder_in_record_order_and_bad_files_named(tmp_path):
    write_stay(tmp_path / "set-a", "140501", ["00:10,HR,80"])
    write_stay(tmp_path / "set-a", "132539", ["00:10,HR,70"])
    (tmp_path / "set-a" / "notes.md").write_text("not a stay")
    stays = read_physionet(tmp_path)
    assert stays.ids == ["132539", "140501"]
    assert stays.values[:, 0, HR].tolist() == [70.0, 80.0]
    write_stay(tmp_path / "bad", "132540", ["00:10,HR,fast"])
    with pytest.raises(ValueError, match=r"132540.txt:2: Value: expected a number"):
        read_physionet(tmp_path / "bad")
    (tmp_path / "hdr").mkdir()
    (tmp_path / "hdr" / "132541.txt").write_text("time;param;value\n")
    with pytest.raises(ValueError, match="expected the header"):
        read_physionet(tmp_path / "hdr")
    write_stay(tmp_path / "clock", "132542", ["7h,HR,80"])
    with pytest.raises(ValueError, match="Time: expected HH:MM"):
        read_physionet(tmp_path / "clock")
    with pytest.raises(FileNotFoundError, match="root"):
        read_physionet(tmp_path / "absent")


def _random_stays(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, 48, 35)) * 3 + 5
    values[rng.random(values.shape) < 0.8] = np.nan  # PhysioNet is about 80% missing
    return values


def test_physionet_protocol_matches_csdis_global_rng_draws():
    values = _random_stays(20)
    p = physionet_protocol(values, 0.5, seed=1, fold=2)
    np.random.seed(1)  # CSDI: one global seed, then np.random.choice per stay in id order
    for i in range(len(values)):
        obs = np.flatnonzero(~np.isnan(values[i]).reshape(-1)).tolist()
        hidden = np.random.choice(obs, int(len(obs) * 0.5), replace=False)
        expect = np.zeros(48 * 35, bool)
        expect[hidden] = True
        assert np.array_equal(p["target"][i].reshape(-1), expect)
    assert not (p["target"] & p["cond"]).any() and np.array_equal(p["target"] | p["cond"], p["observed"])


def test_physionet_normalisation_and_split():
    values = _random_stays(50, seed=3)
    p = physionet_protocol(values, 0.1, seed=1, fold=0)
    k = 7
    col = values[..., k][~np.isnan(values[..., k])]
    assert p["mean"][k] == pytest.approx(float(np.mean(col)), rel=1e-12)
    assert p["std"][k] == pytest.approx(float(np.std(col)), rel=1e-12)
    got = p["z"][~np.isnan(values)]
    want = ((values - p["mean"]) / p["std"])[~np.isnan(values)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert (p["z"][np.isnan(values)] == 0).all()
    parts = [set(p[s].tolist()) for s in ("train", "valid", "test")]
    assert [len(s) for s in parts] == [35, 5, 10]  # int(0.7 N), rest, 20%
    assert set.union(*parts) == set(range(50)) and sum(map(len, parts)) == 50
    order = np.arange(50)
    np.random.seed(1)
    np.random.shuffle(order)
    assert sorted(p["test"].tolist()) == sorted(order[:10].tolist())


def write_pm25(folder, ground: pd.DataFrame, missing: pd.DataFrame) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in (("pm25_ground.txt", ground), ("pm25_missing.txt", missing)):
        frame.to_csv(folder / name, index_label="datetime", date_format="%Y/%m/%d %H:%M:%S")


def _pm25_tables():
    index = pd.date_range("2014-05-01", "2015-04-30 23:00", freq="37h")
    rng = np.random.default_rng(0)
    ground = pd.DataFrame(
        rng.gamma(2.0, 40.0, size=(len(index), 3)).round(1), index=index, columns=["1001", "1002", "1003"]
    )
    ground.iloc[::11, 1] = np.nan
    missing = ground.copy()
    missing.iloc[::5, 0] = np.nan
    return ground, missing


def test_pm25_reads_the_written_tables_and_the_protocol(tmp_path):
    ground, missing = _pm25_tables()
    write_pm25(tmp_path, ground, missing)
    g, m = read_pm25(tmp_path)
    np.testing.assert_array_equal(g.to_numpy(), ground.to_numpy())
    assert list(g.columns) == ["1001", "1002", "1003"] and (g.index == ground.index).all()
    p = pm25_protocol(g, m, valid_index=1)
    keep = ~np.isin(ground.index.month, PM25_TEST_MONTHS)
    np.testing.assert_allclose(p["mean"], np.nanmean(ground.to_numpy()[keep], axis=0), rtol=1e-12)
    np.testing.assert_allclose(p["std"], np.nanstd(ground.to_numpy()[keep], axis=0, ddof=1), rtol=1e-12)
    assert p["valid_months"] == (2,) and 2 not in p["train_months"] and len(p["train_months"]) == 7
    target = p["target"].to_numpy()
    assert target.sum() == (ground.notna() & missing.isna()).to_numpy().sum() and not target[:, 1:].any()


def test_pm25_malformed_files_are_named(tmp_path):
    ground, missing = _pm25_tables()
    write_pm25(tmp_path / "a", ground, missing[["1001", "1002"]])
    with pytest.raises(ValueError, match="same datetimes and stations"):
        read_pm25(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "pm25_ground.txt").write_text("time,1001\n2014/05/01 00:00:00,3\n")
    (tmp_path / "b" / "pm25_missing.txt").write_text("time,1001\n2014/05/01 00:00:00,3\n")
    with pytest.raises(ValueError, match="expected a 'datetime' column"):
        read_pm25(tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "pm25_ground.txt").write_text("datetime,1001\n2014/05/01 00:00:00,high\n")
    (tmp_path / "c" / "pm25_missing.txt").write_text("datetime,1001\n2014/05/01 00:00:00,3\n")
    with pytest.raises(ValueError, match="column '1001': expected numbers, got 'high'"):
        read_pm25(tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="pm25_ground.txt"):
        read_pm25(tmp_path / "absent")


def _write_set_a(folder, n: int = 20, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        rows = [f"00:00,RecordID,{132500 + i}", "00:00,Age,60"]
        for h in range(48):
            for name in ("HR", "Temp", "MAP", "Glucose"):
                if rng.random() < 0.6:
                    rows.append(f"{h:02d}:{rng.integers(60):02d},{name},{rng.normal(50, 10):.1f}")
        for name in PHYSIONET_PARAMETERS:  # every parameter observed at least twice somewhere (defined z-score)
            rows += [f"00:30,{name},{rng.normal(5, 1):.2f}", f"47:10,{name},{rng.normal(5, 1):.2f}"]
        write_stay(folder, str(132500 + i), rows)


def test_train_and_evaluate_on_physionet_layout(tmp_path, capsys):
    from omnidiffusion.timeseries.cli import cli

    _write_set_a(tmp_path / "set-a")
    run = tmp_path / "run"
    sets = ["data.format=physionet", f"data.root={tmp_path / 'set-a'}", "data.window=48", "data.val_fraction=0.1"]
    sets += ["train.steps=4", "train.ckpt_every=2", "sampler.samples=3"]
    args = ["train", "--config", "tiny", "--out", str(run)] + [a for s in sets for a in ("--set", s)]
    assert cli.main(args) == 0
    assert "validation on 2 stays: selected step" in capsys.readouterr().out  # 20 stays: 14 train, 2 valid
    assert cli.main(["evaluate", "--checkpoint", str(run)]) == 0
    report = json.loads(capsys.readouterr().out)
    p = physionet_protocol(read_physionet(tmp_path).values, 0.1, seed=1, fold=0)
    assert report["protocol"]["targets"] == int(p["target"][p["test"]].sum()) > 0
    assert "4 stays" in report["protocol"]["data"] and set(report["baselines"]) == {
        "linear interpolation",
        "mean imputation",
    }
    for name in ("crps", "mae"):
        assert np.isfinite(report["model"][name])


def test_physionet_format_needs_a_root_and_48_hours(tmp_path):
    from omnidiffusion.timeseries.settings import load_timeseries_config
    from omnidiffusion.timeseries.training import train

    config = load_timeseries_config("tiny", ["data.format=physionet", "data.window=48"])
    with pytest.raises(ValueError, match="data.root"):
        train(config, tmp_path / "a")
    _write_set_a(tmp_path / "set-a", n=6)
    config = load_timeseries_config("tiny", ["data.format=physionet", f"data.root={tmp_path}"])
    with pytest.raises(ValueError, match="data.window: PhysioNet stays are 48 hours"):
        train(config, tmp_path / "b")


def test_long_csv_reads_items_on_their_grid(tmp_path):
    from omnidiffusion.timeseries.datasets import read_long_csv

    path = tmp_path / "long.csv"
    rows = ["item_id,timestamp,target"]
    rows += [f"b,2021-01-{d:02d},{d * 1.5}" for d in (1, 2, 3, 5, 6)]  # 2021-01-04 absent: NaN on the grid
    rows += [f"a,2021-01-{d:02d},{-d}" for d in (3, 1, 2, 4)]  # out of order: sorted by time
    path.write_text("\n".join(rows) + "\n")
    entries, freq = read_long_csv(path)
    assert freq == "D" and [e["item_id"] for e in entries] == ["a", "b"]
    assert entries[0]["target"].tolist() == [-1.0, -2.0, -3.0, -4.0]
    assert entries[0]["start"] == pd.Period("2021-01-01", "D")
    b = entries[1]["target"]
    assert b.shape == (6,) and np.isnan(b[3]) and b[[0, 1, 2, 4, 5]].tolist() == [1.5, 3.0, 4.5, 7.5, 9.0]
    (tmp_path / "two.csv").write_text("item_id,timestamp,x,y\nz,2021-01-01,1,2\nz,2021-01-02,3,4\nz,2021-01-03,5,\n")
    two, _ = read_long_csv(tmp_path / "two.csv")
    assert two[0]["target"].shape == (2, 3) and np.isnan(two[0]["target"][1, 2])
    (tmp_path / "dup.csv").write_text("item_id,timestamp,target\na,2021-01-01,1\na,2021-01-01,2\na,2021-01-02,3\n")
    with pytest.raises(ValueError, match="two rows at 2021-01-01"):
        read_long_csv(tmp_path / "dup.csv")
    (tmp_path / "cols.csv").write_text("id,time,value\na,2021-01-01,1\n")
    with pytest.raises(ValueError, match="expected columns item_id, timestamp"):
        read_long_csv(tmp_path / "cols.csv")


def test_jsonlines_reads_gluonts_entries(tmp_path):
    from omnidiffusion.timeseries.datasets import read_jsonlines

    path = tmp_path / "data.jsonl"
    path.write_text(
        '{"start": "2020-01-01 00:00", "target": [1, 2, null, "NaN", 5], "item_id": "x"}\n\n'
        '{"start": "2020-01-01 05:00", "target": [[1, 2], [3, 4]]}\n'
    )
    entries = read_jsonlines(path, "h")
    assert entries[0]["item_id"] == "x" and entries[0]["start"] == pd.Period("2020-01-01 00:00", "h")
    t = entries[0]["target"]
    assert t[[0, 1, 4]].tolist() == [1.0, 2.0, 5.0] and np.isnan(t[2]) and np.isnan(t[3])
    assert entries[1]["target"].shape == (2, 2) and entries[1]["item_id"] == "2"
    (tmp_path / "bad.jsonl").write_text('{"start": "2020-01-01", "target": [1, "two"]}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: target: expected numbers"):
        read_jsonlines(tmp_path / "bad.jsonl", "D")
    (tmp_path / "nojson.jsonl").write_text('{"start": "2020-01-01", "target": [1]}\n{oops\n')
    with pytest.raises(ValueError, match=r"nojson.jsonl:2: not JSON"):
        read_jsonlines(tmp_path / "nojson.jsonl", "D")


def test_forecaster_trains_on_long_csv_and_jsonl(tmp_path):
    from omnidiffusion.timeseries.estimator import CSDIPredictor
    from omnidiffusion.timeseries.settings import load_timeseries_config
    from omnidiffusion.timeseries.training import forecast_entries, train

    t = np.arange(60)
    rows = ["item_id,timestamp,target"]
    for item, phase in (("s1", 0.0), ("s2", 1.0)):
        day = pd.date_range("2021-01-01", periods=60, freq="D")
        rows += [f"{item},{d.date()},{np.sin(0.3 * i + phase):.4f}" for i, d in zip(t, day, strict=True)]
    (tmp_path / "long.csv").write_text("\n".join(rows) + "\n")
    base = [
        "task.task=forecast",
        "task.strategy=forecast",
        "task.horizon=4",
        "data.window=12",
        "data.train_fraction=0.75",
    ]
    config = load_timeseries_config("tiny", [*base, "data.format=long-csv", f"data.root={tmp_path / 'long.csv'}"])
    entries = forecast_entries(config)
    assert [e["target"].shape[-1] for e in entries] == [45, 45]  # round(60 * 0.75)
    train(config, tmp_path / "run")
    assert CSDIPredictor.from_pretrained(tmp_path / "run").prediction_length == 4
    lines = [f'{{"start": "2021-01-01", "target": {np.sin(0.3 * t + p).round(4).tolist()}}}' for p in (0.0, 1.0)]
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    config = load_timeseries_config("tiny", [*base, "data.format=jsonl", f"data.root={tmp_path / 'd.jsonl'}"])
    with pytest.raises(ValueError, match="data.freq"):
        train(config, tmp_path / "run2")
    train(
        load_timeseries_config(
            "tiny", [*base, "data.format=jsonl", f"data.root={tmp_path / 'd.jsonl'}", "data.freq=D"]
        ),
        tmp_path / "run3",
    )
    impute = load_timeseries_config("tiny", ["data.format=jsonl", f"data.root={tmp_path / 'd.jsonl'}"])
    with pytest.raises(ValueError, match="for task.task = 'forecast'"):
        train(impute, tmp_path / "run4")


def test_pm25_windows_cover_each_test_entry_once():
    from omnidiffusion.timeseries.datasets import pm25_windows

    ground, missing = _pm25_tables()
    p = pm25_protocol(ground, missing)
    w = pm25_windows(p, PM25_TEST_MONTHS, 8, test=True)
    scored = (w["target"] & w["scored"]).sum().item()
    in_test = np.isin(ground.index.month, PM25_TEST_MONTHS)
    assert scored == int((ground.notna() & missing.isna()).to_numpy()[in_test].sum())
    months = [int(np.isin(ground.index.month, [m]).sum()) for m in PM25_TEST_MONTHS]
    assert w["values"].shape[0] == sum(-(-n // 8) for n in months)  # ceil(hours / L) windows per month
    train = pm25_windows(p, p["train_months"], 8)
    assert set(train) == {"values", "observed"} and train["values"].shape[1:] == (3, 8)


def test_pm25_training_patterns_come_from_months_2_5_8_11_in_turn():
    from omnidiffusion.timeseries.datasets import pm25_windows

    ground, missing = _pm25_tables()
    p = pm25_protocol(ground, missing, valid_index=3)  # month 5 validates: patterns from 2, 8, 11 only
    w = pm25_windows(p, p["train_months"], 4, patterns=True)
    # enumerate the stride-1 windows from the ground table itself: (month, observed (K, 4)) in month order
    windows = []
    for month in p["train_months"]:
        obs = ground[ground.index.month == month].notna().to_numpy()
        windows += [(month, obs[s : s + 4].T) for s in range(len(obs) - 3)]
    givers = [obs for month, obs in windows if month in (2, 8, 11)]
    assert len(givers) > 0 and w["pattern"].shape == w["observed"].shape == (len(windows), 3, 4)
    for n in range(len(windows)):
        np.testing.assert_array_equal(w["observed"][n].numpy(), windows[n][1])
        np.testing.assert_array_equal(w["pattern"][n].numpy(), givers[n % len(givers)])
    with pytest.raises(ValueError, match="hold none of them"):
        pm25_windows(p, (1, 4), 4, patterns=True)


def test_train_and_evaluate_on_pm25_layout(tmp_path, capsys):
    from omnidiffusion.timeseries.cli import cli

    ground, missing = _pm25_tables()
    write_pm25(tmp_path, ground, missing)
    run = tmp_path / "run"
    sets = ["data.format=pm25", f"data.root={tmp_path}", "data.window=8", "data.val_fraction=0.1"]
    sets += ["train.steps=4", "train.ckpt_every=2", "sampler.samples=3", "data.valid_month=2", "task.strategy=mix"]
    args = ["train", "--config", "tiny", "--out", str(run)] + [a for s in sets for a in ("--set", s)]
    assert cli.main(args) == 0
    assert "validation month 2 (" in capsys.readouterr().out
    assert cli.main(["evaluate", "--checkpoint", str(run)]) == 0
    report = json.loads(capsys.readouterr().out)
    in_test = np.isin(ground.index.month, PM25_TEST_MONTHS)
    assert report["protocol"]["targets"] == int((ground.notna() & missing.isna()).to_numpy()[in_test].sum())
    assert report["protocol"]["test_months"] == [3, 6, 9, 12] and np.isfinite(report["model"]["mae"])
