"""Pydantic models of a webhook delivery: the documented, validated view of every change kind.

These models are for validating small forms, for tests and for clear errors. The hot path
(`schemas.normalize`) reads the orjson-decoded dicts directly and checks the same fields the
same way; a value these models accept always normalizes.

Unknown fields are kept (`extra="allow"`), never rejected: the platform adds fields without
notice (e.g. `history_context.from_me`). Every message type's content object is carried: the
ones the normalizer reads are typed loosely below; any other type's object (`location`,
`contacts`, `template`, `order`, `system`, `unsupported`, ...) stays in `model_extra` as received.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from schemas.errors import ChangeError, EnvelopeError

MAX_UINT32 = 2**32 - 1


def _int_like(value: Any) -> Any:
    """Integers arrive as JSON numbers or as digit strings (`"1739230955"`); both are accepted."""
    if type(value) is str and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)
    return value


# Unix seconds; `DateTime('UTC')` holds up to 2106, so anything larger (e.g. milliseconds) is refused.
Timestamp = Annotated[int, BeforeValidator(_int_like), Field(ge=0, le=MAX_UINT32)]
Phase = Annotated[int, BeforeValidator(_int_like), Field(ge=0, le=255)]
ChunkOrder = Annotated[int, BeforeValidator(_int_like), Field(ge=0, le=MAX_UINT32)]
Progress = Annotated[int, BeforeValidator(_int_like), Field(ge=0, le=100)]
NonEmptyStr = Annotated[str, Field(min_length=1)]
ErrorCode = Annotated[int, BeforeValidator(_int_like), Field(ge=0, le=MAX_UINT32)]


class Model(BaseModel):
    """Base: strict scalars (no silent coercion), unknown fields kept, `from` by alias or name."""

    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True)


# ---- shared pieces -------------------------------------------------------------------------------


class Metadata(Model):
    display_phone_number: str = ""
    phone_number_id: NonEmptyStr


class ErrorData(Model):
    details: str = ""


class PlatformError(Model):
    """An error object: `value.errors[]`, `history[].errors[]`, `messages[].errors[]`, `statuses[].errors[]`."""

    code: ErrorCode
    title: str = ""
    message: str = ""
    error_data: ErrorData | None = None


# ---- message objects -----------------------------------------------------------------------------


class TextContent(Model):
    body: str = ""


class MediaContent(Model):
    """image, video, audio, document, sticker: the asset id appears on follow-ups and live messages."""

    id: str | None = None
    mime_type: str | None = None
    caption: str | None = None
    sha256: str | None = None


class ButtonContent(Model):
    text: str = ""
    payload: str | None = None


class ReactionContent(Model):
    message_id: str | None = None
    emoji: str | None = None


class MessageContext(Model):
    """A reply's or a forward's context: `id` is the message replied to."""

    id: str | None = None
    from_: str | None = Field(default=None, alias="from")


class HistoryContext(Model):
    status: str | None = None
    from_me: bool | None = None


class Message(Model):
    """One message object, as in history threads, follow-ups, echoes and the messages webhook."""

    from_: str | None = Field(default=None, alias="from")
    to: str | None = None
    id: NonEmptyStr
    timestamp: Timestamp
    type: NonEmptyStr
    context: MessageContext | None = None
    history_context: HistoryContext | None = None
    errors: list[PlatformError] | None = None
    text: TextContent | None = None
    image: MediaContent | None = None
    video: MediaContent | None = None
    audio: MediaContent | None = None
    document: MediaContent | None = None
    sticker: MediaContent | None = None
    button: ButtonContent | None = None
    interactive: dict[str, Any] | None = None
    reaction: ReactionContent | None = None

    def content(self) -> Any:
        """The object under the key named by `type` (typed above or kept raw in `model_extra`)."""
        if self.type in type(self).model_fields:
            return getattr(self, self.type)
        return (self.model_extra or {}).get(self.type)


class EchoMessage(Message):
    """An echo is always sent by the business; `to` is the WhatsApp user."""

    to: NonEmptyStr


class InboundMessage(Message):
    """A messages-webhook message is always from the WhatsApp user."""

    from_: NonEmptyStr = Field(alias="from")


# ---- history -------------------------------------------------------------------------------------


class ChunkMetadata(Model):
    phase: Phase
    chunk_order: ChunkOrder
    progress: Progress


class Thread(Model):
    id: NonEmptyStr  # the WhatsApp user's number
    messages: list[Message] = []


class HistoryItem(Model):
    """Either a chunk (`metadata` + `threads`) or the declined/error form (`errors`)."""

    metadata: ChunkMetadata | None = None
    threads: list[Thread] = []
    errors: list[PlatformError] = []

    @model_validator(mode="after")
    def _chunk_or_errors(self) -> HistoryItem:
        if self.metadata is None and not self.errors:
            raise ValueError("expected a chunk ({metadata, threads}) or {errors}")
        if self.metadata is None and self.threads:
            raise ValueError("threads without the chunk's metadata")
        return self


class HistoryValue(Model):
    """`history`: chunks of threads, the media follow-up form (`messages`), or the declined form."""

    messaging_product: str = "whatsapp"
    metadata: Metadata
    history: list[HistoryItem] = []
    messages: list[Message] = []


# ---- smb_app_state_sync ------------------------------------------------------------------------


class SyncedContact(Model):
    full_name: str = ""  # absent on removal
    first_name: str = ""
    phone_number: NonEmptyStr


class StateSyncMetadata(Model):
    timestamp: Timestamp


class StateSyncItem(Model):
    """A `contact` add (or edit) / remove; other item types are carried but not normalized."""

    type: str
    contact: SyncedContact | None = None
    action: str | None = None
    metadata: StateSyncMetadata | None = None

    @model_validator(mode="after")
    def _contact_complete(self) -> StateSyncItem:
        if self.type == "contact":
            if self.contact is None:
                raise ValueError("a contact item needs `contact`")
            if self.action not in ("add", "remove"):
                raise ValueError("a contact item needs `action` 'add' or 'remove'")
            if self.metadata is None:
                raise ValueError("a contact item needs `metadata.timestamp`")
        return self


class StateSyncValue(Model):
    messaging_product: str = "whatsapp"
    metadata: Metadata
    state_sync: list[StateSyncItem] = []


# ---- smb_message_echoes ------------------------------------------------------------------------


class EchoesValue(Model):
    messaging_product: str = "whatsapp"
    metadata: Metadata
    message_echoes: list[EchoMessage] = []


# ---- account_update ----------------------------------------------------------------------------


class AccountUpdateValue(Model):
    """`event`: PARTNER_REMOVED (maybe with `disconnection_info`), ACCOUNT_OFFBOARDED, or any other."""

    phone_number: Annotated[str, BeforeValidator(lambda v: "" if v is None else v)] = ""
    event: NonEmptyStr
    disconnection_info: Any = None


# ---- messages (ordinary Cloud API webhook) -----------------------------------------------------


class Profile(Model):
    name: str = ""


class InboundContact(Model):
    wa_id: str = ""
    profile: Profile | None = None


class Status(Model):
    id: NonEmptyStr
    status: NonEmptyStr
    timestamp: Timestamp
    recipient_id: str = ""
    errors: list[PlatformError] | None = None


class MessagesValue(Model):
    messaging_product: str = "whatsapp"
    metadata: Metadata
    contacts: list[InboundContact] = []
    messages: list[InboundMessage] = []
    statuses: list[Status] = []
    errors: list[PlatformError] = []


class UnknownValue(Model):
    """A field we do not know: everything is kept as received."""


ChangeValue = HistoryValue | StateSyncValue | EchoesValue | AccountUpdateValue | MessagesValue | UnknownValue

VALUE_MODELS: dict[str, type[Model]] = {
    "history": HistoryValue,
    "smb_app_state_sync": StateSyncValue,
    "smb_message_echoes": EchoesValue,
    "account_update": AccountUpdateValue,
    "messages": MessagesValue,
}

# ---- envelope ----------------------------------------------------------------------------------


class HistoryChange(Model):
    field: Literal["history"]
    value: HistoryValue


class StateSyncChange(Model):
    field: Literal["smb_app_state_sync"]
    value: StateSyncValue


class EchoesChange(Model):
    field: Literal["smb_message_echoes"]
    value: EchoesValue


class AccountUpdateChange(Model):
    field: Literal["account_update"]
    value: AccountUpdateValue


class MessagesChange(Model):
    field: Literal["messages"]
    value: MessagesValue


class UnknownChange(Model):
    field: NonEmptyStr
    value: UnknownValue


def _change_tag(change: Any) -> str:
    field = change.get("field") if isinstance(change, dict) else getattr(change, "field", None)
    return field if isinstance(field, str) and field in VALUE_MODELS else "unknown"


Change = Annotated[
    Annotated[HistoryChange, Tag("history")]
    | Annotated[StateSyncChange, Tag("smb_app_state_sync")]
    | Annotated[EchoesChange, Tag("smb_message_echoes")]
    | Annotated[AccountUpdateChange, Tag("account_update")]
    | Annotated[MessagesChange, Tag("messages")]
    | Annotated[UnknownChange, Tag("unknown")],
    Discriminator(_change_tag),
]
_CHANGE_TAGS = frozenset((*VALUE_MODELS, "unknown"))


class Entry(Model):
    id: NonEmptyStr  # the WABA id
    time: Timestamp | None = None
    changes: list[Change]


class Envelope(Model):
    object: str
    entry: list[Entry]


# ---- parsing with typed errors -----------------------------------------------------------------

_ENVELOPE = TypeAdapter(Envelope)


def parse_envelope(body: bytes) -> Envelope:
    """Full parse of one delivery. Raises EnvelopeError with the path of the first bad field."""
    try:
        return _ENVELOPE.validate_json(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        if error["type"] == "json_invalid":
            raise EnvelopeError("$", f"not JSON: {error['msg']}") from None
        raise EnvelopeError(json_path(error["loc"]), _expected(error)) from None


def validate_value(field: str, value: Any) -> ChangeValue:
    """Validate one change's `value` for its `field`. Raises ChangeError (`$.value...` paths)."""
    model = VALUE_MODELS.get(field, UnknownValue)
    try:
        return model.model_validate(value)  # type: ignore[return-value]
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ChangeError(json_path(("value", *error["loc"])), _expected(error)) from None


def json_path(loc: tuple[int | str, ...]) -> str:
    """`('entry', 0, 'changes', 1, 'history', 'value')` -> `$.entry[0].changes[1].value`.

    The union tag pydantic puts after `changes[i]` is not a field of the payload and is dropped.
    """
    parts = ["$"]
    for i, item in enumerate(loc):
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif i >= 2 and loc[i - 2] == "changes" and isinstance(loc[i - 1], int) and item in _CHANGE_TAGS:
            continue
        else:
            parts.append(f".{item}")
    return "".join(parts)


def _expected(error: ErrorDetails) -> str:
    message = str(error["msg"])
    if error["type"] == "missing":
        return "missing"
    given = error.get("input")
    if isinstance(given, str | int | float | bool) or given is None:
        return f"{message} (got {orjson.dumps(given).decode()[:60]})"
    return message
