"""Prefect's ``prefect.client`` paths, for the names flowkit has: ``flowkit.client.schemas``.

flowkit has no server and no API client; this package only keeps imports such as
``from prefect.client.schemas.objects import StateType`` working after a port.
"""

from . import schemas as schemas

__all__ = ["schemas"]
