"""Who a business's users are to the platform: a BSUID each, and for some a username and no number.

Every user has a business-scoped user ID (BSUID), sent in every record that names them. A share
of users adopted a username and hide their number: every phone field of their records is ''. A
smaller share switched during the history: records from before the switch carry the number (with
the BSUID, which links the two), later ones only the BSUID. Inside the simulator a user is still
known by their number; `User.phone_at` says what the platform shows of it at a given time.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random
from typing import Any

from coex.simulator import content

HIDDEN_SHARE = 0.15  # users whose number no record of the business carries
SWITCH_SHARE = 0.05  # users who adopt a username during the history
USERNAME_SHARE = 0.05  # users with a username whose number is still shown (e.g. messaged lately)
DAY = 86_400
SWITCH_AGES = (DAY, 120 * DAY)  # a switch happens this long before onboarding
ALWAYS = -1  # `hidden_from` of a user whose number no record gives


@dataclass(frozen=True, slots=True)
class User:
    phone: str  # the user's number: the simulator's key for them, shown or not
    user_id: str  # BSUID: `CC.` and digits, stable per user and business
    country: str  # ISO code, as the BSUID's prefix
    username: str  # '' for a user without one
    hidden_from: int | None  # records at or after this time withhold the number; None: never

    @property
    def hidden(self) -> bool:
        return self.hidden_from == ALWAYS

    @property
    def switches(self) -> bool:
        return self.hidden_from is not None and self.hidden_from != ALWAYS

    def phone_at(self, at: int) -> str:
        """The number as a record of time `at` gives it: '' once the user hides it."""
        return self.phone if self.hidden_from is None or at < self.hidden_from else ""

    def username_at(self, at: int) -> str:
        """A switching user has their username only from the switch on."""
        return self.username if self.hidden_from is None or at >= self.hidden_from else ""

    def context(self, at: int) -> dict[str, str]:
        """A history thread's `context` object."""
        doc = {"wa_id": self.phone_at(at), "user_id": self.user_id}
        if name := self.username_at(at):
            doc["username"] = name
        doc["country_code"] = self.country
        return doc

    def contact(self, at: int, name: str | None = None) -> dict[str, Any]:
        """An entry of a webhook's `contacts` array (Cloud API messages, echoes, media follow-ups)."""
        profile: dict[str, str] = {} if name is None else {"name": name}
        if handle := self.username_at(at):
            profile["username"] = handle
        profile["country_code"] = self.country
        return {"profile": profile, "wa_id": self.phone_at(at), "user_id": self.user_id}


def bsuid(seed: int, business: int, phone: str) -> str:
    """The same user gets the same BSUID from one business and another from any other business."""
    digits = Random(f"{seed}:{business}:bsuid:{phone}").randrange(10**18, 10**20)
    return f"{content.country_of(phone)}.{digits}"


def plan_users(
    seed: int,
    business: int,
    onboarded_at: int,
    threads: list[str],
    hidden_share: float = HIDDEN_SHARE,
    switch_share: float = SWITCH_SHARE,
) -> dict[str, User]:
    """The users who message the business (its threads), by number.

    The shares are counts here, so a small run still has users of each kind (two who hide their
    number and one who switches, once there are five threads).
    """
    rng = Random(f"{seed}:{business}:users")
    n = len(threads)
    hiding = round(hidden_share * n)
    switching = round(switch_share * n)
    if n >= 5:
        hiding = max(hiding, 2) if hidden_share > 0 else 0
        switching = max(switching, 1) if switch_share > 0 else 0
    order = rng.sample(range(n), n)
    kinds = dict.fromkeys(order[:hiding], "hidden") | dict.fromkeys(order[hiding : hiding + switching], "switch")
    return {phone: _user(rng, seed, business, onboarded_at, phone, kinds.get(i, "")) for i, phone in enumerate(threads)}


def other_user(
    seed: int,
    business: int,
    onboarded_at: int,
    phone: str,
    hidden_share: float = HIDDEN_SHARE,
    switch_share: float = SWITCH_SHARE,
) -> User:
    """A user only in the business's contacts: each of their kinds by chance, from their own seed."""
    rng = Random(f"{seed}:{business}:user:{phone}")
    roll = rng.random()
    kind = "hidden" if roll < hidden_share else "switch" if roll < hidden_share + switch_share else ""
    return _user(rng, seed, business, onboarded_at, phone, kind)


def _user(rng: Random, seed: int, business: int, onboarded_at: int, phone: str, kind: str) -> User:
    user_id = bsuid(seed, business, phone)
    country = user_id.split(".", 1)[0]
    if kind == "hidden":
        return User(phone, user_id, country, content.username(rng), ALWAYS)
    if kind == "switch":
        return User(phone, user_id, country, content.username(rng), onboarded_at - rng.randrange(*SWITCH_AGES))
    handle = content.username(rng) if rng.random() < USERNAME_SHARE else ""
    return User(phone, user_id, country, handle, None)
