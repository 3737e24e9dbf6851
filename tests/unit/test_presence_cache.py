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


def test_an_answer_to_a_question_asked_before_a_change_is_not_kept() -> None:
    # A refresh went out, the region's first viewer arrived (a change event), and then the
    # refresh's "0" came back: storing it would hide the new viewer for a cache lifetime.
    now = [10.0]
    cache = PresenceCache(ttl_s=2.0, stale_s=10.0, clock=lambda: now[0])
    cache.put("s", Answer("ap-south", 0))
    asked_at = now[0] = 11.0
    now[0] = 11.1
    cache.invalidate("s", "ap-south")
    now[0] = 11.2
    cache.put("s", Answer("ap-south", 0), asked_at)
    assert cache.get("s", "ap-south") is None and cache.last_known("s", "ap-south") is None
    # A question asked after the change is news again.
    cache.put("s", Answer("ap-south", 1), asked_at=11.2)
    assert cache.get("s", "ap-south") == Answer("ap-south", 1)


def test_change_times_are_bounded() -> None:
    now = [0.0]
    cache = PresenceCache(ttl_s=1.0, clock=lambda: now[0], max_entries=10)
    for i in range(50):
        now[0] = i
        cache.invalidate(f"s{i}", "eu-west")
    assert len(cache._changed) <= 10
