"""Analysis parameters: validation collects every problem; TOML files; JSON view with sources."""

from __future__ import annotations

import pytest

from lifecircle import AnalysisConfig, InputDataError, InputFileError


def test_all_problems_reported_at_once():
    with pytest.raises(InputDataError) as e:
        AnalysisConfig(minutes=(0, 15), walk_speed_kmh=-1, target=1.5, categories=("parks",))
    msg = str(e.value)
    for part in ("minutes", "walk_speed_kmh", "target", "parks"):
        assert part in msg


def test_toml_and_overrides(tmp_path):
    f = tmp_path / "a.toml"
    f.write_text("[analysis]\nminutes = [15, 5]\nwalk_speed_kmh = 3\ncategories = ['health']\n")
    cfg = AnalysisConfig.from_toml(f, target=0.9)
    assert cfg.minutes == (5.0, 15.0) and cfg.walk_speed_kmh == 3 and cfg.target == 0.9
    assert cfg.max_dist_m == pytest.approx(30 * 50)  # cut-off 2 x 15 min at 50 m/min
    d = cfg.to_dict()
    assert "GB 50180-2018" in d["walk_speed_source"] and "85%" in d["target_source"]
    bad = tmp_path / "b.toml"
    bad.write_text("[analysis]\nspeed = 3\n")
    with pytest.raises(InputDataError, match="walk_speed_kmh"):
        AnalysisConfig.from_toml(bad)
    with pytest.raises(InputFileError, match="not valid TOML"):
        (tmp_path / "c.toml").write_text("[analysis\n")
        AnalysisConfig.from_toml(tmp_path / "c.toml")
