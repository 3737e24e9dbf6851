"""Pulumi program that provisions Chorus on AWS: one cell per region plus the global plane.

Entry point: ``__main__.py`` (run by ``pulumi preview`` / ``pulumi up`` in this directory). It
is the only module that reads ``pulumi.Config()``; everything else receives frozen Args
dataclasses. Importing this package has no side effects, so tests can import its modules after
``pulumi.runtime.set_mocks``.
"""
