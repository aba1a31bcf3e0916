"""UsageStream, the machinery under every vendor's streams: how a page's records reach the stream's thread."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import requests_mock
from airbyte_cdk.models import SyncMode

from source_usage.framework.stream import BATCH_RECORDS
from source_usage.framework.windows import floor_time
from unit_tests.twilio_fixtures import record_at, serve_usage, usage_stream


def test_given_a_page_larger_than_a_batch_when_a_partition_is_read_then_its_records_come_in_bounded_batches_in_order() -> None:
    day = floor_time(datetime.now(timezone.utc), timedelta(days=1)) - timedelta(days=1)
    sims = [f"HS{index:032d}" for index in range(2 * BATCH_RECORDS + 200)]
    stream = usage_stream(start=day)
    with requests_mock.Mocker() as mock:
        serve_usage(mock, [record_at(day, sim_sid=sim) for sim in sims])  # one page of 1,200 records
        batches = [
            batch
            for partition in stream.partitions(SyncMode.full_refresh)
            for batch in stream.read_partition(partition)
            if batch
        ]

    assert [len(batch) for batch in batches] == [BATCH_RECORDS, BATCH_RECORDS, 200]
    assert [record["sim_sid"] for batch in batches for record in batch] == sims
