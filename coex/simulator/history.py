"""History chunks: how a business's 180 days are cut into phases and chunks, and what each holds.

The cut is computed from counts alone, so a chunk's messages are built only when the chunk is
sent (from its own seeded generator) and a million-message history never sits in memory.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from itertools import accumulate
from random import Random
from typing import Any

from coex.simulator import content
from coex.simulator.expected import Fact
from coex.simulator.users import User
from coex.simulator.wire import json_str, json_value

DAY = 86_400
PHASE_DAYS: tuple[tuple[int, int], ...] = ((0, 1), (1, 90), (90, 180))
MEDIA_WINDOW_S = 14 * DAY  # follow-ups with the asset id come only for media this recent
MAX_CHUNK = 5_000
TEXT_BITS = 8  # texts are picked from a pool of 2**TEXT_BITS


def _table(pairs: tuple[tuple[str, int], ...]) -> tuple[str, ...]:
    """A 1024-slot lookup table: one `getrandbits(10)` picks a value with the given weights."""
    total = sum(w for _, w in pairs)
    slots = [v for v, w in pairs for _ in range(w * 1024 // total)]
    slots += [pairs[0][0]] * (1024 - len(slots))
    return tuple(slots)


_OUT_TYPES = _table(
    (
        ("text", 62),
        ("image", 9),
        ("video", 3),
        ("audio", 4),
        ("document", 4),
        ("sticker", 3),
        ("location", 1),
        ("contacts", 1),
        ("reaction", 5),
        ("template", 8),
    )
)
_IN_TYPES = _table(
    (
        ("text", 60),
        ("image", 9),
        ("video", 2),
        ("audio", 9),
        ("document", 2),
        ("sticker", 5),
        ("location", 2),
        ("contacts", 1),
        ("reaction", 5),
        ("interactive", 3),
        ("button", 2),
    )
)
_OUT_STATUS = _table((("READ", 58), ("DELIVERED", 25), ("SENT", 10), ("PENDING", 4), ("ERROR", 3)))
_IN_STATUS = _table((("READ", 92), ("DELIVERED", 8)))
_LOWER = {s: s.lower() for s in ("READ", "DELIVERED", "SENT", "PENDING", "ERROR", "PLAYED")}


@dataclass(frozen=True, slots=True)
class Chunk:
    seq: int  # place in the platform's sending order (phase 0 first); drives `progress`
    phase: int
    order: int  # chunk_order, from 1 within its phase
    first: int  # serial number of its first message
    count: int
    newest_age: int  # seconds before onboarding: the chunk's messages lie in [newest_age, oldest_age)
    oldest_age: int
    progress: int


@dataclass(frozen=True, slots=True)
class Media:
    """A media message sent as a placeholder; its follow-up carries this."""

    message_id: str
    sender: str  # `from` of the placeholder: the business's number, the user's, or '' (withheld)
    timestamp: int
    kind: str
    caption: str | None
    media_id: str
    user: User  # the other side of the thread
    seen_at: int  # the user is shown as they were then (as the placeholder's thread shows them)


@dataclass(frozen=True, slots=True)
class ChunkContent:
    threads: list[dict[str, Any]]
    media: list[Media]
    messages: list[Fact]


_PREFIXES: dict[str, str] = {}


def wamid(contact: str, token: str) -> str:
    """A message id shaped like the platform's: base64 naming the user, then a unique token.

    `contact` is the number the record shows, or the BSUID when it withholds it, so no id carries
    a number the record hides.

    `token` is 20 characters of the base64 alphabet, so the id stays valid base64 text.
    """
    prefix = _PREFIXES.get(contact)
    if prefix is None:
        raw = b"\x1c\x18" + bytes([len(contact)]) + contact.encode() + b"\x15\x02\x00\x11\x18\x12"
        prefix = _PREFIXES[contact] = base64.b64encode(raw + b"\x00" * (-len(raw) % 3)).decode()
    return "wamid." + prefix + token


def plan_chunks(rng: Random, messages: int) -> list[Chunk]:
    """Split `messages` over the three phases and into chunks of a size that grows with the total."""
    if messages <= 0:
        return []
    share0, share2 = rng.uniform(0.02, 0.06), rng.uniform(0.30, 0.45)
    counts = [round(messages * share0), 0, round(messages * share2)]
    if messages >= 3:
        counts[0], counts[2] = max(counts[0], 1), max(counts[2], 1)
    else:
        counts = [0, messages, 0]
    counts[1] = messages - counts[0] - counts[2]
    target = max(4, min(3_500, messages // 40))
    low, high = max(1, int(target * 0.6)), min(MAX_CHUNK, int(target * 1.4) + 1)
    sizes_by_phase: list[list[int]] = []
    for n in counts:
        sizes: list[int] = []
        left = n
        while left > 0:
            size = min(left, rng.randint(low, high))
            sizes.append(size)
            left -= size
        sizes_by_phase.append(sizes)
    chunks: list[Chunk] = []
    serial = 0
    for phase, sizes in enumerate(sizes_by_phase):
        n = sum(sizes)
        lo, hi = PHASE_DAYS[phase][0] * DAY, PHASE_DAYS[phase][1] * DAY
        done = 0
        for order, size in enumerate(sizes, start=1):
            # Chunk 1 is the newest slice of its phase; time is spread evenly over the counts.
            newest = max(1, lo + (hi - lo) * done // n)
            oldest = max(newest + 1, lo + (hi - lo) * (done + size) // n)
            serial += size
            progress = 100 if serial == messages else min(99, serial * 100 // messages)
            chunks.append(Chunk(len(chunks), phase, order, serial - size, size, newest, oldest, progress))
            done += size
    return chunks


class ThreadBook:
    """The business's 1:1 threads and what it needs to write messages into them."""

    def __init__(self, business: str, index: int, onboarded_at: int, users: list[User], texts: tuple[str, ...]):
        self.business = business  # display phone number: `from` of outbound messages
        self.index = index
        self.onboarded_at = onboarded_at
        self.users = users
        self.threads = [u.phone for u in users]
        # Some threads are far busier than others, as in any shop.
        self.cum_weights = tuple(accumulate(1.0 / (i + 1) ** 0.8 for i in range(len(users))))
        self.texts = texts
        self.text_json = tuple(json_str(t) for t in texts)

    def token(self, tag: str, serial: int) -> str:
        return f"{self.index:04X}{tag}{serial:015X}"

    def build(self, rng: Random, chunk: Chunk) -> ChunkContent:
        """The chunk's threads (messages oldest first), its media, and the expected facts.

        Everything is drawn from `rng` in a fixed order, so building a chunk twice gives the same.
        """
        n = chunk.count
        random, bits = rng.random, rng.getrandbits
        newest, span = chunk.newest_age, chunk.oldest_age - chunk.newest_age
        ages = sorted([newest + int(random() * span) for _ in range(n)], reverse=True)
        picks = rng.choices(range(len(self.threads)), cum_weights=self.cum_weights, k=n)
        by_thread: dict[int, list[dict[str, Any]]] = {}
        last_id: dict[int, str] = {}
        media: list[Media] = []
        facts: list[Fact] = []
        users, business, onboarded_at = self.users, self.business, self.onboarded_at
        # A thread of the chunk shows the user as they were at its newest message (a user who hid
        # their number since shows none); ages are oldest first, so the last index is the newest.
        seen_at = {thread: onboarded_at - ages[i] for i, thread in enumerate(picks)}
        shown = {thread: users[thread].phone_at(at) for thread, at in seen_at.items()}
        media_types = content.MEDIA_TYPES
        for i in range(n):
            thread = picks[i]
            user = users[thread]
            contact = shown[thread]
            if random() < 0.55:
                sender, direction = business, "outbound"
                kind, status = _OUT_TYPES[bits(10)], _OUT_STATUS[bits(10)]
            else:
                sender, direction = contact, "inbound"
                kind, status = _IN_TYPES[bits(10)], _IN_STATUS[bits(10)]
            if status == "READ" and (kind == "audio" or kind == "video") and random() < 0.6:
                status = "PLAYED"
            age = ages[i]
            timestamp = onboarded_at - age
            message_id = wamid(contact or user.user_id, self.token("H", chunk.first + i))
            msg: dict[str, Any] = {"from": sender, "id": message_id, "timestamp": str(timestamp)}
            if direction == "inbound":
                msg["from_user_id"] = user.user_id
            text = ""
            shown_type = kind
            if kind in media_types:
                # Drawn for every media message, recent or not, so the stream stays the same.
                cap = content.caption(rng) if kind in ("image", "video", "document") else None
                media_id = str(rng.randrange(10**15, 10**17))
                msg["type"] = "media_placeholder"
                if age < MEDIA_WINDOW_S:
                    media.append(Media(message_id, sender, timestamp, kind, cap, media_id, user, seen_at[thread]))
                    text = cap or ""
                else:
                    shown_type = "media_placeholder"
            else:
                msg["type"] = kind
                text = self.fill(rng, msg, kind, contact or user.user_id, last_id.get(thread))
            msg["history_context"] = {"status": status}
            by_thread.setdefault(thread, []).append(msg)
            last_id[thread] = message_id
            facts.append((message_id, shown_type, direction, contact, user.user_id, _LOWER[status], text))
        return ChunkContent(
            [{"id": shown[t], "context": users[t].context(seen_at[t]), "messages": m} for t, m in by_thread.items()],
            media,
            facts,
        )

    def fill(self, rng: Random, msg: dict[str, Any], kind: str, contact: str, previous: str | None) -> str:
        """Set the message's `<type>` object; return its text as `schemas.normalize` reads it.

        That is: a text's body, a caption, a button's or reply's title, a reaction's emoji; else ''.
        """
        if kind == "text":
            pick = rng.getrandbits(TEXT_BITS)
            msg["text"] = {"body": self.text_json[pick]}
            if previous is not None and rng.random() < 0.05:
                msg["context"] = {"id": previous}
            return self.texts[pick]
        if kind == "reaction":
            target = previous or wamid(contact, self.token("R", rng.randrange(16**15)))
            emoji = content.REACTION_EMOJI[rng.randrange(len(content.REACTION_EMOJI))]
            msg["reaction"] = {"message_id": target, "emoji": json_str(emoji)}
            return emoji
        if kind == "location":
            msg["location"] = json_value(content.location(rng))
            return ""
        if kind == "contacts":
            msg["contacts"] = json_value(content.shared_contacts(rng, content.phone_number(rng)))
            return ""
        if kind == "template":
            msg["template"] = content.template(rng)
            return ""
        if kind == "interactive":
            interactive, title = content.interactive_reply(rng)
            msg["interactive"] = json_value(interactive)
            return title
        button, label = content.quick_reply_button(rng)
        msg["button"] = json_value(button)
        return label
