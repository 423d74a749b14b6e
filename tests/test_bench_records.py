"""``python -m stream.bench.records`` runs end to end on a few principals and prints each step."""

from __future__ import annotations

from stream.bench.records import main, restore_costs, sealed_records


def test_every_principal_record_is_verified_decoded_and_restored(capsys) -> None:
    sealed = sealed_records(40)
    assert len(sealed) == 40
    costs = restore_costs(sealed, rounds=1)
    assert set(costs) == {"verify_us", "decode_us", "restore_us", "total_us"}
    assert main(["--principals", "20", "--rounds", "1"]) == 0
    assert "total_us" in capsys.readouterr().out
