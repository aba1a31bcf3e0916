"""The emnify emulator's knobs, daily statistics and limits, checked over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Dict, List, Optional, Tuple

import pytest
import requests

from source_usage.emulator import Emulator
from source_usage.emulator.emnify import EmnifyApp

MID_MONTH = "2026-11-18T12:00:30Z"
VOLUMES = ("volume", "volume_tx", "volume_rx")


def emnify(rate_limits: bool = False, virtual_time: bool = False, **knobs: Any) -> Emulator:
    knobs.setdefault("now", MID_MONTH)
    return Emulator(seed=29, rate_limits=rate_limits, vendors=["emnify"], virtual_time=virtual_time, emnify=knobs)


def app_of(emulator: Emulator) -> EmnifyApp:
    app = emulator.apps["emnify"]
    assert isinstance(app, EmnifyApp)
    return app


class Client:
    """A plain HTTP client of the emulated emnify API."""

    def __init__(self, emulator: Emulator) -> None:
        self.base = emulator.base_url("emnify")
        self.token = app_of(emulator).application_token
        self.session = requests.Session()

    def authenticate(self) -> requests.Response:
        response = self.session.post(f"{self.base}/authenticate", json={"application_token": self.token}, timeout=10)
        if response.status_code == 200:
            self.session.headers["Authorization"] = f"Bearer {response.json()['auth_token']}"
        return response

    def get(self, path: str, **params: Any) -> requests.Response:
        if "Authorization" not in self.session.headers:
            assert self.authenticate().status_code == 200
        return self.session.get(self.base + path, params=params, timeout=10)

    def json(self, path: str, **params: Any) -> Any:
        response = self.get(path, **params)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return json.loads(response.text, parse_float=Decimal)


def live_ids(emulator: Emulator) -> List[int]:
    app = app_of(emulator)
    return sorted(endpoint_id for endpoint_id in app.traits if endpoint_id not in app.deleted)


def today_of(emulator: Emulator) -> date:
    return app_of(emulator).clock.date()


def months_back(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def month_end(first: date) -> date:
    return months_back(first, -1) - timedelta(days=1)


def day_sums(entries: List[dict], kind: str) -> Tuple[Decimal, Decimal, Decimal]:
    objects = [entry[kind] for entry in entries if entry.get(kind)]
    return tuple(sum((Decimal(str(item[field])) for item in objects), Decimal(0)) for field in VOLUMES)  # type: ignore[return-value]


def snapshot_volumes(snapshot: dict, period: str, kind: str) -> Tuple[Decimal, Decimal, Decimal]:
    row = snapshot.get(period, {}).get(kind)
    return tuple(Decimal(row[field]) if row else Decimal(0) for field in VOLUMES)  # type: ignore[return-value]


def assert_days_add_up_to_the_snapshot(emulator: Emulator) -> int:
    """For every live endpoint and traffic type: the days of this and last month sum to the snapshot's rows."""
    client = Client(emulator)
    this_month = today_of(emulator).replace(day=1)
    last_month = months_back(this_month, 1)
    compared = 0
    for endpoint_id in live_ids(emulator):
        snapshot = client.json(f"/endpoint/{endpoint_id}/stats")
        current = client.json(f"/endpoint/{endpoint_id}/stats/daily")
        previous = client.json(f"/endpoint/{endpoint_id}/stats/daily", start_date=last_month.isoformat(), end_date=month_end(last_month).isoformat())
        assert all(entry["date"] >= this_month.isoformat() for entry in current)
        assert all(last_month.isoformat() <= entry["date"] < this_month.isoformat() for entry in previous)
        for kind in ("data", "sms"):
            assert day_sums(current, kind) == snapshot_volumes(snapshot, "current_month", kind), (endpoint_id, kind, "current")
            assert day_sums(previous, kind) == snapshot_volumes(snapshot, "last_month", kind), (endpoint_id, kind, "last")
            compared += bool(snapshot.get("current_month", {}).get(kind)) + bool(snapshot.get("last_month", {}).get(kind))
    return compared


