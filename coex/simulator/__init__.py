"""Realistic, signed Coexistence webhook traffic and the end state it should produce.

`generate(businesses, messages, seed)` gives every delivery and the expected state (tests);
`Simulation` produces deliveries lazily (the `coex simulate` command and benchmarks).
"""

from coex.simulator.expected import (
    Expected,
    ExpectedAccountEvent,
    ExpectedBusiness,
    ExpectedContact,
    ExpectedHistory,
    ExpectedMessage,
    ExpectedUser,
    id_fingerprint,
)
from coex.simulator.scenario import Delivery, Scenario, Simulation, generate
from coex.simulator.wire import SIGNATURE_HEADER, encode, sign

__all__ = [
    "SIGNATURE_HEADER",
    "Delivery",
    "Expected",
    "ExpectedAccountEvent",
    "ExpectedBusiness",
    "ExpectedContact",
    "ExpectedHistory",
    "ExpectedMessage",
    "ExpectedUser",
    "Scenario",
    "Simulation",
    "encode",
    "generate",
    "id_fingerprint",
    "sign",
]
