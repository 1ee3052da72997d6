"""paykit: provider-agnostic payments (temporary façade while the core lands)."""

from ._errors import *  # noqa: F403
from ._models import *  # noqa: F403
from ._money import Money
from ._status import PaymentStatus
