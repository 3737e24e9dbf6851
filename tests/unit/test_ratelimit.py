from region.ratelimit import Bucket, take


def test_full_bucket_allows_a_burst_then_refuses_with_retry_after() -> None:
    bucket = None
    for _ in range(3):
        ok, bucket, _ = take(bucket, 0, rate_per_s=2.0, burst=3)
        assert ok
    ok, bucket, retry = take(bucket, 0, rate_per_s=2.0, burst=3)
    assert not ok and retry == 0.5


def test_refill_is_capped_at_burst() -> None:
    ok, after, _ = take(Bucket(0.0, 0), 10_000, rate_per_s=2.0, burst=3)
    assert ok and after.tokens == 2.0


def test_partial_refill() -> None:
    ok, _, retry = take(Bucket(0.0, 0), 250, rate_per_s=2.0, burst=3)
    assert not ok and abs(retry - 0.25) < 1e-9
    ok, _, _ = take(Bucket(0.0, 0), 500, rate_per_s=2.0, burst=3)
    assert ok