# ----- last_hour -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("minutes", [60, 59])
def test_last_hour_holds_the_configured_number_of_complete_minutes(minutes: int) -> None:
    with emnify(endpoints=3, last_hour_minutes=minutes) as emulator:
        client = Client(emulator)
        response = client.get(f"/endpoint/{live_ids(emulator)[0]}/stats")
        clock = parsedate_to_datetime(response.headers["Date"])
        last_hour = response.json()["last_hour"]
        for kind in ("data", "sms"):
            for direction in ("rx", "tx"):
                labels = [label for label, _ in last_hour[kind][direction]]
                assert len(labels) == minutes
                assert labels[-1] == (clock - timedelta(minutes=1)).strftime("%H:%M")
                assert labels[0] == (clock - timedelta(minutes=minutes)).strftime("%H:%M")
        assert len(emulator.expected("emnify_endpoint_usage_last_hour")) == 3 * 2 * minutes


def test_the_newest_minute_keeps_growing_until_the_clock_moves_past_it() -> None:
    with emnify(endpoints=12, growing_newest_minute=True) as emulator:
        client = Client(emulator)
        growing: Optional[int] = None
        for endpoint_id in live_ids(emulator):
            first = client.get(f"/endpoint/{endpoint_id}/stats")
            clock = parsedate_to_datetime(first.headers["Date"])
            label, value = first.json()["last_hour"]["data"]["rx"][-1]
            assert label == clock.strftime("%H:%M"), "the newest entry is the minute in progress"
            if value > 0:
                growing = endpoint_id
                break
        assert growing is not None
        snapshots = [first.json()] + [client.get(f"/endpoint/{growing}/stats").json() for _ in range(3)]
        newest = [snapshot["last_hour"]["data"]["rx"][-1][1] for snapshot in snapshots]
        assert newest == sorted(newest) and len(set(newest)) == len(newest), f"every later request shows more: {newest}"
        assert all(snapshot["last_hour"]["data"]["rx"][:-1] == snapshots[0]["last_hour"]["data"]["rx"][:-1] for snapshot in snapshots)
        minute = (clock.replace(second=0)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert minute not in {record["minute"] for record in emulator.expected("emnify_endpoint_usage_last_hour")}, "never expect a minute in progress"

        emulator.advance(1)
        after = client.get(f"/endpoint/{growing}/stats").json()["last_hour"]["data"]["rx"]
        final = dict((label, value) for label, value in after)[clock.strftime("%H:%M")]
        assert final > newest[-1]
        [record] = [
            record
            for record in emulator.expected("emnify_endpoint_usage_last_hour")
            if record["endpoint_id"] == growing and record["traffic_type"] == "data" and record["minute"] == minute
        ]
        assert record["rx"] == final


# ----- monthly rows updated out of order -------------------------------------------------------------


def monthly_rows(client: Client, endpoint_ids: List[int]) -> Dict[Tuple[int, str], dict]:
    rows = {}
    for endpoint_id in endpoint_ids:
        for kind, row in client.json(f"/endpoint/{endpoint_id}/stats").get("current_month", {}).items():
            rows[(endpoint_id, kind)] = row
    return rows


def updates_behind_the_newest(knobs: Dict[str, Any]) -> List[Tuple[int, str]]:
    """Rows that changed in `advance()` with a `last_updated` older than what their endpoint had shown before."""
    with emnify(endpoints=60, **knobs) as emulator:
        client = Client(emulator)
        ids = live_ids(emulator)
        behind = []
        before = monthly_rows(client, ids)
        for _ in range(3):
            emulator.advance(1)
            after = monthly_rows(client, ids)
            newest = {endpoint_id: max((row["last_updated"] for (owner, _), row in before.items() if owner == endpoint_id), default="") for endpoint_id in ids}
            for key, row in after.items():
                old = before.get(key)
                if old is not None and row["volume"] != old["volume"]:
                    assert row["last_updated"] > old["last_updated"], "a row that grew was updated after its previous update"
                    if row["last_updated"] < newest[key[0]]:
                        behind.append(key)
            before = after
        assert_days_add_up_to_the_snapshot(emulator)
        return behind


def test_out_of_order_updates_stamp_a_row_before_another_rows_newer_update() -> None:
    behind = updates_behind_the_newest({"out_of_order_updates": True})
    assert behind, "some rows grew with a last_updated older than the endpoint's newest one"
    assert updates_behind_the_newest({}) == [], "by default every update is the newest of its endpoint"


# ----- deletions while the listing is paged ----------------------------------------------------------------


def test_an_endpoint_deleted_after_the_first_page_shifts_the_later_pages() -> None:
    with emnify(endpoints=25, deletions_during_listing=1) as emulator:
        client = Client(emulator)
        original = [endpoint["id"] for endpoint in emulator.expected("emnify_endpoints")]
        pages, totals = [], []
        for page in (1, 2, 3):
            response = client.get("/endpoint", page=page, per_page=10)
            pages.append([endpoint["id"] for endpoint in response.json()])
            totals.append((response.headers["X-Total-Count"], response.headers["X-Total-Pages"]))
        seen = [endpoint_id for page in pages for endpoint_id in page]

        assert totals == [("25", "3"), ("24", "3"), ("24", "3")], "each page counts what exists when it is served"
        [deleted] = app_of(emulator).removed_during_listing
        assert deleted["id"] in pages[0] and len(seen) == 24
        [skipped] = set(original) - set(seen)
        assert client.get(f"/endpoint/{skipped}/stats").status_code == 200, "the skipped endpoint still exists"
        assert client.get(f"/endpoint/{deleted['id']}/stats").status_code == 404
        assert [endpoint["id"] for endpoint in emulator.expected("emnify_endpoints")] == original, "both were listed at some point"
        minutes = {record["endpoint_id"] for record in emulator.expected("emnify_endpoint_usage_last_hour")}
        assert skipped in minutes and deleted["id"] not in minutes, "statistics are expected of live endpoints only"

        again = [endpoint["id"] for page in (1, 2, 3) for endpoint in client.get("/endpoint", page=page, per_page=10).json()]
        assert sorted(again) == sorted(set(original) - {deleted["id"]}), "a listing after the deletion is whole again"


def test_only_page_one_does_not_delete_anything() -> None:
    with emnify(endpoints=25, deletions_during_listing=2) as emulator:
        client = Client(emulator)
        for _ in range(2):
            assert client.get("/endpoint", page=1, per_page=5).headers["X-Total-Count"] == "25"
        assert app_of(emulator).removed_during_listing == []


# ----- per-IP limits and the monthly quota ---------------------------------------------------------------


def test_the_per_ip_window_counts_every_path_and_answers_1105_without_retry_after() -> None:
    with emnify(rate_limits=True, endpoints=4, ip_limit=6, ip_window_seconds=300) as emulator:
        client = Client(emulator)
        endpoint_id = live_ids(emulator)[0]
        statuses = [client.authenticate().status_code]
        for path in ("/endpoint", f"/endpoint/{endpoint_id}/stats", f"/endpoint/{endpoint_id}/stats/daily", "/endpoint", "/nowhere"):
            statuses.append(client.get(path).status_code)
        refused = client.get("/endpoint")

        assert statuses == [200, 200, 200, 200, 200, 404]
        assert refused.status_code == 429
        assert refused.json() == {"error_code": 1105, "error_token": "TooManyRequests", "message": "Too many requests, please try again later"}
        assert "Retry-After" not in refused.headers
        assert client.authenticate().status_code == 429, "authentication is behind the same per-IP window"
        assert emulator.stats()["emnify"]["rate_limited_by"]["ip"] == 2


def test_authentication_has_its_own_per_ip_window() -> None:
    with emnify(rate_limits=True, endpoints=2, auth_limit=3, auth_window_seconds=300) as emulator:
        client = Client(emulator)
        statuses = [client.authenticate().status_code for _ in range(4)]

        assert statuses == [200, 200, 200, 429]
        assert client.get("/endpoint").status_code == 200, "other paths are not limited by it"
        assert emulator.stats()["emnify"]["rate_limited_by"]["authentication"] == 1


def test_the_default_limits_are_the_documented_ones() -> None:
    app = EmnifyApp(1, 1, True)
    assert (app.ip_window.limit, app.ip_window.period) == (2000, 300)
    assert (app.auth_window.limit, app.auth_window.period) == (100, 300)
    assert (app.list_bucket.rate, app.list_bucket.capacity) == (10, 5)
    assert (app.stats_bucket.rate, app.stats_bucket.capacity) == (100, 50)
    assert app.monthly_quota is None


def test_daily_statistics_share_the_stats_bucket() -> None:
    # Time stands still for the limits: the bucket of 50 refills only when the test lets time pass.
    with emnify(rate_limits=True, virtual_time=True, endpoints=4) as emulator:
        ids = live_ids(emulator)
        Client(emulator).authenticate()
        statuses: List[int] = []

        def worker() -> None:
            client = Client(emulator)
            for index in range(20):
                path = f"/endpoint/{ids[index % len(ids)]}/stats" + ("/daily" if index % 2 else "")
                statuses.append(client.get(path).status_code)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [200] * 50 + [429] * 110, "snapshots and daily statistics drew on one bucket of 50"
        assert emulator.stats()["emnify"]["rate_limited_by"]["path"] == 110

        emulator.pass_time(0.1)  # 100/s: ten more
        client = Client(emulator)
        again = [client.get(f"/endpoint/{ids[0]}/stats" + ("/daily" if index % 2 else "")).status_code for index in range(11)]
        assert again == [200] * 10 + [429]


def test_the_monthly_quota_refuses_every_call_until_the_first_of_next_month() -> None:
    with emnify(endpoints=3, monthly_quota=5, now="2026-11-30T23:57:00Z") as emulator:
        client = Client(emulator)
        endpoint_id = live_ids(emulator)[0]
        statuses = [client.authenticate().status_code] + [client.get(f"/endpoint/{endpoint_id}/stats").status_code for _ in range(5)]

        assert statuses == [200, 200, 200, 200, 200, 429]
        refused = client.get("/endpoint")
        assert refused.status_code == 429
        body = refused.json()
        assert (body["error_code"], body["error_token"]) == (1105, "TooManyRequests")
        assert "Monthly request quota exceeded" in body["message"] and "2026-12-01" in body["message"]
        assert client.authenticate().status_code == 429
        assert emulator.stats()["emnify"]["monthly_calls"] == 5
        assert emulator.stats()["emnify"]["rate_limited_by"]["monthly_quota"] == 3

        emulator.advance(1)  # 2026-12-01T00:02
        assert client.get("/endpoint").status_code == 200
        assert emulator.stats()["emnify"]["monthly_calls"] == 1


def test_the_calls_are_counted_without_a_quota_too() -> None:
    with emnify(endpoints=2) as emulator:
        client = Client(emulator)
        client.get("/endpoint")
        client.get("/endpoint")
        assert emulator.stats()["emnify"]["monthly_calls"] == 3  # authentication included


# ----- daily statistics -------------------------------------------------------------------------------


def test_the_days_add_up_to_the_snapshots_monthly_volumes_for_every_endpoint_and_traffic_type() -> None:
    with emnify(endpoints=40, deleted_endpoints=2) as emulator:
        assert assert_days_add_up_to_the_snapshot(emulator) > 40
        emulator.advance(12)
        assert assert_days_add_up_to_the_snapshot(emulator) > 40


def test_the_days_add_up_across_midnight_and_the_turn_of_the_month() -> None:
    with emnify(endpoints=20, now="2026-11-30T23:50:00Z", step_minutes=10, out_of_order_updates=True) as emulator:
        client = Client(emulator)
        assert assert_days_add_up_to_the_snapshot(emulator)
        emulator.advance(3)  # 2026-12-01T00:20: November is now last month
        assert today_of(emulator) == date(2026, 12, 1)
        assert assert_days_add_up_to_the_snapshot(emulator)
        new_day = [entry for endpoint_id in live_ids(emulator) for entry in client.json(f"/endpoint/{endpoint_id}/stats/daily")]
        assert new_day and {entry["date"] for entry in new_day} == {"2026-12-01"}, "the new day appears with the traffic of the new month"


def test_today_grows_when_the_clock_moves_on() -> None:
    with emnify(endpoints=30) as emulator:
        client = Client(emulator)
        today = today_of(emulator).isoformat()

        def todays_data() -> Decimal:
            total = Decimal(0)
            for endpoint_id in live_ids(emulator):
                for entry in client.json(f"/endpoint/{endpoint_id}/stats/daily", start_date=today, end_date=today):
                    total += Decimal(entry["data"]["volume"])
            return total

        before = todays_data()
        emulator.advance(2)
        assert todays_data() > before


def test_the_date_range_rules() -> None:
    with emnify(endpoints=8) as emulator:
        client = Client(emulator)
        traits = app_of(emulator).traits
        endpoint_id = next(endpoint_id for endpoint_id in live_ids(emulator) if traits[endpoint_id]["last_month"] and traits[endpoint_id]["current_month"])
        today = today_of(emulator)
        path = f"/endpoint/{endpoint_id}/stats/daily"

        def dates(**params: Any) -> List[str]:
            return [entry["date"] for entry in client.json(path, **params)]

        default = dates()
        assert default and min(default) >= today.replace(day=1).isoformat() and max(default) <= today.isoformat()
        assert default == sorted(default)

        start = today - timedelta(days=190)  # 2026-05-12: six months from it end on 2026-11-11
        six_months = dates(start_date=start.isoformat())
        assert start == date(2026, 5, 12)
        assert min(six_months) >= "2026-05-12" and "2026-11-11" >= max(six_months) >= "2026-11-01"
        assert min(six_months) < months_back(today, 1).isoformat(), "days before last month are kept too"
        recent = dates(start_date=(today - timedelta(days=20)).isoformat())
        assert min(recent) >= (today - timedelta(days=20)).isoformat() and max(recent) <= today.isoformat(), "capped at today"

        end = date(2026, 10, 20)
        month_of_end = dates(end_date=end.isoformat())
        assert month_of_end and min(month_of_end) >= "2026-10-01" and max(month_of_end) <= "2026-10-20"

        both = dates(start_date="2026-09-28", end_date="2026-10-03")
        assert both and min(both) >= "2026-09-28" and max(both) <= "2026-10-03"
        assert dates(start_date="2026-10-03", end_date="2026-10-03") in ([], ["2026-10-03"])

        too_long = client.get(path, start_date="2026-05-01", end_date="2026-11-01")
        assert too_long.status_code == 422 and too_long.json()["error_code"] == 1301
        assert client.get(path, start_date="2026-05-01", end_date="2026-10-31").status_code == 200, "six months is allowed"
        backwards = client.get(path, start_date="2026-10-05", end_date="2026-10-01")
        assert backwards.status_code == 422 and backwards.json()["error_token"] == "InvalidQueryCriteria"
        malformed = client.get(path, start_date="18.11.2026")
        assert malformed.status_code == 422
        assert malformed.json()["error_code"] == 1400 and malformed.json()["errors"][0]["error_code"] == 1403
        assert client.get("/endpoint/1/stats/daily").status_code == 404


def test_daily_entries_have_the_reference_shape() -> None:
    with emnify(endpoints=10, satellite_endpoints=2) as emulator:
        client = Client(emulator)
        app = app_of(emulator)
        for endpoint_id in live_ids(emulator):
            response = client.get(f"/endpoint/{endpoint_id}/stats/daily", start_date="2026-10-01", end_date="2026-11-18")
            entries = response.json()
            assert entries and isinstance(entries, list)
            for entry in entries:
                assert set(entry) == {"date", "data", "sms", "sat_geo_data", "sat_geo_sms"}
                for kind, unit, type_id in (("data", "MB", 5), ("sms", "SMS", 6)):
                    item = entry[kind]
                    assert set(item) == {"volume", "volume_tx", "volume_rx", "cost", "currency", "traffic_type"}
                    assert all(isinstance(item[field], str) and len(item[field].split(".")[1]) == 6 for field in VOLUMES)
                    assert Decimal(item["volume"]) == Decimal(item["volume_tx"]) + Decimal(item["volume_rx"])
                    assert isinstance(item["cost"], (int, float))
                    assert item["currency"] == {"code": "EUR", "symbol": "€", "id": 1}
                    assert item["traffic_type"]["unit"] == unit and item["traffic_type"]["id"] == type_id
                    if kind == "sms":
                        assert Decimal(item["volume"]) == int(Decimal(item["volume"])), "messages are whole"
                satellite = endpoint_id in app.satellite
                for kind in ("sat_geo_data", "sat_geo_sms"):
                    if satellite:
                        assert set(entry[kind]) == {"volume", "volume_tx", "volume_rx", "cost"}
                    else:
                        assert entry[kind] is None
        assert len(app.satellite) == 2


def test_daily_volumes_as_numbers() -> None:
    with emnify(endpoints=3, daily_volumes_as_numbers=True) as emulator:
        client = Client(emulator)
        entries = client.get(f"/endpoint/{live_ids(emulator)[0]}/stats/daily", start_date="2026-10-01").json()
        assert entries and all(isinstance(entry["data"][field], float) for entry in entries for field in VOLUMES)


def test_daily_null_kinds_report_days_without_a_kind_as_null_or_empty() -> None:
    with emnify(endpoints=20, daily_null_kinds=True) as emulator:
        client = Client(emulator)
        shapes = set()
        for endpoint_id in live_ids(emulator):
            for entry in client.json(f"/endpoint/{endpoint_id}/stats/daily", start_date="2026-09-01", end_date="2026-11-18"):
                for kind in ("data", "sms"):
                    value = entry[kind]
                    shapes.add("null" if value is None else "empty" if value == {} else "object")
                    if value:
                        assert Decimal(value["volume"]) > 0, "with the knob, only kinds with traffic are objects"
                assert entry["data"] or entry["sms"], "a listed day had some traffic"
        assert shapes == {"null", "empty", "object"}
        assert assert_days_add_up_to_the_snapshot(emulator)


def crawl_daily(emulator: Emulator, start: date) -> List[dict]:
    """Daily records as a reader that understands the API would build them, for comparison with expected()."""
    client = Client(emulator)
    records = []
    for endpoint_id in live_ids(emulator):
        entries = client.json(f"/endpoint/{endpoint_id}/stats/daily", start_date=start.isoformat())
        for entry in entries:
            for kind in ("data", "sms", "sat_geo_data", "sat_geo_sms"):
                item = entry[kind]
                if not item:
                    continue
                records.append(
                    {
                        "endpoint_id": endpoint_id,
                        "date": entry["date"],
                        "traffic_kind": kind,
                        **{field: float(item[field]) for field in VOLUMES},
                        "unit": "MB" if kind.endswith("data") else "SMS",
                        "cost": float(item["cost"]),
                        "currency": item["currency"]["code"] if "currency" in item else None,
                    }
                )
    return records


@pytest.mark.parametrize("knobs", [{}, {"daily_null_kinds": True, "satellite_endpoints": 3, "deleted_endpoints": 2}])
def test_expected_daily_records_are_what_the_api_reports(knobs: Dict[str, Any]) -> None:
    with emnify(endpoints=15, **knobs) as emulator:
        start = date(2026, 10, 25)
        expected = emulator.expected("emnify_endpoint_usage_daily", start_date="2026-10-25T07:00:00Z")
        crawled = crawl_daily(emulator, start)

        def key(record: dict) -> tuple:
            return record["endpoint_id"], record["date"], record["traffic_kind"]

        final_before = (today_of(emulator) - timedelta(days=2)).isoformat()  # older than the 2-day lookback
        assert {record["is_final"] for record in expected if record["date"] < final_before} <= {True}
        assert {record["is_final"] for record in expected if record["date"] >= final_before} <= {False}
        assert sorted(({k: v for k, v in record.items() if k != "is_final"} for record in expected), key=key) == sorted(crawled, key=key)
        assert {record["date"] for record in expected} <= {(start + timedelta(days=offset)).isoformat() for offset in range(25)}
        assert not {record["endpoint_id"] for record in expected} & app_of(emulator).deleted
        if knobs:
            assert {record["traffic_kind"] for record in expected} == {"data", "sms", "sat_geo_data", "sat_geo_sms"}


def test_expected_monthly_records_are_what_the_snapshot_reports() -> None:
    with emnify(endpoints=15, out_of_order_updates=True) as emulator:
        emulator.advance(4)
        client = Client(emulator)
        crawled = []
        for endpoint_id in live_ids(emulator):
            snapshot = client.json(f"/endpoint/{endpoint_id}/stats")
            for period in ("last_month", "current_month"):
                for row in snapshot.get(period, {}).values():
                    crawled.append(
                        {
                            **row,
                            **{field: float(row[field]) for field in VOLUMES},
                            "cost": float(row["cost"]),
                            "period": period,
                            # as the connector delivers them: RFC 3339 UTC, and a closed month is final
                            "month": row["month"].replace(".000Z", "Z"),
                            "last_updated": row["last_updated"].replace(".000Z", "Z"),
                            "is_final": period == "last_month",
                        }
                    )
        expected = emulator.expected("emnify_endpoint_usage_monthly")
        assert sorted(expected, key=lambda record: record["id"]) == sorted(crawled, key=lambda record: record["id"])


def test_an_unknown_start_date_defaults_to_thirty_days_before_the_clock() -> None:
    with emnify(endpoints=5) as emulator:
        dates = {record["date"] for record in emulator.expected("emnify_endpoint_usage_daily")}
        assert min(dates) >= (today_of(emulator) - timedelta(days=30)).isoformat()
        assert max(dates) <= today_of(emulator).isoformat()


def test_the_clock_starts_now_without_the_now_knob() -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    with Emulator(seed=3, rate_limits=False, vendors=["emnify"], emnify={"endpoints": 4}) as emulator:
        assert before <= app_of(emulator).clock <= datetime.now(timezone.utc)
        assert assert_days_add_up_to_the_snapshot(emulator) > 0


def test_a_token_lifetime_in_requests_expires_the_token_after_that_many_requests_whatever_the_time() -> None:
    with emnify(endpoints=2, token_lifetime_requests=3) as emulator:
        client = Client(emulator)
        endpoint_id = live_ids(emulator)[0]
        statuses = [client.get(f"/endpoint/{endpoint_id}/stats").status_code for _ in range(4)]
        expired = client.get(f"/endpoint/{endpoint_id}/stats")
        client.authenticate()
        renewed = client.get(f"/endpoint/{endpoint_id}/stats").status_code

        assert statuses == [200, 200, 200, 401] and expired.status_code == 401
        assert expired.json()["error_token"] == "TokenExpired"
        assert renewed == 200, "a new token has its own three requests"
