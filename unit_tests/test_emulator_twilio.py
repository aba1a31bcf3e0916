"""The Twilio Super SIM emulator's knobs and expected records, checked over HTTP on 127.0.0.1."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Tuple

import requests

from source_usage.emulator import Emulator

NULLABLE = {"data_upload", "data_download", "data_total", "data_total_billed", "billed_unit"}


def twilio(**knobs: Any) -> Emulator:
    return Emulator(seed=19, rate_limits=False, vendors=["twilio"], twilio=knobs)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def read_group_by_sim(emulator: Emulator, granularity: str, start: datetime, end: datetime) -> List[dict]:
    section = emulator.config()["twilio"]
    session = requests.Session()
    session.auth = (section["account_sid"], section["auth_token"])
    params = {"Group": "sim", "Granularity": granularity, "StartTime": stamp(start), "EndTime": stamp(end), "PageSize": 1000}
    page = session.get(section["base_url"] + "/UsageRecords", params=params, timeout=10).json()
    records = list(page["usage_records"])
    while page["meta"]["next_page_url"]:
        page = session.get(page["meta"]["next_page_url"], timeout=10).json()
        records += page["usage_records"]
    return records


def by_key(records: List[dict]) -> Dict[Tuple[str, str], dict]:
    return {(record["sim_sid"], record["period"]["start_time"]): record for record in records}


def window(days: int) -> Tuple[datetime, datetime, str]:
    now = datetime.now(timezone.utc)
    start = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, now, stamp(start)


def test_expected_records_are_what_a_group_by_sim_read_returns() -> None:
    with twilio(granularity="day") as emulator:
        start, now, start_date = window(days=6)
        served = by_key(read_group_by_sim(emulator, "day", start, now))
        expected = by_key(emulator.expected("twilio_supersim_usage_records", start_date=start_date))

        assert served.keys() == expected.keys() and served
        for key, record in expected.items():
            api = served[key]
            assert record["period"] == api["period"] and record["start_time"] == api["period"]["start_time"]
            for field in ("account_sid", "data_upload", "data_download", "data_total", "billed_unit", "fleet_sid", "network_sid", "iso_country"):
                assert record[field] == api[field], (key, field)
            assert record["data_total_billed"] == float(api["data_total_billed"])
            assert record["granularity"] == "day"


def test_expected_starts_at_the_start_dates_period_and_never_earlier_than_18_months() -> None:
    with twilio(granularity="hour", days=3) as emulator:
        records = emulator.expected("twilio_supersim_usage_records", start_date="2020-01-01T00:00:00Z", granularity="hour")
        assert records, "the retention limit clamps the start, it does not empty the read"
        _, now, _ = window(days=0)
        late = stamp(now - timedelta(hours=60, minutes=20))  # usage is revealed until 48 hours ago
        later = emulator.expected("twilio_supersim_usage_records", start_date=late, granularity="hour")
        floored = late[:14] + "00:00Z"
        assert min(record["start_time"] for record in later) == floored, "the hour the start date falls in is included"


def test_null_fields_puts_nulls_only_in_nullable_fields_of_about_one_record_in_seven_and_expected_has_them() -> None:
    with twilio(granularity="hour", sims=40, null_fields=True) as emulator:
        start, now, start_date = window(days=4)
        served = by_key(read_group_by_sim(emulator, "hour", start, now))
        expected = by_key(emulator.expected("twilio_supersim_usage_records", start_date=start_date, granularity="hour"))
        assert served.keys() == expected.keys()

        with_nulls = {key: record for key, record in served.items() if any(record[field] is None and field != "billed_unit" for field in NULLABLE)}
        assert 0.08 < len(with_nulls) / len(served) < 0.22, len(with_nulls) / len(served)
        patterns = set()
        for key, record in with_nulls.items():
            nulls = frozenset(field for field in NULLABLE if record[field] is None)
            patterns.add(nulls)
            assert record["sim_sid"] and record["period"]["start_time"] and record["account_sid"]
            for field in nulls:
                assert expected[key][field] is None, (key, field)
        assert len(patterns) >= 2, "more than one shape of nulls"

    with twilio(granularity="hour", sims=40) as emulator:
        records = emulator.expected("twilio_supersim_usage_records", start_date=start_date, granularity="hour")
        assert not any(record[field] is None for record in records for field in NULLABLE - {"billed_unit"})


def test_hold_until_in_flight_holds_the_first_request_until_a_second_is_in_flight_which_the_concurrency_limit_refuses() -> None:
    import threading

    with Emulator(seed=19, rate_limits=True, vendors=["twilio"], twilio={"concurrent_requests": 1, "hold_until_in_flight": 2, "hold_seconds": 60}) as emulator:
        section = emulator.config()["twilio"]
        start, now, _ = window(days=2)
        params = {"Group": "sim", "Granularity": "day", "StartTime": stamp(start), "EndTime": stamp(now)}
        statuses: List[int] = []

        def get() -> None:
            response = requests.get(section["base_url"] + "/UsageRecords", params=params, auth=(section["account_sid"], section["auth_token"]), timeout=120)
            statuses.append(response.status_code)

        first = threading.Thread(target=get)
        first.start()
        app = emulator.apps["twilio"]
        while app.in_flight < 1:  # the first request arrived and is held (it cannot be answered before a second comes)
            first.join(0.01)
        assert statuses == [], "held"
        get()  # the second: refused, and it releases the first
        first.join()

        assert sorted(statuses) == [200, 429]
        assert emulator.stats()["twilio"]["rate_limited"] == 1 and app.peak_in_flight == 2
