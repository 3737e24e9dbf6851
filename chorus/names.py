"""The NATS namespace of Chorus: every subject, stream, durable consumer and queue group.

Nothing else spells a subject. Subjects that carry comments put the region in the subject, so
that no other region's stream captures them (a core publish is captured by every stream in
every JetStream domain whose subjects match).

=====================================  ==========================================================
subject / name                         what travels there, who listens
=====================================  ==========================================================
``cmt.<region>.<stream>``              comments stored in ``<region>``'s log (stream COMMENTS):
                                       its own posts and comments forwarded to it
``live.<region>.<stream>``             the log's RePublish of every stored comment, with
                                       ``Nats-Sequence``/``Nats-Last-Sequence``: the gateways'
                                       live feed; queue group ``live-share`` hands each
                                       comment to one gateway of the region, which writes it
                                       to the replay cache and indexes it if it is a reply
``$JS.API.DIRECT.GET.COMMENTS``        Direct Get on the region's log (replay, history)
``chorus.presence.q.<region>``         presence query to one region (queue group ``presence``)
``chorus.presence.qb.<region>``        presence query of several streams at once (the same queue)
``chorus.presence.change``             a region's count of a stream went 0 -> n or n -> 0
``chorus.recent.<region>``             late-join bootstrap: recent comments a region originated
                                       (queue group ``recent``)
``chorus.registry.<region>``           gateway heartbeats; everyone listens on ``.*``
durable ``fwd-<region>-to-<dest>``    the outbox of ``<region>``'s log towards region ``<dest>``
                                       (global_/outbox.py)
KV bucket ``chorus-outbox-<region>``   one key per destination: the lease of the gateway that
                                       forwards ``<region>``'s comments there (chorus/lease.py)
durable ``archive-<region>``           the archive persister of ``<region>``'s log
                                       (region/persister.py)
durable ``classifier-<region>``        the moderation classifier of ``<region>``'s log
                                       (region/classifier_worker.py)
KV bucket                              key ``classifier``: the lease of the one gateway that
``chorus-classifier-<region>``         runs that classifier (region/classifier_worker.py)
``mod.<region>``                       ``<region>``'s own moderation decisions (its stream
                                       MODERATION, numbered 1, 2, 3... by that stream)
stream ``MODERATION_ALL``              every region's decisions, sourced from each region's
                                       MODERATION (global_/moderation.py); read by Direct Get
``$JS.<region>.API.DIRECT.GET.``       Direct Get on another region's own decisions over the
``MODERATION``                         hub (catching up after a cut)
``chorus.moderation.head.<region>``    a gateway's last applied decision per origin region;
                                       everyone listens on ``.*``
``rx.<region>.<origin>.<stream>``      per-second reaction aggregates of ``<origin>`` stored in
                                       ``<region>``'s stream REACTIONS (its own: ``<origin>`` =
                                       ``<region>``; the others' forwarded to it)
``rxlive.<region>.<origin>.<stream>``  REACTIONS' RePublish: the gateways' live reaction feed
``$JS.API.DIRECT.GET.REACTIONS``       Direct Get on the region's reaction log
durable ``rxfwd-<region>-to-<dest>``   the reaction outbox of ``<region>`` towards ``<dest>``
                                       (global_/reactions.py)
``chorus.rx.totals.<region>``          a region's running reaction totals of a stream (queue
                                       group ``rx-totals``)
``chorus.rx.timeline.<region>``        a region's own reactions of a stream over a time range
                                       (queue group ``rx-timeline``)
``chorus.tier.notice``                 a region keeper's tier of a warm stream, every half
                                       second (global_/tiers.py); every gateway listens
``sampled.<region>.<stream>``          the region's sampling stage (the stream's keeper): the
                                       shared sample, the priority lane and a tick a second
                                       (region/stage.py); the other gateways of the stream
``own.<region>.<stream>.<user>``       the stage's items for one author (``<user>`` in hex):
                                       a gateway holding a session of that user
=====================================  ==========================================================

Durable names carry their own region. Every region's log is a stream named ``COMMENTS`` (in
its own JetStream domain), and a consumer's acknowledgements travel on
``$JS.ACK.<stream>.<durable>.…``, a subject that names no domain: leaf links carry it to every
region. With one name per region, an acknowledgement reaches only the consumer it is for;
with the names of earlier versions (``fwd-<dest>``, ``archive``, the same in every region) a
region's acks reached the other regions' consumers of that name and could acknowledge a
forward that had not happened. chorus/durable_migration.py moves an existing deployment's
consumers to these names, starting each new one where its old one had got to.
"""

from __future__ import annotations

COMMENTS_STREAM = "COMMENTS"
DIRECT_GET = f"$JS.API.DIRECT.GET.{COMMENTS_STREAM}"

PRESENCE_CHANGE = "chorus.presence.change"
PRESENCE_QUEUE = "presence"
RECENT_QUEUE = "recent"
# The region's share of the live feed: one gateway per comment, for the replay cache and the
# thread index alike (region/fanout.py), so that each comment reaches the region's gateways
# once for both rather than once for each.
LIVE_SHARE_QUEUE = "live-share"
REGISTRY_PREFIX = "chorus.registry"
REGISTRY_ALL = f"{REGISTRY_PREFIX}.*"


