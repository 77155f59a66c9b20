"""One onboarded business: who it is, every webhook it causes and in which order, its end state.

Small webhooks (contacts, echoes, statuses, cloud API messages, account events) are planned in
full up front; history chunks are planned as counts and built when sent. Each event has a key on
a 0..1 delivery timeline; sorting by key gives the order the platform sends them in.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate
from random import Random
from typing import Any

from coex.simulator import content
from coex.simulator.expected import (
    ExpectedAccountEvent,
    ExpectedBusiness,
    ExpectedContact,
    ExpectedHistory,
    ExpectedUser,
)
from coex.simulator.history import DAY, MEDIA_WINDOW_S, TEXT_BITS, Chunk, Media, ThreadBook, plan_chunks, wamid
from coex.simulator.users import HIDDEN_SHARE, SWITCH_SHARE, User, other_user, plan_users
from coex.simulator.wire import encode, envelope, metadata
from schemas.rows import STATUS_RANK

EPOCH = 1_761_955_200  # 2025-11-01T00:00:00Z, the first simulated onboarding
LIVE_SPAN_S = 2 * 3600  # live traffic (echoes, new messages, contact edits) after onboarding
CHUNK_JITTER = 6.0  # a chunk may arrive up to this many chunks away from its place
DECLINED_CODE = 2593109
COMPANION_ERROR_CODE = 131060

_ECHO_TYPES = ("text", "image", "document", "audio", "sticker", "location", "reaction", "contacts")
_ECHO_CUM = tuple(accumulate((70, 8, 5, 4, 3, 2, 6, 2)))


@dataclass(frozen=True, slots=True)
class Event:
    key: float  # place on the business's delivery timeline
    kind: str  # "chunk", "followup" or "value" (a ready-made change value)
    ref: int  # index into the plan's chunks, followups or values
    messages: int  # new messages it carries (for progress and the summary)


@dataclass(frozen=True, slots=True)
class Value:
    field: str
    value: dict[str, Any]
    time: int | None  # the entry's `time`, sent only with account_update


class Business:
    def __init__(
        self,
        seed: int,
        index: int,
        messages: int,
        *,
        declines: bool = False,
        partner_removed: bool = False,
        offboards: bool = False,
        detail: bool = False,
        hidden_share: float = HIDDEN_SHARE,
        switch_share: float = SWITCH_SHARE,
        ids: tuple[str, str] | None = None,
    ) -> None:
        """`ids`: the business's (waba_id, phone_number_id), e.g. of a number onboarded against the
        fake Graph API; drawn from the seed when not given."""
        self.seed, self.index = seed, index
        self.shares = (hidden_share, switch_share)
        rng = Random(f"{seed}:{index}:plan")
        self.waba_id = str(rng.randrange(10**14, 10**15))
        self.phone_number_id = str(rng.randrange(10**14, 10**15))
        if ids is not None:
            self.waba_id, self.phone_number_id = ids
        self.display = content.phone_number(rng)
        self.onboarded_at = EPOCH + index * 3 * 3600 + rng.randrange(3600)
        self.metadata = metadata(self.display, self.phone_number_id)
        threads = _distinct_numbers(rng, max(3, min(300, int(messages**0.5) // 2)), {self.display})
        self.users: dict[str, User] = plan_users(seed, index, self.onboarded_at, threads, *self.shares)
        self.book = ThreadBook(
            self.display,
            index,
            self.onboarded_at,
            [self.users[t] for t in threads],
            content.text_pool(Random(f"{seed}:{index}:texts"), 2**TEXT_BITS),
        )
        self.chunks: list[Chunk] = []
        self.followups: list[Media] = []
        self.values: list[Value] = []
        self.events: list[Event] = []
        self.expected = ExpectedBusiness(
            self.waba_id,
            self.phone_number_id,
            self.display,
            ExpectedHistory("", 0, 0, 0, [], None),
            messages={} if detail else None,
        )
        for user in self.users.values():
            self._know(user)
        self._plan_contacts(rng, threads)
        if declines:
            self._plan_declined()
        else:
            self._plan_history(rng, messages)
        self._plan_echoes(rng, threads, max(3, min(2_000, messages // 100)))
        self._plan_inbound(rng, threads, max(2, min(1_500, messages // 150)))
        end = self.onboarded_at + LIVE_SPAN_S + 300
        if partner_removed:
            info = {"reason": "DISCONNECTED_FROM_BUSINESS_APP", "initiated_by": "BUSINESS"}
            self._account(
                1.5, end, {"phone_number": self.display, "event": "PARTNER_REMOVED", "disconnection_info": info}
            )
        if offboards:
            self._account(1.6, end + 60, {"phone_number": self.display, "event": "ACCOUNT_OFFBOARDED"})
        self.events.sort(key=lambda e: e.key)

    # -- building bodies -------------------------------------------------------------------------

    def body(self, event: Event) -> bytes:
        """The delivery for `event`; history messages are counted into `expected` as they are built."""
        if event.kind == "value":
            v = self.values[event.ref]
            return encode(envelope(self.waba_id, v.field, v.value, v.time))
        if event.kind == "followup":
            return encode(envelope(self.waba_id, "history", self._followup(self.followups[event.ref])))
        chunk = self.chunks[event.ref]
        built = self.book.build(self._chunk_rng(chunk), chunk)
        self.expected.add("history", built.messages)
        meta = {"phase": chunk.phase, "chunk_order": chunk.order, "progress": chunk.progress}
        value = {
            "messaging_product": "whatsapp",
            "metadata": self.metadata,
            "history": [{"metadata": meta, "threads": built.threads}],
        }
        return encode(envelope(self.waba_id, "history", value))

    def _chunk_rng(self, chunk: Chunk) -> Random:
        return Random(f"{self.seed}:{self.index}:chunk:{chunk.seq}")

    def _followup(self, media: Media) -> dict[str, Any]:
        rng = Random(f"{self.seed}:{self.index}:media:{media.media_id}")
        user = media.user
        message: dict[str, Any] = {"from": media.sender}
        if media.sender == self.display:
            message |= {"to": user.phone_at(media.seen_at), "to_user_id": user.user_id}
        else:
            message["from_user_id"] = user.user_id
        message |= {
            "id": media.message_id,
            "timestamp": str(media.timestamp),
            "type": media.kind,
            media.kind: content.media_object(rng, media.kind, media.media_id, media.caption),
        }
        return {
            "messaging_product": "whatsapp",
            "metadata": self.metadata,
            "contacts": [user.contact(media.seen_at)],
            "messages": [message],
        }

    def _know(self, user: User) -> None:
        self.expected.people[user.user_id] = ExpectedUser(user.phone, user.user_id, user.username)

    def _user(self, number: str) -> User:
        """The user with this number; one only in the contacts is planned on first sight."""
        user = self.users.get(number)
        if user is None:
            user = self.users[number] = other_user(self.seed, self.index, self.onboarded_at, number, *self.shares)
            self._know(user)
        return user

    def _value(self, key: float, field: str, value: dict[str, Any], messages: int = 0, time: int | None = None) -> None:
        self.events.append(Event(key, "value", len(self.values), messages))
        self.values.append(Value(field, value, time))

    def _account(self, key: float, time: int, value: dict[str, Any]) -> None:
        self._value(key, "account_update", value, time=time)
        self.expected.account_events.append(ExpectedAccountEvent(value["event"], self.display, time))

    # -- planning --------------------------------------------------------------------------------

    def _plan_history(self, rng: Random, messages: int) -> None:
        self.chunks = plan_chunks(rng, messages)
        n = len(self.chunks)
        for chunk in self.chunks:
            key = 0.08 + 0.84 * (chunk.seq + rng.uniform(0, CHUNK_JITTER)) / (n + CHUNK_JITTER)
            self.events.append(Event(key, "chunk", chunk.seq, chunk.count))
            if chunk.newest_age >= MEDIA_WINDOW_S:
                continue
            # Recent chunks are built once here to learn their media; they are built again when sent.
            for media in self.book.build(self._chunk_rng(chunk), chunk).media:
                # Mostly after the placeholder's chunk, sometimes before it.
                offset = rng.uniform(0.001, 0.05) if rng.random() < 0.8 else -rng.uniform(0.001, 0.03)
                self.events.append(Event(key + offset, "followup", len(self.followups), 0))
                self.followups.append(media)
        if self.chunks:
            self.expected.history_sync = ExpectedHistory(
                "complete", 100, messages, n, sorted({c.phase for c in self.chunks}), None
            )

    def _plan_declined(self) -> None:
        error = {
            "code": DECLINED_CODE,
            "title": "History sync is off for this business",
            "message": "The business turned history sharing off in the WhatsApp Business app",
            "error_data": {"details": "History sharing is turned off by the business"},
        }
        value = {"messaging_product": "whatsapp", "metadata": self.metadata, "history": [{"errors": [error]}]}
        self._value(0.06, "history", value)
        self.expected.history_sync = ExpectedHistory("declined", 0, 0, 0, [], DECLINED_CODE)

    def _plan_contacts(self, rng: Random, threads: list[str]) -> None:
        book = [n for n in threads if rng.random() < 0.75]
        book += _distinct_numbers(rng, len(threads) // 4 + 1, {self.display, *threads})
        # (number, timestamp, removed, full_name, first_name)
        initial = [(n, self.onboarded_at - rng.randrange(DAY, 365 * DAY), False, *content.person(rng)) for n in book]
        live: list[tuple[str, int, bool, str, str]] = []

        def when() -> int:
            return self.onboarded_at + 60 + rng.randrange(LIVE_SPAN_S)

        untouched: list[str] = []
        for number in book:
            roll = rng.random()
            if roll < 0.25:
                for _ in range(1 + (rng.random() < 0.33)):
                    live.append((number, when(), False, *content.person(rng)))
            elif roll < 0.35:
                removed_at = when()
                live.append((number, removed_at, True, "", ""))
                if rng.random() < 0.5:
                    live.append((number, removed_at + 1 + rng.randrange(600), False, *content.person(rng)))
            else:
                untouched.append(number)
        for number in _distinct_numbers(rng, max(1, len(threads) // 5), {self.display, *book, *threads}):
            added_at = when()
            live.append((number, added_at, False, *content.person(rng)))
            if rng.random() < 0.3:
                live.append((number, added_at + 1 + rng.randrange(600), True, "", ""))
        if untouched:
            # An edit and a removal in the same second: the removal wins.
            tie_at = self.onboarded_at + LIVE_SPAN_S + 30
            live.append((untouched[0], tie_at, False, *content.person(rng)))
            live.append((untouched[0], tie_at, True, "", ""))

        batch = 100
        batches = [initial[i : i + batch] for i in range(0, len(initial), batch)]
        late = rng.randrange(len(batches)) if batches else -1
        for i, items in enumerate(batches):
            # One batch of the initial sync arrives after newer edits of the same contacts.
            key = rng.uniform(0.2, 0.5) if i == late and len(batches) > 1 else 0.05 * i / len(batches)
            self._value(key, "smb_app_state_sync", self._state_sync(items))
        for change in live:
            self._value(rng.uniform(0.06, 0.97), "smb_app_state_sync", self._state_sync([change]))

        # One contact per user, whichever identifiers each change carries.
        final: dict[str, tuple[int, bool, str, str, str]] = {}
        for number, at, removed, full, first in initial + live:
            user = self._user(number)
            (self.expected.phone_seen if user.phone_at(at) else self.expected.phone_withheld).add(user.user_id)
            if user.user_id not in final or (at, removed) > final[user.user_id][:2]:
                final[user.user_id] = (at, removed, full, first, "" if removed else user.username_at(at))
        self.expected.contacts = {
            user_id: ExpectedContact(full, first, removed, at, user_id, name)
            for user_id, (at, removed, full, first, name) in final.items()
        }

    def _state_sync(self, changes: list[tuple[str, int, bool, str, str]]) -> dict[str, Any]:
        items = []
        for number, at, removed, full, first in changes:
            user = self._user(number)
            contact: dict[str, str] = {} if removed else {"full_name": full, "first_name": first}
            contact |= {"phone_number": user.phone_at(at), "user_id": user.user_id}
            if not removed:
                if name := user.username_at(at):
                    contact["username"] = name
                contact["country_code"] = user.country
            items.append(
                {
                    "type": "contact",
                    "contact": contact,
                    "action": "remove" if removed else "add",
                    "metadata": {"timestamp": str(at)},
                }
            )
        return {"messaging_product": "whatsapp", "metadata": self.metadata, "state_sync": items}

    def _plan_echoes(self, rng: Random, threads: list[str], count: int) -> None:
        for j in range(count):
            frac = (j + rng.random()) / count
            sent_at = self.onboarded_at + 120 + int(frac * LIVE_SPAN_S)
            user = self.users[threads[rng.choices(range(len(threads)), cum_weights=self.book.cum_weights)[0]]]
            to = user.phone_at(sent_at)
            kind = rng.choices(_ECHO_TYPES, cum_weights=_ECHO_CUM)[0]
            message_id = wamid(to or user.user_id, self.book.token("E", j))
            msg: dict[str, Any] = {
                "from": self.display,
                "to": to,
                "to_user_id": user.user_id,
                "id": message_id,
                "timestamp": str(sent_at),
                "type": kind,
            }
            if kind in content.MEDIA_TYPES:
                cap = content.caption(rng) if kind in ("image", "document") else None
                msg[kind] = content.media_object(rng, kind, str(rng.randrange(10**15, 10**17)), cap)
                text = cap or ""
            else:
                text = self.book.fill(rng, msg, kind, to or user.user_id, None)
            key = 0.06 + 0.9 * frac
            value = {
                "messaging_product": "whatsapp",
                "metadata": self.metadata,
                "contacts": [user.contact(sent_at)],
                "message_echoes": [msg],
            }
            self._value(key, "smb_message_echoes", value, 1)
            statuses = self._plan_statuses(rng, key, message_id, user, sent_at, first=j == 0)
            status = max(statuses, key=lambda s: STATUS_RANK[s], default="")
            self.expected.add("echo", [(message_id, kind, "outbound", to, user.user_id, status, text)])

    def _plan_statuses(
        self, rng: Random, key: float, message_id: str, user: User, sent_at: int, first: bool
    ) -> list[str]:
        """Status webhooks for an echoed message, each its own delivery, in no particular order."""
        if first:
            names = ["sent", "failed"]  # one message per business is lost on a companion device
        elif rng.random() < 0.6:
            names = ["sent", "delivered", "read"][: 1 + rng.randrange(3)]
        else:
            return []
        for step, name in enumerate(names):
            at = sent_at + 1 + step * rng.randrange(1, 90)
            status: dict[str, Any] = {
                "id": message_id,
                "status": name,
                "timestamp": str(at),
                "recipient_id": user.phone_at(at),
                "recipient_user_id": user.user_id,
            }
            if name == "failed":
                status["errors"] = [
                    {
                        "code": COMPANION_ERROR_CODE,
                        "title": "Message not mirrored from a companion device",
                        "message": "The user's companion device does not send webhooks for this message",
                        "error_data": {"details": "Check the WhatsApp Business app for this message"},
                    }
                ]
            value = {"messaging_product": "whatsapp", "metadata": self.metadata, "statuses": [status]}
            self._value(key + rng.uniform(0.001, 0.03), "messages", value)
        return names

    def _plan_inbound(self, rng: Random, threads: list[str], count: int) -> None:
        """New messages from users after onboarding, on the ordinary `messages` webhook."""
        for j in range(count):
            frac = (j + rng.random()) / count
            user = self.users[threads[rng.choices(range(len(threads)), cum_weights=self.book.cum_weights)[0]]]
            sent_at = self.onboarded_at + 90 + int(frac * LIVE_SPAN_S)
            sender = user.phone_at(sent_at)
            message_id = wamid(sender or user.user_id, self.book.token("C", j))
            body = self.book.texts[rng.randrange(len(self.book.texts))]
            msg = {
                "from": sender,
                "from_user_id": user.user_id,
                "id": message_id,
                "timestamp": str(sent_at),
                "type": "text",
                "text": {"body": body},
            }
            value = {
                "messaging_product": "whatsapp",
                "metadata": self.metadata,
                "contacts": [user.contact(sent_at, content.person(rng)[0])],
                "messages": [msg],
            }
            self._value(0.06 + 0.9 * frac, "messages", value, 1)
            self.expected.add("cloud_api", [(message_id, "text", "inbound", sender, user.user_id, "", body)])


def _distinct_numbers(rng: Random, count: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    seen = set(taken)
    while len(out) < count:
        number = content.phone_number(rng)
        if number not in seen:
            seen.add(number)
            out.append(number)
    return out
