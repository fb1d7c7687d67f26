"""The Lake port's shared suite: Parquet in a local folder and on S3 pass the same tests.

`file://` runs always, in a fresh folder per test; S3 runs when
RECOMIND_TEST_S3_URL (`s3://bucket/prefix`) is set, each test under its own
unique prefix so tests never see each other's objects.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from recomind.adapters.lake import open_lake
from recomind.domain.event_columns import EventBatch
from recomind.domain.events import VIDEO_ACTIONS_TOPIC, VideoActionRecorded
from recomind.domain.model import ActionType, VideoAction
from recomind.domain.ports import BusRecord, Lake, LakeRecord

T0 = datetime(2024, 3, 1, 9, 15, 0, tzinfo=UTC)

OpenLake = Callable[[], Lake]


@pytest.fixture(
    params=[
        pytest.param(None, id="file"),
        pytest.param(
            "RECOMIND_TEST_S3_URL",
            id="s3",
            marks=pytest.mark.skipif(
                not os.environ.get("RECOMIND_TEST_S3_URL"),
                reason="RECOMIND_TEST_S3_URL is not set",
            ),
        ),
    ]
)
def lake_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param is None:
        return f"file://{tmp_path / 'lake'}"
    return f"{os.environ[request.param].rstrip('/')}/recomind-test-{uuid.uuid4().hex}"


@pytest.fixture
def open_again(lake_url: str) -> OpenLake:
    """A new lake object on the same URL each call (a restarted sink)."""
    return lambda: open_lake(lake_url)


@pytest.fixture
def lake(open_again: OpenLake) -> Lake:
    return open_again()


def object_names(lake_url: str) -> list[str]:
    """Every object under the lake, relative to its root; hidden temporaries left out."""
    parts = urlsplit(lake_url)
    if parts.scheme == "file":
        root = Path(parts.netloc + parts.path)
        names = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    else:
        import boto3

        prefix = parts.path.lstrip("/") + "/"
        # The same endpoint as the adapter's; boto3 alone would not read RECOMIND_S3_ENDPOINT_URL.
        endpoint = os.environ.get("RECOMIND_S3_ENDPOINT_URL") or None
        pages = boto3.client("s3", endpoint_url=endpoint).get_paginator("list_objects_v2")
        names = [
            obj["Key"][len(prefix) :]
            for page in pages.paginate(Bucket=parts.netloc, Prefix=prefix)
            for obj in page.get("Contents", [])
        ]
    return sorted(n for n in names if not n.rsplit("/", 1)[-1].startswith("."))


def action(
    n: int, at: datetime = T0, watch_ms: int | None = None, **changes: object
) -> VideoAction:
    fields: dict[str, object] = {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "user_id": f"u{n % 3}",
        "video_id": f"v{n % 5}",
        "action_type": (ActionType.VIEW, ActionType.LIKE, ActionType.SKIP)[n % 3],
        "timestamp": at,
        "watch_ms": watch_ms,
    }
    fields.update(changes)
    return VideoAction(**fields)  # type: ignore[arg-type]


def records(partition: int, offsets: range, at: datetime = T0) -> list[LakeRecord]:
    return [
        LakeRecord(partition, o, action(partition * 1000 + o, at + timedelta(seconds=o)))
        for o in offsets
    ]


def by_id(actions: list[VideoAction]) -> dict[str, VideoAction]:
    return {a.id: a for a in actions}


def test_an_empty_lake(lake: Lake) -> None:
    assert lake.count_actions() == 0
    assert lake.read_actions() == []
    assert lake.last_offsets() == {}


def test_written_records_read_back_equal(lake: Lake) -> None:
    batch = [
        LakeRecord(0, 1, action(1, watch_ms=1200)),
        LakeRecord(0, 2, action(2, T0 + timedelta(microseconds=250))),
        LakeRecord(
            3, 7, action(3, datetime(2024, 3, 1, 11, 0, tzinfo=timezone(timedelta(hours=2))))
        ),
    ]
    assert lake.write_actions(batch) == 3

    got = lake.read_actions()
    assert len(got) == 3
    assert by_id(got) == by_id([r.action for r in batch])
    for a in got:
        assert a.timestamp.utcoffset() == timedelta(0)
    assert lake.count_actions() == 3


def test_rewriting_the_same_records_writes_nothing(lake: Lake, open_again: OpenLake) -> None:
    batch = records(0, range(1, 6)) + records(1, range(1, 4))
    assert lake.write_actions(batch) == 8
    assert lake.write_actions(batch) == 0

    restarted = open_again()
    assert restarted.write_actions(batch) == 0
    assert restarted.count_actions() == 8
    assert sorted(by_id(restarted.read_actions())) == sorted(by_id([r.action for r in batch]))


def test_an_overlapping_batch_writes_only_the_new_offsets(lake: Lake, open_again: OpenLake) -> None:
    lake.write_actions(records(0, range(1, 6)))
    assert open_again().write_actions(records(0, range(4, 9))) == 3
    assert lake.count_actions() == 8


def test_the_first_offset_of_a_partition_is_zero(lake: Lake, open_again: OpenLake) -> None:
    # Kafka numbers each partition's records from offset 0.
    batch = records(0, range(3)) + records(5, range(1))
    assert lake.write_actions(batch) == 4
    assert lake.count_actions() == 4
    assert lake.last_offsets() == {0: 2, 5: 0}
    assert open_again().write_actions(batch) == 0


def test_last_offsets_per_partition_survive_a_restart(lake: Lake, open_again: OpenLake) -> None:
    lake.write_actions(records(0, range(1, 4)) + records(2, range(10, 13)))
    lake.write_actions(records(0, range(4, 6)))
    assert lake.last_offsets() == {0: 5, 2: 12}
    assert open_again().last_offsets() == {0: 5, 2: 12}


def test_archived_actions_are_read_and_counted(lake: Lake, open_again: OpenLake) -> None:
    imported = [action(n, T0 + timedelta(hours=n)) for n in range(4)]
    assert lake.archive_actions(imported) == 4
    lake.write_actions(records(1, range(1, 3)))

    assert lake.last_offsets() == {1: 2}  # imports did not come through the bus
    restarted = open_again()
    assert restarted.count_actions() == 6
    assert by_id(restarted.read_actions()) == by_id(
        imported + [r.action for r in records(1, range(1, 3))]
    )


def test_files_land_under_dt_and_hour_folders(lake: Lake, lake_url: str) -> None:
    late_evening_plus_two = datetime(2024, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=2)))
    next_day = datetime(2024, 3, 2, 0, 5, tzinfo=UTC)
    lake.write_actions(
        [
            LakeRecord(0, 1, action(1, T0)),
            LakeRecord(0, 2, action(2, late_evening_plus_two)),
            LakeRecord(1, 1, action(3, next_day)),
        ]
    )
    lake.archive_actions([action(4, datetime(2023, 12, 31, 23, 59, tzinfo=UTC))])

    names = object_names(lake_url)
    layout = re.compile(r"^video_actions/dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/[^/]+\.parquet$")
    folders = set()
    for name in names:
        m = layout.match(name)
        assert m, f"{name} is not under video_actions/dt=YYYY-MM-DD/hour=HH/"
        folders.add(m.groups())
    assert folders == {
        ("2024-03-01", "09"),
        ("2024-03-01", "21"),
        ("2024-03-02", "00"),
        ("2023-12-31", "23"),
    }


def test_feature_batches_are_written_once_per_offset_range(
    lake: Lake, open_again: OpenLake
) -> None:
    rows = [{"video_id": "v1", "dt": "2024-03-01", "events": 2}]
    assert lake.read_features("video_daily") == []
    assert lake.write_features("video_daily", 0, 0, 9, rows) is True
    assert lake.write_features("video_daily", 1, 0, 4, rows) is True
    again = open_again()  # a restarted sink replays the batch it had not committed
    assert again.write_features("video_daily", 0, 0, 9, rows) is False
    assert again.write_features("video_daily", 0, 5, 9, rows) is False
    assert again.write_features("video_daily", 0, 10, 12, []) is True  # nothing to write
    assert again.write_features("video_daily", 0, 13, 14, rows) is True
    assert sorted(r["events"] for r in again.read_features("video_daily")) == [2, 2, 2]
    assert again.read_features("viewer_daily") == []


# -- one event twice on the topic (a producer or spool resend, ADR 0003) ---------------------


def test_a_second_copy_of_an_event_in_one_batch_is_archived_once(lake: Lake) -> None:
    first = records(3, range(25, 30))
    resent = [LakeRecord(3, r.offset + 5, r.action) for r in first]  # offsets 30..34
    assert lake.write_actions(first + resent) == 5
    assert lake.count_actions() == 5
    assert sorted(a.id for a in lake.read_actions()) == sorted(r.action.id for r in first)


def test_a_resend_in_a_later_batch_is_archived_once_even_after_a_restart(
    lake: Lake, open_again: OpenLake
) -> None:
    first = records(3, range(25, 47))
    assert lake.write_actions(first) == 22
    resent = [LakeRecord(3, r.offset + 22, r.action) for r in first]  # offsets 47..68
    new = records(3, range(69, 72))
    again = open_again()  # a restarted sink knows the ids only from the objects
    assert again.write_actions(resent[:10]) == 0
    assert again.write_actions(resent[10:] + new) == 3
    assert again.write_actions(resent) == 0  # and a replay of them changes nothing
    assert again.count_actions() == 25
    assert again.last_offsets() == {3: 71}


def test_the_same_id_in_another_partition_or_hour_is_a_different_record(lake: Lake) -> None:
    """The window is one partition's dt/hour folder: a resend of the same message always falls
    there (same key, same timestamp), so nothing wider is searched."""
    one = action(7)
    later = action(7, T0 + timedelta(hours=1))
    assert lake.write_actions([LakeRecord(0, 1, one), LakeRecord(1, 1, one)]) == 2
    assert lake.write_actions([LakeRecord(0, 2, later)]) == 1


def test_counted_feature_ids_are_remembered_across_a_restart(
    lake: Lake, open_again: OpenLake
) -> None:
    first = records(2, range(0, 4))
    resent = [LakeRecord(2, r.offset + 4, r.action) for r in first]
    assert lake.uncounted(first + resent) == first  # the first copies, in offset order
    lake.mark_counted(first)
    again = open_again()
    assert again.uncounted(resent) == []
    other = records(2, range(8, 10))
    assert again.uncounted(resent + other) == other
    assert again.read_features("video_daily") == []  # the ledger is not a feature table


def test_a_flush_writes_one_object_per_folder_named_by_each_partitions_range(
    lake: Lake, lake_url: str, open_again: OpenLake
) -> None:
    """Each object is a request to the object store, so one flush writes one object per dt/hour
    folder, whatever the partitions; a partition's offsets and ids are still told apart."""
    batch = records(4, range(7, 10)) + records(0, range(0, 3)) + records(2, range(5, 6))
    batch.append(LakeRecord(2, 6, batch[0].action))  # partition 4's event in partition 2
    assert lake.write_actions(batch) == 8
    assert object_names(lake_url) == [
        "video_actions/dt=2024-03-01/hour=09/p000-000000000000-000000000002"
        "_p002-000000000005-000000000006_p004-000000000007-000000000009.parquet"
    ]
    assert lake.last_offsets() == {0: 2, 2: 6, 4: 9}
    again = open_again()
    resent = LakeRecord(4, 10, batch[1].action)  # partition 4's own resend is known there
    assert again.write_actions([*batch, resent, *records(2, range(7, 9))]) == 2
    assert again.count_actions() == 10
    assert by_id(again.read_actions()) == by_id(
        [r.action for r in batch] + [r.action for r in records(2, range(7, 9))]
    )


