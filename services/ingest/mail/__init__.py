"""The pure email-parsing core of the ingest service: raw RFC 5322 bytes in, a typed result out.

No I/O and no Kafka here. The SMTP and IMAP connectors hand ``parse_email`` the bytes they
received; what it returns (``ParsedEmail``) is what they turn into a ``MessageReceived`` event.
"""

from services.ingest.mail.parse import Attachment, InvalidEmail, ParsedEmail, parse_email
from services.ingest.mail.reply import (
    extract_html_reply,
    extract_new_text,
    extract_reply,
    split_signature,
)
from services.ingest.mail.subject import normalise_subject
from services.ingest.mail.threading import Container, ThreadMessage, thread

__all__ = [
    "Attachment",
    "Container",
    "InvalidEmail",
    "ParsedEmail",
    "ThreadMessage",
    "extract_html_reply",
    "extract_new_text",
    "extract_reply",
    "normalise_subject",
    "parse_email",
    "split_signature",
    "thread",
]
