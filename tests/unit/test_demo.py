"""`chorus up --demo`'s plan (chorus/cluster/demo.py): bounded, loopback only."""

from __future__ import annotations

import dataclasses
import random

import pytest

from chorus.cluster.demo import (
    MAX_RATE,
    MAX_VIEWERS,
    Chatter,
    Demo,
    DemoPlan,
    is_loopback,
    next_line,
    next_reaction,
)
from chorus.config import Config
from chorus.errors import ClusterError
from chorus.model import Comment
from region.classifier import HeuristicClassifier, Window


def test_lines_go_round_the_regions_and_some_reply() -> None:
    rng = random.Random(7)
    regions = ("us-east", "eu-west", "ap-south")
    lines = [next_line(rng, n, regions, ("demo",)) for n in range(300)]
    assert [line.region for line in lines[:4]] == ["us-east", "eu-west", "ap-south", "us-east"]
    assert not lines[0].reply
    assert 30 < sum(line.reply for line in lines) < 100
    assert all(line.text and line.user.startswith("demo-") for line in lines)
    assert any("hello from ap-south" in line.text for line in lines)


@pytest.mark.parametrize(("url", "ok"), [("http://127.0.0.1:8101", True),
                                         ("http://127.0.0.9:1", True),
                                         ("http://localhost:8101", True),
                                         ("http://[::1]:8101", True),
                                         ("http://10.0.0.5:8101", False),
                                         ("https://eu.chorus.example", False)])
def test_loopback_only(url: str, ok: bool) -> None:
    assert is_loopback(url) is ok


def test_the_plan_is_bounded() -> None:
    DemoPlan().check(regions=3)
    with pytest.raises(ClusterError):
        DemoPlan(viewers_per_region=MAX_VIEWERS).check(regions=3)
    with pytest.raises(ClusterError):
        DemoPlan(comments_per_s=MAX_RATE + 1).check(regions=3)
    with pytest.raises(ClusterError):
        DemoPlan(streams=()).check(regions=3)


def test_refuses_a_deployment(repo_config: Config) -> None:
    Demo(repo_config)  # the local cluster: fine
    far = dataclasses.replace(repo_config.regions[0], host="10.1.2.3")
    with pytest.raises(ClusterError, match="local cluster only"):
        Demo(dataclasses.replace(repo_config, regions=(far, *repo_config.regions[1:])))


def test_the_demo_reads_as_a_chat_to_the_classifier() -> None:
    # The demo at its top rate for ten minutes: the region's classifier, fed the
    # demo's lines at their times, takes none of them for a flood (drawn without the
    # chatter's memory, four in ten were).
    rng, chatter, window = random.Random(3), Chatter(), Window()
    classifier = HeuristicClassifier()
    regions = ("us-east", "eu-west", "ap-south")
    flagged = []
    for n in range(int(600 * MAX_RATE)):
        now_s = n / MAX_RATE
        line = next_line(rng, n, regions, ("demo",), chatter, now_s)
        comment = Comment(id=f"c{n}", stream=line.stream, region=line.region, user=line.user,
                          name=line.name, text=line.text, ts=int(now_s * 1000))
        score = classifier.score(comment, window.observe(comment, now_s))
        if score.flagged:
            flagged.append((line.text, score.reasons))
    assert flagged == []


def test_reactions_go_round_the_regions_common_kinds_first() -> None:
    rng = random.Random(5)
    regions = ("us-east", "eu-west", "ap-south")
    kinds = ("like", "heart", "laugh", "wow", "sad", "clap")
    taps = [next_reaction(rng, n, regions, kinds) for n in range(600)]
    assert [region for _, region, _ in taps[:4]] == ["us-east", "eu-west", "ap-south", "us-east"]
    counts = {kind: sum(k == kind for _, _, k in taps) for kind in kinds}
    assert counts["like"] > counts["clap"] > 0
    assert all(user.startswith("demo-") for (user, _), _, _ in taps)
    with pytest.raises(ClusterError):
        DemoPlan(reactions_per_s=1000).check(regions=3)
