"""Properties that hold for every input a client (or an operator) can give, with the
strategies that generate such inputs. Run short in the default test run
(tests/unit/test_fuzz_short.py) and long, alone, with ``-m fuzz`` (tests/fuzz/).

Each property counts its inputs in `TALLY`; an input that makes the code under test raise
anything but its documented error fails the test (hypothesis then shrinks it to a minimal
example), so "unhandled errors" is the number of failed property tests.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import hmac
import json
import os
import random
import struct
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import yaml
from hypothesis import strategies as st

from chorus.config import AuthConfig, Limits, parse_config
from chorus.errors import ConfigError
from chorus.ids import is_id
from chorus.model import is_user_id
from region.auth import origin_allowed, verify_token
from region.cursor import Cursor
from region.errors import ApiError
from region.masking import MaskScanner
from region.protocol import parse_client_frame
from region.validation import (
    CLIENT_KEY,
    NAME_MAX_CHARS,
    check_post,
    check_text,
    parse_json_body,
)

TALLY: Counter[str] = Counter()
LIMITS = Limits(comment_max_bytes=200, frame_max_bytes=4096)
SECRET = "fuzz-secret-" + "k" * 32
AUTH = AuthConfig(dev_secret=SECRET, issuer="chorus", audience="chorus-gateway",
                  max_token_lifetime_s=3600)
REPO_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "regions.yaml")

# -- strategies -------------------------------------------------------------------------------

# Characters that break things: controls, bidi and invisible ones, surrogates, quotes, newlines.
_nasty = st.sampled_from(["\x00", "\n", "\r", "\t", "\x1b", "\x7f", "\x85", "\u200b", "\u2060",
                          "\ufeff", "\u202e", "\u2066", "\u3164", "\ud800", "\udfff", '"', "\\",
                          "[", "{", "}", "]", ":", ".", "%0A", "é", "🎉", "\u0301"])
texts = st.one_of(st.text(max_size=80), st.lists(_nasty, max_size=12).map("".join),
                  st.builds(lambda a, b: a + b, st.text(max_size=20), _nasty))
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                         texts)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)), max_leaves=12)
comment_ids = st.one_of(st.just("018f2a3b4c5d0000-us-east.0"), texts,
                        st.builds(lambda s: "018f2a3b4c5d0000-us-east.0" + s, _nasty))
post_docs = st.one_of(
    json_values,
    st.fixed_dictionaries({"text": json_values}),
    st.fixed_dictionaries({"text": texts}, optional={"client_key": st.one_of(texts, json_values),
                                                     "reply_to": comment_ids,
                                                     "extra": json_values}))
frame_types = st.sampled_from(["resume", "comment", "react", "ping", "bogus", ""])


@st.composite
def frame_texts(draw: st.DrawFn) -> str:
    """A client frame's text: JSON of a frame-like object, a mangled one, or anything."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.text(max_size=200))
    doc: dict[str, Any] = {"type": draw(frame_types)}
    doc.update(draw(st.dictionaries(st.sampled_from(["text", "ref", "cursor", "kind",
                                                     "client_key", "reply_to", "x"]),
                                    json_values, max_size=4)))
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    if kind == 2:   # deep nesting or a long number spliced in
        depth = draw(st.integers(0, 3000))
        text = text[:-1] + ',"n":' + "[" * depth + "]" * depth + "}"
    if kind == 3:   # byte-level damage
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.text(max_size=5)) + text[cut:]
    return text


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def sign(claims: dict[str, Any]) -> str:
    """An HS256 token over any claims (the JWT library refuses to sign some, a forger
    does not)."""
    head = _b64(b'{"alg":"HS256","typ":"JWT"}')
    body = _b64(json.dumps(claims).encode("utf-8", "surrogatepass"))
    mac = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


@st.composite
def token_texts(draw: st.DrawFn) -> str:
    """Tokens: random text, well-signed tokens with hostile claims, or damaged ones."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.text(max_size=300))
    now = int(time.time())
    claims: dict[str, Any] = {"sub": "ana", "iss": "chorus", "aud": "chorus-gateway",
                              "iat": now, "exp": now + 60}
    for key in draw(st.lists(st.sampled_from(["sub", "iss", "aud", "iat", "exp", "nbf",
                                              "name", "roles"]), max_size=4, unique=True)):
        if draw(st.booleans()):
            claims.pop(key, None)
        else:
            claims[key] = draw(json_values)
    if kind == 1:
        return sign(claims)
    if kind == 2:   # a header or payload that is not what PyJWT expects
        header = draw(st.one_of(json_values.map(json.dumps), st.text(max_size=40)))
        part = base64.urlsafe_b64encode(header.encode("utf-8", "surrogatepass")).decode()
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode()
        return f"{part.rstrip('=')}.{body.rstrip('=')}.sig"
    token = sign(claims)
    cut = draw(st.integers(0, len(token)))
    return token[:cut] + draw(st.text(max_size=4)) + token[cut + 1:]


@functools.cache
def _repo_config() -> dict[str, Any]:
    with open(REPO_CONFIG, encoding="utf-8") as f:
        doc: dict[str, Any] = yaml.safe_load(f)
    return doc


@st.composite
def config_texts(draw: st.DrawFn) -> str:
    """regions.yaml with keys changed, removed or added, or YAML-ish text."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.text(max_size=200))
    doc = copy.deepcopy(_repo_config())
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from(sorted(doc)))
        target = doc
        path = [section]
        while isinstance(target.get(path[-1]), dict) and draw(st.booleans()):
            target = target[path[-1]]
            if not target:
                break
            path.append(draw(st.sampled_from(sorted(target, key=str))))
        action = draw(st.integers(0, 2))
        if action == 0:
            target.pop(path[-1], None)
        elif action == 1:
            target[path[-1]] = draw(json_values)
        else:
            target[draw(texts)] = draw(json_values)
    return yaml.safe_dump(doc, allow_unicode=True)