def comment_subject(region: str, stream: str) -> str:
    """Where ``region``'s log stores a comment of ``stream``."""
    return f"cmt.{region}.{stream}"


def comment_subjects(region: str) -> str:
    """Every comment subject of ``region``'s log (its stream's subject filter)."""
    return f"cmt.{region}.>"


# -- a hot stream's log partitions (region/log_jetstream.py) -------------------------------------
# Above the push tier a stream's comments outside the priority lane are stored in one of the
# region's P partition streams, by a hash of the post's idempotency key, each with its own
# leader loop: no one sequence takes the whole stream's ingest. They re-publish onto the same
# live subject as the region's chained log, with ``Nats-Stream`` saying which partition.

HOT_STREAM_PREFIX = "COMMENTS_HOT_"


def hot_stream(part: int) -> str:
    """The JetStream stream of hot partition ``part`` (1 to P; 0 is `COMMENTS_STREAM`)."""
    return f"{HOT_STREAM_PREFIX}{part}"


def hot_part_of(stream_name: str) -> int:
    """``part`` of a ``Nats-Stream`` header's value: 0 for the chained log, 1 to P for a hot
    partition. ValueError for any other stream."""
    if stream_name == COMMENTS_STREAM:
        return 0
    if stream_name.startswith(HOT_STREAM_PREFIX):
        part = int(stream_name[len(HOT_STREAM_PREFIX):])
        if part >= 1:
            return part
    raise ValueError(f"not a comment log stream: {stream_name!r}")


def hot_direct_get(part: int) -> str:
    return f"$JS.API.DIRECT.GET.{hot_stream(part)}"


def hot_subject(region: str, part: int, stream: str) -> str:
    """Where ``region``'s hot partition ``part`` stores a comment of ``stream``."""
    return f"hot.{region}.{part}.{stream}"


def hot_subjects(region: str, part: int) -> str:
    """Every subject of ``region``'s hot partition ``part`` (its stream's subject filter)."""
    return f"hot.{region}.{part}.>"


def live_subject(region: str, stream: str) -> str:
    return f"live.{region}.{stream}"


def live_subjects(region: str) -> str:
    return f"live.{region}.>"


def presence_query(region: str) -> str:
    return f"chorus.presence.q.{region}"


def presence_batch_query(region: str) -> str:
    """One question of ``region`` about every stream of an outbox batch (a subject of its own:
    a region on older code has no responder on it, and the asker falls back to
    ``presence_query``)."""
    return f"chorus.presence.qb.{region}"


def recent_subject(region: str) -> str:
    return f"chorus.recent.{region}"


def registry_subject(region: str) -> str:
    return f"{REGISTRY_PREFIX}.{region}"


def outbox_durable(region: str, dest: str) -> str:
    """The durable consumer on ``region``'s log that holds what ``dest`` has not stored."""
    return f"fwd-{region}-to-{dest}"


def outbox_lease_bucket(region: str) -> str:
    """The key-value bucket of ``region``'s outbox leases, one key per destination: which
    gateway forwards to it (chorus/lease.py). Its subjects (``$KV.<bucket>.<key>``) cross
    leaf links like any other, hence a bucket per region."""
    return f"chorus-outbox-{region}"


def archive_durable(region: str) -> str:
    """The durable consumer on ``region``'s log that holds what is not archived yet."""
    return f"archive-{region}"


def legacy_outbox_durable(dest: str) -> str:
    """The name earlier versions gave ``outbox_durable(region, dest)``: the same in every
    region (see the module's docstring). Read only to migrate from it."""
    return f"fwd-{dest}"


LEGACY_ARCHIVE_DURABLE = "archive"
"""The name earlier versions gave ``archive_durable(region)``. Read only to migrate from it."""

# -- moderation (global_/moderation.py, region/classifier_worker.py) --------------------------

MODERATION_STREAM = "MODERATION"
MODERATION_ALL_STREAM = "MODERATION_ALL"
MODERATION_DIRECT_GET = f"$JS.API.DIRECT.GET.{MODERATION_STREAM}"
MODERATION_ALL_DIRECT_GET = f"$JS.API.DIRECT.GET.{MODERATION_ALL_STREAM}"
MODERATION_HEAD_PREFIX = "chorus.moderation.head"
MODERATION_HEADS = f"{MODERATION_HEAD_PREFIX}.*"


def moderation_subject(region: str) -> str:
    """Where ``region`` stores its own moderation decisions (its stream MODERATION)."""
    return f"mod.{region}"


def moderation_api(region: str) -> str:
    """The JetStream API of ``region``'s domain, as another region reaches it over the hub."""
    return f"$JS.{region}.API"


def moderation_direct_get(region: str) -> str:
    """Direct Get on ``region``'s own decisions, from any region."""
    return f"{moderation_api(region)}.DIRECT.GET.{MODERATION_STREAM}"


def moderation_head(region: str) -> str:
    return f"{MODERATION_HEAD_PREFIX}.{region}"


