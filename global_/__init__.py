"""The global plane's logic inside each gateway: what regions say to each other over the hub.

- hub.py: every hub message, typed, with its encoding and its strict decoding;
- presence.py: which regions have viewers of a stream (asked, cached), and this region's
  answers and announcements;
- outbox.py: this region's comments to every other region that has viewers, durably;
- bootstrap.py: a region's first viewer of a stream gets the others' recent comments;
- registry.py: every region's health from its gateways' heartbeats;
- plane.py: `GlobalPlane`, the parts above put together for one gateway;
- tasks.py: ownership of the tasks they start on demand.

It uses the region only through its interfaces (region/log.py, region/presence.py).
"""