def test_more_than_six_partitions_in_a_folder_take_an_object_per_six(
    lake: Lake, lake_url: str, open_again: OpenLake
) -> None:
    batch = [r for p in range(8) for r in records(p, range(p * 10, p * 10 + 2))]
    assert lake.write_actions(batch) == 16
    names = [n.rsplit("/", 1)[1] for n in object_names(lake_url)]
    assert [len(n) for n in names] == [193, 69]  # under a local file name's 255 bytes
    assert [n.count("_p") + 1 for n in names] == [6, 2]
    assert open_again().last_offsets() == {p: p * 10 + 1 for p in range(8)}
    assert open_again().write_actions(batch) == 0


def test_a_failed_write_of_one_folder_keeps_the_others_and_the_replay_adds_the_rest(
    lake: Lake, open_again: OpenLake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Folders are written side by side: when one folder's object fails, the others' objects
    stand, and the replay of the whole batch writes only what is missing, once."""
    batch = [
        r
        for p in range(4)
        for r in records(p, range(0, 6)) + records(p, range(6, 9), T0 + timedelta(hours=1))
    ]
    real_write = lake._write  # type: ignore[attr-defined]

    def failing(path: str, table: object) -> None:
        if "/hour=10/" in path:
            raise OSError("the object store went away")
        real_write(path, table)

    monkeypatch.setattr(lake, "_write", failing)
    with pytest.raises(OSError, match="went away"):
        lake.write_actions(batch)
    assert lake.count_actions() == 4 * 6
    monkeypatch.setattr(lake, "_write", real_write)

    assert lake.write_actions(batch) == 12
    assert open_again().write_actions(batch) == 0
    assert sorted(a.id for a in lake.read_actions()) == sorted(r.action.id for r in batch)
    assert lake.last_offsets() == {0: 8, 1: 8, 2: 8, 3: 8}


@pytest.mark.skipif(
    not os.environ.get("RECOMIND_TEST_S3_URL"), reason="RECOMIND_TEST_S3_URL is not set"
)
def test_an_object_the_s3_server_refuses_raises_from_the_lakes_put() -> None:
    """The lake's PUT (botocore, not pyarrow's stream) raises what the server refuses, after
    its retries, so the lake never counts the object as written."""
    from botocore.exceptions import ClientError

    from recomind.adapters.lake.s3 import S3Put

    put = S3Put()
    with pytest.raises(ClientError, match="NoSuchBucket"):
        put(f"recomind-no-such-bucket-{uuid.uuid4().hex[:12]}/lake/x.parquet", b"PAR1")


@pytest.mark.skipif(
    not os.environ.get("RECOMIND_TEST_S3_URL"), reason="RECOMIND_TEST_S3_URL is not set"
)
def test_both_s3_clients_trust_the_certificates_that_aws_ca_bundle_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An S3 server behind HTTPS with a private CA: with `AWS_CA_BUNDLE` naming it, the lake
    writes (botocore), lists and reads (pyarrow) there; without it, both clients refuse it; set
    but empty, the lake does not open."""
    import trustme
    from botocore.exceptions import SSLError

    from recomind.adapters.lake.s3 import S3Put
    from recomind.domain.errors import InvalidInput
    from tests.support.tls_proxy import TlsProxy

    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    plain = urlsplit(os.environ.get("RECOMIND_S3_ENDPOINT_URL") or "")
    if plain.scheme != "http" or not plain.hostname or not plain.port:
        pytest.skip("needs a local S3 server over plain HTTP to put TLS in front of")
    url = f"{os.environ['RECOMIND_TEST_S3_URL'].rstrip('/')}/recomind-test-{uuid.uuid4().hex}"
    batch = records(0, range(1, 4))
    with TlsProxy(plain.hostname, plain.port, ca.issue_cert("127.0.0.1").configure_cert) as tls:
        monkeypatch.setenv("RECOMIND_S3_ENDPOINT_URL", f"https://127.0.0.1:{tls.port}")
        monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
        with pytest.raises(OSError, match="certificate"):
            open_lake(url).count_actions()
        with pytest.raises(SSLError, match="CERTIFICATE_VERIFY_FAILED"):
            S3Put()(f"{urlsplit(url).netloc}{urlsplit(url).path}/refused.parquet", b"PAR1")
        monkeypatch.setenv("AWS_CA_BUNDLE", " ")
        with pytest.raises(InvalidInput, match="AWS_CA_BUNDLE is set but empty"):
            open_lake(url)

        monkeypatch.setenv("AWS_CA_BUNDLE", str(bundle))
        lake = open_lake(url)
        assert lake.write_actions(batch) == 3
        assert by_id(lake.read_actions()) == by_id([r.action for r in batch])
        assert open_lake(url).last_offsets() == {0: 3}
        assert open_lake(url).write_actions(batch) == 0


