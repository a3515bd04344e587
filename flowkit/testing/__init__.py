"""Testing flows: an isolated home, virtual time, and assertions on recorded runs.

The pytest plugin (``flowkit.testing.plugin``, registered as ``flowkit``) gives tests
the fixtures ``flowkit_home``, ``flowkit_store`` and ``virtual_clock``, and the marker
``flowkit_backends``.
"""

from .assertions import RunAssertions as RunAssertions
from .assertions import assert_run as assert_run
from .clock import VirtualClock as VirtualClock
from .clock import virtual_clock as virtual_clock
from .utilities import flowkit_test_harness as flowkit_test_harness
from .utilities import prefect_test_harness as prefect_test_harness

__all__ = [
    "RunAssertions",
    "VirtualClock",
    "assert_run",
    "flowkit_test_harness",
    "prefect_test_harness",
    "virtual_clock",
]