def _frame(payload_len: int, masked: bool) -> bytes:
    head = bytes([0x81])
    bit = 0x80 if masked else 0
    if payload_len < 126:
        head += bytes([bit | payload_len])
    elif payload_len < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", payload_len)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", payload_len)
    return head + (b"\x01\x02\x03\x04" if masked else b"") + b"x" * payload_len


frame_streams = st.lists(st.tuples(st.sampled_from([0, 1, 5, 125, 126, 127, 1000, 65536]),
                                   st.booleans()), min_size=1, max_size=6)

_NASTY_CHARS = ("\x00", "\n", "\r", "\x1b", "\u202e", "\u200b", "\ud800", '"', "\\", "[",
                "{", "}", "]", ",", ":", ".", "0", "9" * 50, "-", "e", "Infinity", "NaN")


def mutants(text: str, seed: int, n: int) -> Iterator[str]:
    """``n`` variants of ``text``, each a few random edits away (deletions, insertions of
    characters that break parsers, replacements by any code point, truncations): cheap inputs
    around each generated one, so a long run reaches a million in minutes."""
    rng = random.Random(seed)
    for _ in range(n):
        chars = list(text)
        for _ in range(rng.randint(1, 4)):
            op = rng.randint(0, 3)
            pos = rng.randint(0, len(chars))
            if op == 0 and chars:
                del chars[min(pos, len(chars) - 1)]
            elif op == 1:
                chars.insert(pos, rng.choice(_NASTY_CHARS))
            elif op == 2 and chars:
                chars[min(pos, len(chars) - 1)] = chr(rng.randint(0, 0x10FFFF))
            else:
                chars = chars[:pos]
        yield "".join(chars)


# -- properties -------------------------------------------------------------------------------


def frame_parsing(text: str) -> None:
    """A client frame is parsed or refused with ApiError; nothing else."""
    TALLY["frames"] += 1
    try:
        parse_client_frame(text, LIMITS)
    except ApiError:
        pass


def post_validation(doc: Any) -> None:
    """A post body is accepted only if it keeps every text rule; otherwise ApiError."""
    TALLY["posts"] += 1
    _post_rules(doc)


def _post_rules(doc: Any) -> None:
    try:
        post = check_post(doc, LIMITS)
    except ApiError:
        return
    assert len(post.text.encode("utf-8")) <= LIMITS.comment_max_bytes
    assert check_text(post.text, "text") == post.text
    assert post.client_key is None or CLIENT_KEY.match(post.client_key)
    assert post.reply_to is None or is_id(post.reply_to)


def post_bodies(text: str) -> None:
    """A post's body as sent over HTTP: any text is a post or an ApiError."""
    TALLY["post bodies"] += 1
    try:
        _post_rules(parse_json_body(text.encode("utf-8", "surrogatepass")))
    except ApiError:
        pass


def json_bodies(raw: bytes) -> None:
    TALLY["bodies"] += 1
    try:
        parse_json_body(raw)
    except ApiError:
        pass


def token_checks(token: str) -> None:
    """Any token is verified or refused with ApiError; what is accepted is well formed."""
    TALLY["tokens"] += 1
    try:
        claims = verify_token(AUTH, token)
    except ApiError as err:
        assert err.code.status == 401
        return
    assert is_user_id(claims.user)
    assert len(claims.name) <= NAME_MAX_CHARS and check_text(claims.name, "name", multiline=False)


def config_loading(text: str) -> None:
    """Any regions.yaml is loaded or refused with ConfigError naming the key."""
    TALLY["configs"] += 1
    try:
        parse_config(text, source="fuzz.yaml")
    except ConfigError as exc:
        assert exc.file == "fuzz.yaml" and exc.reason


def cursor_parsing(text: str) -> None:
    TALLY["cursors"] += 1
    try:
        cursor = Cursor.parse(text)
    except ValueError:
        return
    assert Cursor.parse(cursor.encode()) == cursor   # "a:e:007" reads as seq 7


def origin_checks(origin: str) -> None:
    TALLY["origins"] += 1
    origin_allowed(origin, ("http://localhost", "https://app.example.com"),
                   own="http://127.0.0.1:8101")


def mask_scanning(frames: list[tuple[int, bool]], cuts: list[int]) -> None:
    """The scanner's verdict does not depend on how the bytes are split."""
    TALLY["ws byte streams"] += 1
    data = b"".join(_frame(n, masked) for n, masked in frames)
    scanner = MaskScanner()
    pos = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        scanner.feed(data[pos:cut])
        pos = max(pos, cut)
    scanner.feed(data[pos:])
    first_unmasked = next((i for i, (_, masked) in enumerate(frames) if not masked), None)
    assert scanner.ok == (first_unmasked is None)