# -- bus events handed over undecoded (the lake sink's path) ----------------------------------


def bus_records(lake_records: list[LakeRecord]) -> list[BusRecord]:
    return [
        BusRecord(
            VIDEO_ACTIONS_TOPIC,
            r.partition,
            r.offset,
            r.action.user_id,
            VideoActionRecorded(r.action).to_json(),
        )
        for r in lake_records
    ]


def test_bus_events_are_archived_as_their_decoded_actions(lake_url: str, lake: Lake) -> None:
    batch = records(0, range(1, 6)) + records(2, range(40, 43), T0 + timedelta(hours=5))
    batch.append(LakeRecord(0, 6, batch[1].action))  # a resend: archived once
    assert lake.write_events(EventBatch.decode(bus_records(batch))) == []
    assert by_id(lake.read_actions()) == by_id([r.action for r in batch])
    assert lake.count_actions() == 8
    assert lake.last_offsets() == {0: 5, 2: 42}  # the resend at 6 is in no object
    assert object_names(lake_url) == [
        "video_actions/dt=2024-03-01/hour=09/p000-000000000001-000000000005.parquet",
        "video_actions/dt=2024-03-01/hour=14/p002-000000000040-000000000042.parquet",
    ]
    assert lake.write_events(EventBatch.decode(bus_records(batch))) == []  # a replay writes nothing
    assert lake.count_actions() == 8


def test_poison_among_bus_events_is_refused_with_its_reason_and_the_rest_archived(
    lake: Lake,
) -> None:
    good = bus_records(records(1, range(10, 14)))
    poison = [
        BusRecord(VIDEO_ACTIONS_TOPIC, 1, 14, "u1", b"not json"),
        BusRecord(
            VIDEO_ACTIONS_TOPIC,
            1,
            15,
            "u1",
            VideoActionRecorded(action(99)).to_json().replace(b'"view"', b'"share"'),
        ),
    ]
    refused = lake.write_events(EventBatch.decode([good[0], poison[0], *good[1:], poison[1]]))
    assert [(r.offset, reason) for r, reason in refused] == [
        (14, "event is not JSON: invalid literal, expected 'null': line 1 column 1 (char 0)"),
        (15, "field 'action_type': must be one of view, like, skip (got 'share')"),
    ]
    assert lake.count_actions() == 4
    assert lake.last_offsets() == {1: 13}
