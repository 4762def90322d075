"""Shared test settings: hypothesis kept small and deadline-free for a 2-core CI machine."""

import os

from hypothesis import settings

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=40, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
