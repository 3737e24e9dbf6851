from global_.presence import Answer, PresenceCache


def test_answers_expire_and_report_their_age() -> None:
    now = [0.0]
    cache = PresenceCache(ttl_s=2.0, clock=lambda: now[0])
    cache.put("s", Answer("eu-west", 3))
    now[0] = 1.5
    assert cache.get_aged("s", "eu-west") == (Answer("eu-west", 3), 1.5)
    now[0] = 2.5
    assert cache.get("s", "eu-west") is None


def test_unanswered_questions_are_not_cached_and_count_as_viewers() -> None:
    cache = PresenceCache(ttl_s=2.0)
    cache.put("s", Answer("ap-south", None))
    assert cache.get("s", "ap-south") is None
    assert Answer("ap-south", None).has_viewers and not Answer("ap-south", 0).has_viewers


def test_a_change_event_drops_the_answer() -> None:
    cache = PresenceCache(ttl_s=60.0)
    cache.put("s", Answer("us-east", 0))
    cache.invalidate("s", "us-east")
    assert cache.get("s", "us-east") is None


def test_the_cache_is_bounded() -> None:
    now = [0.0]
    cache = PresenceCache(ttl_s=60.0, clock=lambda: now[0], max_entries=10)
    for i in range(25):
        now[0] = i
        cache.put(f"s{i}", Answer("eu-west", 1))
    assert len(cache._entries) <= 10
    assert cache.get("s24", "eu-west") is not None
