"""What simulated people write and are called: names, texts, numbers and media, in many scripts.

Pools are fixed lists, so a seed gives the same traffic everywhere; accents, emoji, quotes,
backslashes, slashes and new lines are there on purpose, to exercise the escaping on both sides.
"""

from __future__ import annotations

import hashlib
from random import Random
from typing import Any

FIRST_NAMES: tuple[str, ...] = (
    "José",
    "María",
    "João",
    "Zoë",
    "Łukasz",
    "Chloé",
    "Søren",
    "Ngọc",
    "François",
    "Begoña",
    "İlkay",
    "Márta",
    "Ayşe",
    "Renée",
    "Andrés",
    "Inês",
    "Björn",
    "Siobhán",
    "Dmitrï",
    "Ana",
    "Lucía",
    "Camila",
    "Mateus",
    "Priya",
    "Aïcha",
    "Nuño",
    "Kateřina",
    "Jürgen",
    "Ömer",
    "Valentina",
)
LAST_NAMES: tuple[str, ...] = (
    "Álvarez",
    "Peña",
    "Gonçalves",
    "Müller",
    "Núñez",
    "Ødegaard",
    "Kowalczyk",
    "Nguyễn",
    "O'Brien",
    "García",
    "Souza",
    "Lefèvre",
    "Yılmaz",  # noqa: RUF001
    "Dvořák",
    "Fernández",
    "Conceição",
    "Schäfer",
    "Šimić",
)
# Whole names as people type them into an address book: other scripts, emoji, nicknames.
ODD_NAMES: tuple[tuple[str, str], ...] = (
    ("李雷", "雷"),
    ("さくら 🌸", "さくら"),
    ("Αλέξανδρος Παππάς", "Αλέξανδρος"),
    ("فاطمة الزهراء", "فاطمة"),
    ("प्रिया शर्मा", "प्रिया"),
    ("Дмитрий Иванов", "Дмитрий"),
    ("Tienda Mamá 🛒", "Tienda"),
    ("Carlos ⚽ (vecino)", "Carlos"),
    ('Pepa "la jefa" 👑', "Pepa"),
    ("Dr. Renée Lefèvre", "Dr."),
)

_TEXTS: tuple[str, ...] = (
    "Hola, ¿tienen disponible la talla M?",
    "Quería saber el precio del envío 🚚",
    "Obrigado pela entrega! Chegou tudo certinho 😊",
    "Your order has shipped 📦 track it at https://example.com/t/8Z3K",
    "Can I move my reservation to 8pm tonight?",
    "El pedido llegó perfecto 👌",
    "¿A qué hora abren mañana?",
    "Pode me mandar o catálogo? 🙏",
    "Thanks!! 🙏🙏",
    "Perfecto, nos vemos el jueves",
    "Café con leche x2 ☕☕",
    "Precio: 1.250,00 € (IVA incluido)",
    "Mañana a las 9:30 👍",
    "Está en camino 🛵💨",
    'She said "that\'s the one" 😂',
    "Línea 1\nLínea 2\n— firmado, Begoña",
    "Factura en C:\\facturas\\2025\\0042.pdf",
    "<b>no es html</b> & <i>tampoco</i>",
    "Bom dia ☀️ já está aberto?",
    "Gracias por su compra. Código de descuento: ÑANDÚ-15",
    "Merci beaucoup, à bientôt !",
    "Danke schön, bis Übermorgen 👋",
    "👍",
    "ok",
    "Te paso la ubicación 📍",
    "¿Aceptan pago con tarjeta? 💳",
    "Tudo bem? Preciso remarcar 📅",
    "Δεν το παρέλαβα ακόμα",
    "Спасибо, всё получил!",
    "谢谢！明天见",  # noqa: RUF001 (real text: the full-width mark is what Chinese uses)
    "🎉🎂 ¡Feliz cumpleaños! 🎂🎉",
    "Tab\tseparated\tvalues / slashes / and \\ backslashes",
)
_CAPTIONS: tuple[str, ...] = (
    "Black Prince echeveria 🌵",
    "Así quedó el arreglo 💐",
    "Foto do produto",
    "Comprobante de pago",
    "Menú del día 🍲",
    "Nueva colección otoño/invierno",
)
REACTION_EMOJI: tuple[str, ...] = ("👍", "❤️", "😂", "😮", "😢", "🙏", "👍🏽")
_PLACES: tuple[tuple[float, float, str, str], ...] = (
    (40.4168, -3.7038, "Puerta del Sol", "Plaza de la Puerta del Sol, Madrid"),
    (-23.5505, -46.6333, "Praça da Sé", "Sé, São Paulo - SP"),
    (19.4326, -99.1332, "Zócalo", "Centro Histórico, Ciudad de México"),
    (48.8584, 2.2945, "Tour Eiffel", "Champ de Mars, 5 Av. Anatole France, Paris"),
)
_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("order_update", "es"),
    ("appointment_reminder", "pt_BR"),
    ("shipping_confirmation", "en_US"),
)
_DOC_NAMES: tuple[str, ...] = ("Factura_0042.pdf", "Presupuesto €.pdf", "catálogo 2025.pdf", "menu.pdf")

