"""``hwlat measure --reference`` and ``hwlat fit --correct-drift`` on the fake device's busy spells."""

from __future__ import annotations

import json

from hwlat.cli import main


def test_cli_measure_with_reference_and_fit(tmp_path, capsys):
    db = tmp_path / "t.db"
    assert (
        main(
            [
                "measure",
                "--device",
                "fake/drift=1:1.5/noise=0.01",
                "--space",
                "mbconv",
                "--n",
                "16",
                "--db",
                str(db),
                "--reference",
                "auto",
                "--quiet",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "16 measured" in out and "drift reference:" in out and "over 16 rows (x1.5" in out
    assert main(["table", "show", "--db", str(db)]) == 0
    assert "fake/t1/b1/fp32/drift=1:1.5/noise=0.01: drift reference:" in capsys.readouterr().out
    assert main(["fit", "--table", str(db), "--out", str(tmp_path / "p.skops"), "--correct-drift"]) == 0
    assert json.loads((tmp_path / "p.skops.json").read_text())["drift_corrected"] is True
    assert (
        main(
            [
                "measure",
                "--device",
                "fake",
                "--space",
                "mbconv",
                "--n",
                "4",
                "--db",
                str(db),
                "--protocol",
                "fixed",
                "--reference",
                "auto",
            ]
        )
        == 2
    )
    assert "--reference needs the adaptive protocol" in capsys.readouterr().err
    assert (
        main(
            [
                "measure",
                "--device",
                "fake",
                "--space",
                "mbconv",
                "--n",
                "4",
                "--db",
                str(db),
                "--reference",
                "mbconv:cin=8",
            ]
        )
        == 2
    )
    assert "Invalid reference 'mbconv:cin=8'" in capsys.readouterr().err
