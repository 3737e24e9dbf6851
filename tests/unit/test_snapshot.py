"""The snapshot tier's document and its HTTP caching, the frames of hot streams as the SDK
reads them, and the S3 wiring of a deployed cell (request signing, settings)."""

from __future__ import annotations

import datetime
import hashlib
import json
import random
from pathlib import Path

import pytest

from chorus.config import load_config
from chorus.errors import ConfigError
from chorus.model import Comment
from chorus.sdk import frames
from region import protocol
from region.deployment import settings_from_env
from region.snapshot import (
    Rendered,
    cache_control,
    etag_of,
    not_modified,
    render,
)
from region.snapshot_s3 import Credentials, S3SnapshotPublisher, SnapshotTarget, sign

HOST = Comment("0000000000010000-us-east.0", "s", "us-east", "h", "Host", "welcome", 1,
               badge="host")
FAN = Comment("0000000000020000-eu-west.0", "s", "eu-west", "f", "Fan", "wow", 2)
SHADOW = Comment("0000000000030000-eu-west.0", "s", "eu-west", "x", "X", "spam", 3,
                 shadow=True)


def doc(**change: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = dict(now_ms=1000, interval_s=1.0, viewers=120_000,
                                   rate_per_s=900.4, posted=870, sample=[FAN, SHADOW],
                                   priority=[HOST])
    args.update(change)
    return render("s", "us-east", **args)  # type: ignore[arg-type]


def test_a_document_holds_the_sample_the_priority_lane_and_the_counts() -> None:
    body = json.loads(Rendered.of(doc()).body)
    assert body["tier"] == "snapshot" and body["viewers"] == 120_000
    assert body["rate_per_s"] == 900 and body["posted"] == 870
    assert [c["id"] for c in body["comments"]] == [FAN.id]     # no shadow-banned comment
    assert [c["id"] for c in body["priority"]] == [HOST.id]


def test_an_unchanged_render_keeps_its_document_and_its_etag() -> None:
    first = doc()
    again = doc(now_ms=2000, previous=first)
    assert again is first
    changed = doc(now_ms=2000, posted=10, previous=first)
    assert changed is not first
    assert Rendered.of(changed).etag != Rendered.of(first).etag
    # The same bytes give the same tag in any gateway.
    assert Rendered.of(first).etag == etag_of(Rendered.of(first).body)


@pytest.mark.parametrize(("header", "matches"), [
    (None, False), ("", False), ('"abc"', True), ('W/"abc"', True), ('"x", "abc"', True),
    ('"abcd"', False), ("*", True)])
def test_if_none_match_is_compared_as_rfc_9110_says(header: str | None, matches: bool) -> None:
    assert not_modified(header, '"abc"') is matches


def test_caches_may_keep_a_document_one_interval() -> None:
    assert cache_control(1.0) == "public, max-age=1"
    assert cache_control(0.2) == "public, max-age=1"
    assert cache_control(5.0) == "public, max-age=5"


def test_the_sdk_reads_the_frames_of_hot_streams() -> None:
    rendered = Rendered.of(doc())
    snap = frames.decode(protocol.encode(protocol.Snapshot(rendered)))
    assert isinstance(snap, frames.Snapshot)
    assert snap.etag == rendered.etag and snap.priority == (HOST,) and snap.comments == (FAN,)
    assert snap.viewers == 120_000 and snap.interval_s == 1.0
    tier = frames.decode(protocol.encode(protocol.Tier(tier="sampled", cursor="c",
                                                       per_viewer_per_s=10)))
    assert tier == frames.Tier(tier="sampled", cursor="c", per_viewer_per_s=10)
    batch = frames.decode(protocol.encode(protocol.Comments(
        items=(FAN,), cursor="c", sample=protocol.Sample(shown=10, posted=900))))
    assert batch == frames.Comments(items=(FAN,), cursor="c",
                                    sample=frames.Sample(shown=10, posted=900))
    # A batch of a stream in the push tier is what it always was.
    assert protocol.encode(protocol.Comments(items=(), cursor="c")) == \
        '{"type":"comments","items":[],"cursor":"c"}'
    with pytest.raises(frames.MalformedFrame):
        frames.decode('{"type":"comments","items":[],"cursor":"c","sample":{"shown":-1,'
                      '"posted":1}}')


# -- S3 -----------------------------------------------------------------------------------------

EXAMPLE = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
MAY_24 = datetime.datetime(2013, 5, 24, tzinfo=datetime.UTC)


def test_requests_are_signed_as_in_awss_signature_v4_examples() -> None:
    # "Signature Calculations for the Authorization Header", S3 API reference: GET Object.
    get = sign("GET", "examplebucket.s3.amazonaws.com", "/test.txt", {"Range": "bytes=0-9"},
               hashlib.sha256(b"").hexdigest(), EXAMPLE, "us-east-1", MAY_24)
    assert get["Authorization"].endswith(
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature="
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    # PUT Object.
    body = b"Welcome to Amazon S3."
    put = sign("PUT", "examplebucket.s3.amazonaws.com", "/test%24file.text",
               {"Date": "Fri, 24 May 2013 00:00:00 GMT",
                "x-amz-storage-class": "REDUCED_REDUNDANCY"},
               hashlib.sha256(body).hexdigest(), EXAMPLE, "us-east-1", MAY_24)
    assert put["Authorization"].endswith(
        "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    assert put["x-amz-date"] == "20130524T000000Z"


def test_a_temporary_credentials_token_is_signed_too() -> None:
    signed = sign("PUT", "b.s3.eu-west-1.amazonaws.com", "/k", {}, "0" * 64,
                  Credentials("A", "S", token="T"), "eu-west-1", MAY_24)
    assert signed["x-amz-security-token"] == "T"
    assert "x-amz-security-token" in signed["Authorization"]


def test_clients_poll_the_document_through_the_cdn() -> None:
    publisher = S3SnapshotPublisher(SnapshotTarget(
        bucket="chorus-prod-eu-west-x", public_url="https://d1.cloudfront.net/",
        aws_region="eu-west-1", credentials_url="http://169.254.170.2/v2/credentials/x"))
    assert publisher.url("match-42") == "https://d1.cloudfront.net/v1/streams/match-42/snapshot"
    assert publisher.host == "chorus-prod-eu-west-x.s3.eu-west-1.amazonaws.com"


CONFIG = load_config(Path(__file__).resolve().parents[2] / "regions.yaml")
DEPLOYED = {"CHORUS_REGION": "eu-west", "CHORUS_NATS_URLS": "tls://nats:4222",
            "CHORUS_REDIS_URL": "rediss://redis:6379/0", "CHORUS_AUTH_SECRET": "k" * 48,
            "CHORUS_PUBLIC_URL": "https://eu-west.chorus.example"}
SNAPSHOTS = {"CHORUS_SNAPSHOT_BUCKET": "chorus-prod-eu-west-x",
             "CHORUS_SNAPSHOT_URL": "https://d1.cloudfront.net", "AWS_REGION": "eu-west-1",
             "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x"}


def test_a_deployed_gateway_finds_its_cells_bucket_in_the_environment() -> None:
    _, plain = settings_from_env(DEPLOYED, CONFIG, rng=random.Random(1))
    assert plain.snapshots is None    # served by the gateways themselves
    _, cell = settings_from_env({**DEPLOYED, **SNAPSHOTS}, CONFIG, rng=random.Random(1))
    assert cell.snapshots == SnapshotTarget(
        bucket="chorus-prod-eu-west-x", public_url="https://d1.cloudfront.net",
        aws_region="eu-west-1", credentials_url="http://169.254.170.2/v2/credentials/x")


@pytest.mark.parametrize(("drop", "var"), [
    ("CHORUS_SNAPSHOT_URL", "CHORUS_SNAPSHOT_URL"),
    ("CHORUS_SNAPSHOT_BUCKET", "CHORUS_SNAPSHOT_BUCKET"),
    ("AWS_REGION", "CHORUS_SNAPSHOT_BUCKET"),
    ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "CHORUS_SNAPSHOT_BUCKET")])
def test_an_incomplete_snapshot_target_is_refused(drop: str, var: str) -> None:
    env = {**DEPLOYED, **SNAPSHOTS}
    del env[drop]
    with pytest.raises(ConfigError) as info:
        settings_from_env(env, CONFIG)
    assert info.value.key == var