# Business numbers and user numbers: country code, digits after it, and the country's ISO code
# (a BSUID starts with it).
_COUNTRIES: tuple[tuple[str, int, str], ...] = (
    ("1", 10, "US"),
    ("52", 10, "MX"),
    ("55", 11, "BR"),
    ("34", 9, "ES"),
    ("57", 10, "CO"),
    ("54", 11, "AR"),
    ("91", 10, "IN"),
    ("44", 10, "GB"),
    ("49", 11, "DE"),
    ("33", 9, "FR"),
    ("351", 9, "PT"),
    ("56", 9, "CL"),
)
_HANDLES: tuple[str, ...] = ("luna", "sol", "tigre", "mar", "pixel", "cafe", "nube", "rio", "kiwi", "zorro")

MEDIA_TYPES: frozenset[str] = frozenset({"image", "video", "audio", "document", "sticker"})
_MIME: dict[str, str] = {
    "image": "image/jpeg",
    "video": "video/mp4",
    "audio": "audio/ogg; codecs=opus",
    "document": "application/pdf",
    "sticker": "image/webp",
}


def phone_number(rng: Random) -> str:
    cc, digits, _ = _COUNTRIES[rng.randrange(len(_COUNTRIES))]
    return cc + str(rng.randrange(10 ** (digits - 1), 10**digits))


def country_of(number: str) -> str:
    """The ISO country code of a number made by `phone_number` (no two calling codes overlap)."""
    for cc, _, iso in _COUNTRIES:
        if number.startswith(cc):
            return iso
    raise ValueError(f"no simulated country calls {number[:3]}...")


def username(rng: Random) -> str:
    """A WhatsApp username: letters, digits, a dot or an underscore."""
    return f"{_HANDLES[rng.randrange(len(_HANDLES))]}{'._'[rng.randrange(2)]}{rng.randrange(10, 10_000)}"


def person(rng: Random) -> tuple[str, str]:
    """(full_name, first_name) as stored in a phone's address book."""
    if rng.random() < 0.2:
        return ODD_NAMES[rng.randrange(len(ODD_NAMES))]
    first = FIRST_NAMES[rng.randrange(len(FIRST_NAMES))]
    full = f"{first} {LAST_NAMES[rng.randrange(len(LAST_NAMES))]}"
    if rng.random() < 0.1:
        full += " " + REACTION_EMOJI[rng.randrange(len(REACTION_EMOJI))]
    return full, first


def text_pool(rng: Random, size: int = 256) -> tuple[str, ...]:
    """Distinct-looking message bodies, built once per business so messages only pick one."""
    pool: list[str] = []
    for i in range(size):
        parts = [_TEXTS[rng.randrange(len(_TEXTS))] for _ in range(1 + rng.randrange(2))]
        pool.append(" ".join(parts) if i % 7 else f"{parts[0]} #{rng.randrange(10_000)}")
    return tuple(pool)


def caption(rng: Random) -> str | None:
    return _CAPTIONS[rng.randrange(len(_CAPTIONS))] if rng.random() < 0.5 else None


def media_object(rng: Random, kind: str, media_id: str, with_caption: str | None) -> dict[str, Any]:
    """The media object the platform sends once an asset has an id (follow-ups, echoes)."""
    obj: dict[str, Any] = {}
    if with_caption is not None and kind in ("image", "video", "document"):
        obj["caption"] = with_caption
    if kind == "document":
        obj["filename"] = _DOC_NAMES[rng.randrange(len(_DOC_NAMES))]
    obj["mime_type"] = _MIME[kind]
    obj["sha256"] = hashlib.sha256(media_id.encode()).hexdigest()
    obj["id"] = media_id
    if kind == "audio":
        obj["voice"] = rng.random() < 0.7
    if kind == "sticker":
        obj["animated"] = False
    return obj


def location(rng: Random) -> dict[str, Any]:
    lat, lon, name, address = _PLACES[rng.randrange(len(_PLACES))]
    return {"latitude": lat, "longitude": lon, "name": name, "address": address}


def shared_contacts(rng: Random, wa_id: str) -> list[dict[str, Any]]:
    full, first = person(rng)
    return [
        {
            "name": {"formatted_name": full, "first_name": first},
            "phones": [{"phone": "+" + wa_id, "wa_id": wa_id, "type": "CELL"}],
        }
    ]


def template(rng: Random) -> dict[str, Any]:
    name, lang = _TEMPLATES[rng.randrange(len(_TEMPLATES))]
    return {"name": name, "language": {"code": lang}}


def interactive_reply(rng: Random) -> tuple[dict[str, Any], str]:
    """An interactive reply from a user and its title (the text it shows)."""
    title = ("Sí, confirmo ✅", "Cambiar fecha", "Falar com atendente")[rng.randrange(3)]
    if rng.random() < 0.5:
        return {"type": "button_reply", "button_reply": {"id": f"btn_{rng.randrange(9)}", "title": title}}, title
    reply = {"id": f"row_{rng.randrange(9)}", "title": title, "description": "Opción del menú"}
    return {"type": "list_reply", "list_reply": reply}, title


def quick_reply_button(rng: Random) -> tuple[dict[str, Any], str]:
    """A tap on a template's quick-reply button and its text."""
    text = ("Confirmar", "Cancelar pedido", "Quero saber mais")[rng.randrange(3)]
    return {"payload": f"QR_{rng.randrange(100)}", "text": text}, text
