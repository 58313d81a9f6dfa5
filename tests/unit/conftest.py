"""Fixtures of the unit tests of the local stack's moto patch layer (tests/unit/test_moto_patches*.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def patched():
    """Apply patches of the moto patch layer by name inside a test (`patched("a", "b")`); every one is undone
    afterwards, the last first."""
    from scripts import moto_patches

    undo = []

    def apply(*names: str) -> None:
        for name in names:
            undo.append(moto_patches.PATCHES[name]())

    yield apply
    for step in reversed(undo):
        step()
