from chorus.sdk.transports import SseEvents


def feed(lines: list[str]) -> list[str]:
    events = SseEvents()
    return [data for line in lines if (data := events.feed(line)) is not None]


def test_each_event_yields_its_data() -> None:
    stream = ["id: us-east:e:1\n", "event: comments\n", 'data: {"type":"comments"}\n', "\n",
              "event: viewers\n", 'data: {"type":"viewers"}\n', "\n"]
    assert feed(stream) == ['{"type":"comments"}', '{"type":"viewers"}']


def test_comment_lines_and_empty_events_yield_nothing() -> None:
    assert feed([": keepalive\n", "\n", "\n", "event: x\n", "\n"]) == []


def test_data_lines_join_with_newlines_and_lose_one_leading_space() -> None:
    assert feed(["data: {\"a\":\n", "data:1}\n", "\n"]) == ['{"a":\n1}']


def test_a_line_without_its_newline_is_read_the_same() -> None:
    assert feed(["data: x", ""]) == ["x"]
