"""The ThousandEyes emulator's knobs and expected records, checked over HTTP on 127.0.0.1."""

from __future__ import annotations

from typing import Any, Dict, List

import requests

from source_usage.emulator import Emulator


def thousandeyes(**knobs: Any) -> Emulator:
    return Emulator(seed=23, scale=2, rate_limits=False, vendors=["thousandeyes"], thousandeyes=knobs)


def get(emulator: Emulator, path: str, **params: Any) -> requests.Response:
    section = emulator.config()["thousandeyes"]
    headers = {"Authorization": f"Bearer {section['bearer_token']}"}
    return requests.get(section["base_url"] + path, params=params, headers=headers, timeout=10)


def all_breakdowns(emulator: Emulator) -> List[dict]:
    page = get(emulator, "/usage/units/tests").json()
    items = list(page["breakdowns"])
    while "next" in page["_links"]:
        page = requests.get(
            page["_links"]["next"]["href"], headers={"Authorization": f"Bearer {emulator.config()['thousandeyes']['bearer_token']}"}, timeout=10
        ).json()
        items += page["breakdowns"]
    return items


def test_expected_records_match_what_the_usage_endpoint_reports_before_and_after_advancing() -> None:
    with thousandeyes() as emulator:
        for _ in range(2):
            usage = get(emulator, "/usage", expand="test").json()["usage"]
            scalars = {key: value for key, value in usage.items() if key not in ("quota", "tests")}
            quota = usage["quota"]
            assert emulator.expected("thousandeyes_usage") == [
                {**scalars, "quota": quota, "monthStart": quota["monthStart"], "monthEnd": quota["monthEnd"], "is_final": False}
            ]
            served = {item["testName"]: item for item in usage["tests"]}
            expected = {record["testName"]: record for record in emulator.expected("thousandeyes_test_usage")}
            assert served.keys() == expected.keys()
            for name, record in expected.items():
                assert record == {"monthStart": quota["monthStart"], "cloudUnitsProjected": None, **served[name], "is_final": False}
            emulator.advance(1)


def test_without_usage_based_pricing_the_units_breakdown_is_forbidden() -> None:
    with thousandeyes(usage_based_pricing=False) as emulator:
        refused = get(emulator, "/usage/units/tests")

        assert refused.status_code == 403
        assert refused.headers["Content-Type"] == "application/problem+json"
        problem = refused.json()
        assert problem["title"] == "Forbidden" and problem["status"] == 403
        assert "usage-based pricing" in problem["detail"]
        assert get(emulator, "/usage").status_code == 200

    with thousandeyes() as emulator:
        assert get(emulator, "/usage/units/tests").status_code == 200


def test_tests_without_ids_omit_aid_or_test_id_and_expected_leaves_them_out() -> None:
    with thousandeyes(tests_without_ids=4) as emulator:
        emulator.advance(1)  # every test is visible
        items = get(emulator, "/usage", expand="test").json()["usage"]["tests"]
        missing: Dict[str, frozenset] = {
            item["testName"]: frozenset({"aid", "testId"} - item.keys()) for item in items if not {"aid", "testId"} <= item.keys()
        }
        assert len(missing) == 4
        assert set(missing.values()) == {frozenset({"aid"}), frozenset({"testId"}), frozenset({"aid", "testId"})}
        breakdowns = {item["testName"]: item for item in all_breakdowns(emulator)}
        for name, fields in missing.items():
            assert fields.isdisjoint(breakdowns[name]), "the breakdown leaves out the same ids"
        expected = {record["testName"]: record for record in emulator.expected("thousandeyes_test_usage")}
        # a test without its account group or id has no primary key: the connector skips it (with a warning)
        assert not set(missing) & set(expected)
        assert len(expected) == len(items) - len(missing)

    with thousandeyes() as emulator:
        assert all({"aid", "testId"} <= item.keys() for item in get(emulator, "/usage", expand="test").json()["usage"]["tests"])
