"""calib.accuracy (``make accuracy``): the table's rows, its files, and one small run end to end."""

from __future__ import annotations

import json

from calib.accuracy import BIT_WIDTHS, MODES, Configuration, configurations, main, markdown
from golden.quantmodel import ATTN_SCHEMES, GELU_SCHEMES

ROW_KEYS = {"attn", "gelu", "wbits", "abits", "method", "mode", "top1", "calib_seconds"}


def test_configurations_cover_every_choice_in_table_order():
    configs = configurations()
    assert len(configs) == len(BIT_WIDTHS) * len(ATTN_SCHEMES) * len(GELU_SCHEMES)
    assert [c.bits for c in configs[:: len(ATTN_SCHEMES) * len(GELU_SCHEMES)]] == list(BIT_WIDTHS)
    assert {c.method for c in configs if c.attn == "adalog"} == {"fpcs"}
    assert {c.method for c in configs if c.attn != "adalog"} == {"repq"}
    assert Configuration(4, "adalog", "uniform").qkv_granularity == "head"
    assert Configuration(4, "uniform", "adalog").qkv_granularity == "tensor"


def test_markdown_puts_the_modes_of_a_configuration_on_one_line():
    rows = [
        {"attn": "uniform", "gelu": "uniform", "wbits": 4, "abits": 4, "method": "repq", "mode": mode,
         "top1": top1, "calib_seconds": 1.5}
        for mode, top1 in zip(MODES, (0.9, 0.8, 0.75))
    ]  # fmt: skip
    report = {"model": "m", "data": "d", "images": 10, "calib_images": 32, "torch_threads": 1,
              "total_seconds": 3.0, "rows": rows}  # fmt: skip
    table = markdown(report)
    assert "| W4A4 | uniform | uniform | repq | 90.0 | 80.0 | 75.0 | 1.5 |" in table


def test_one_configuration_end_to_end(tmp_path):
    code = main(
        [
            "--bits",
            "4",
            "--attn",
            "uniform",
            "--gelu",
            "uniform",
            "--eval-images",
            "40",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "accuracy.json").read_text())
    assert report["images"] == 40 and len(report["rows"]) == len(MODES)
    for row in report["rows"]:
        assert set(row) == ROW_KEYS
        assert row["method"] == "repq" and 0.0 <= row["top1"] <= 1.0 and row["calib_seconds"] > 0
    assert [row["mode"] for row in report["rows"]] == list(MODES)
    assert "| W4A4 | uniform | uniform | repq |" in (tmp_path / "accuracy.md").read_text()
    assert not [path.name for path in tmp_path.iterdir() if path.name.startswith(".")]  # no temporaries left
