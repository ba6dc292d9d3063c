from __future__ import annotations

import pytest

from consent.models import Invitation
from tests.consent.helpers import make_invitation


@pytest.fixture
def invitation(db) -> Invitation:
    """Northwind's invitation, bound to Northwind's tenant id."""
    return make_invitation()