def classifier_durable(region: str) -> str:
    """The durable consumer on ``region``'s log that the moderation classifier reads."""
    return f"classifier-{region}"


def classifier_lease_bucket(region: str) -> str:
    """The key-value bucket holding the lease of the one gateway of ``region`` that runs the
    moderation classifier (chorus/lease.py; key `CLASSIFIER_LEASE_KEY`): its flood rules need
    every comment of the region in one place. A bucket per region, like the outbox's."""
    return f"chorus-classifier-{region}"


CLASSIFIER_LEASE_KEY = "classifier"


# -- reactions (region/reactions*.py, global_/reactions.py) -----------------------------------

REACTIONS_STREAM = "REACTIONS"
REACTIONS_DIRECT_GET = f"$JS.API.DIRECT.GET.{REACTIONS_STREAM}"
RX_TOTALS_QUEUE = "rx-totals"
RX_TIMELINE_QUEUE = "rx-timeline"


def reaction_subject(region: str, origin: str, stream: str) -> str:
    """Where ``region``'s reaction log stores ``origin``'s aggregates of ``stream``."""
    return f"rx.{region}.{origin}.{stream}"


def reaction_subjects(region: str) -> str:
    """Every subject of ``region``'s reaction log (its stream's subject filter)."""
    return f"rx.{region}.>"


def own_reaction_subjects(region: str) -> str:
    """``region``'s own aggregates in its reaction log: what its reaction outboxes forward."""
    return f"rx.{region}.{region}.>"


def reaction_live_subject(region: str, stream: str) -> str:
    """The live feed of ``stream``'s aggregates in ``region``, from every origin."""
    return f"rxlive.{region}.*.{stream}"


def reaction_live_subjects(region: str) -> str:
    return f"rxlive.{region}.>"


def reaction_outbox_durable(region: str, dest: str) -> str:
    """The durable consumer on ``region``'s reaction log holding what ``dest`` has not
    stored (a name of its own in every region, as `outbox_durable`)."""
    return f"rxfwd-{region}-to-{dest}"


def reaction_totals_query(region: str) -> str:
    return f"chorus.rx.totals.{region}"


def reaction_timeline_query(region: str) -> str:
    return f"chorus.rx.timeline.{region}"


# -- hot streams (global_/tiers.py) -------------------------------------------------------------

TIER_NOTICES = "chorus.tier.notice"


def stage_subject(region: str, stream: str) -> str:
    """What ``region``'s sampling stage decided of ``stream`` for every viewer (region/stage.py)."""
    return f"sampled.{region}.{stream}"


def own_subject(region: str, stream: str, user: str) -> str:
    """The stage's items of ``stream`` for ``user`` alone. A user id may hold '.' (and so
    empty or extra tokens) and other characters a subject should not: it goes in hex."""
    return f"own.{region}.{stream}.{user.encode().hex()}"


# -- the region's consumers of its hot partitions (global_/outbox.py, region/persister.py,
#    region/classifier_worker.py) ----------------------------------------------------------------
# Each durable consumer of the chained log has a twin on every hot partition, so that a hot
# stream's comments are forwarded, archived and classified like the others. A twin's name
# carries its region (as every durable's: see the module's docstring) and its partition.


def hot_outbox_durable(region: str, dest: str, part: int) -> str:
    """The durable consumer on ``region``'s hot partition ``part`` holding what ``dest`` has
    not stored (``part`` 0: `outbox_durable`)."""
    if not part:
        return outbox_durable(region, dest)
    return f"fwd-{region}-to-{dest}-hot-{part}"


def hot_outbox_lease_key(dest: str, part: int) -> str:
    """The key of `outbox_lease_bucket` under which one gateway forwards hot partition
    ``part`` to ``dest`` (``part`` 0, the chained log: ``dest``, as before). A lease of its
    own per partition, so that a hot stream's forwards spread over the region's gateways."""
    return f"{dest}-hot-{part}" if part else dest


def hot_archive_durable(region: str, part: int) -> str:
    """The archive persister's consumer on ``region``'s hot partition ``part`` (``part`` 0:
    `archive_durable`)."""
    return f"archive-{region}-hot-{part}" if part else archive_durable(region)


def hot_classifier_durable(region: str, part: int) -> str:
    """The classifier's consumer on ``region``'s hot partition ``part`` (``part`` 0:
    `classifier_durable`)."""
    return f"classifier-{region}-hot-{part}" if part else classifier_durable(region)


def log_stream(part: int) -> str:
    """The JetStream stream of ``part``: `COMMENTS_STREAM` for 0, else `hot_stream`."""
    return hot_stream(part) if part else COMMENTS_STREAM


def log_subjects(region: str, part: int) -> str:
    """The subject filter of ``region``'s ``part``: `comment_subjects` for 0, else
    `hot_subjects`."""
    return hot_subjects(region, part) if part else comment_subjects(region)


def log_subject(region: str, part: int, stream: str) -> str:
    """Where ``region``'s ``part`` stores a comment of ``stream`` (a forward to the
    destination's same partition)."""
    return hot_subject(region, part, stream) if part else comment_subject(region, stream)
