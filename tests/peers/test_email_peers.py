"""Run every email case collected from other projects against Switchboard's mail functions.

The 186 cases (tests/fixtures/peers/email_cases.json, sources and licences in NOTICE-email.md
beside it) are what mailgun/talon, discourse/email_reply_trimmer, github/email_reply_parser,
zapier/email-reply-parser and rth/jwzthreading assert in their own suites. Each kind runs the
function Switchboard uses for that job:

* ``reply_extraction`` -- plain text through :func:`extract_new_text` (history, "-- " blocks and
  device footers removed: the ``text`` of a ParsedEmail); a full ``.eml`` through
  :func:`parse_email` and its ``text``;
* ``html_reply_extraction`` -- :func:`extract_html_reply`;
* ``signature_split`` -- :func:`split_signature` (with sign-off detection);
* ``reply_fragments`` -- email_reply_parser's fragments, checked against
  :func:`extract_new_text`: what it shows must be in our text, what it hides must not;
* ``threading`` -- :func:`thread` (and :meth:`ThreadMessage.from_email` for raw messages).

Where the projects disagree, Switchboard picked one convention (stated in
services/ingest/mail/reply.py); a case of another convention stays in the suite as a strict
xfail. Its test first checks that our answer is what *our* convention gives for that input and
only then raises ConventionMismatch, the one exception the xfail accepts: a wrong answer still
fails, and a changed convention XPASSes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from services.ingest.mail import (
    Container,
    ThreadMessage,
    extract_html_reply,
    extract_new_text,
    parse_email,
    split_signature,
    thread,
)
from services.ingest.mail.threading import collapse_empty

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "peers" / "email_cases.json"
CASES: list[dict[str, Any]] = json.loads(FIXTURE.read_text(encoding="utf-8"))["cases"]


class ConventionMismatch(AssertionError):
    """The peer expects another convention's answer; ours was checked against our convention."""


# Case id -> (why we differ, what Switchboard's convention gives for this input: the value
# itself, or a predicate on it where the value is too long to write out).
CONVENTIONS: dict[str, tuple[str, Any]] = {
    "talon-eml-iphone": (
        "convention: 'Sent from my iPhone' is a device footer and is stripped from the "
        "customer's text (email_reply_parser and email_reply_trimmer strip it too; talon's "
        "quotation extractor keeps it)",
        "Hello",
    ),
    "talon-eml-sparrow": (
        "convention: a '-- ' signature block is stripped from the customer's text (talon's "
        "quotation extractor keeps signatures; email_reply_trimmer strips them)",
        "Hello",
    ),
    "talon-text-dont-parse-quotations-for-forwarded-messages": (
        "convention: a forwarded message below new text is history like a quote "
        "(email_reply_trimmer's forwarded_gmail/forwarded_apple cases); talon keeps it. "
        "full_text still has it",
        "FYI",
    ),
    "erp-email-1-1": (
        "convention: lines are kept as written; email_reply_parser drops a trailing space "
        "inside the text, talon keeps it (talon-text-appointment-2 asserts it exactly)",
        "Hi folks\n\nWhat is the best way to clear a Riak bucket of all key, values after \n"
        "running a test?\nI am currently using the Java HTTP API.",
    ),
    "trimmer-embedded-email-1": (
        "convention: text written below a quoted block is kept as an answer to it (never "
        "drop what the customer may have written); email_reply_trimmer takes it for the "
        "quoted sender's unquoted signature and drops it",
        "This is before the embedded email.\n\n\nRichard> This is the embedded email\n\n"
        "This is after the embedded email and will not show up because 99% of the times\n"
        "this is the signature...",
    ),
    "erp-fragments-email-1-2": (
        "convention: in an inline answer the quoted question is kept but its attribution line "
        "('On <date>, <name> wrote:') is dropped, as email_reply_trimmer does "
        "(trimmer-embedded-email-7 and -17); email_reply_parser shows the attribution",
        lambda text: (
            text.startswith("Hi,\n> Hi folks\n> \n> What is the best way")
            and "wrote:" not in text
            and "\nYou can list the keys" in text
            and text.endswith('delete them all individually."')
        ),
    ),
    "erp-fragments-email-1-8": (
        "convention: the attribution line above inline answers is dropped (see "
        "erp-fragments-email-1-2); email_reply_parser shows it",
        "> okay.  Well, here's some stuff I can write.\n>\n> And if I write a 2 second line "
        "you and maybe reply under this?\n>\n> Or if you didn't really feel like it, you "
        "could reply under this line.Or\n> if you didn't really feel like it, you could reply "
        "under this line. Or if\n> you didn't really feel like it, you could reply under this "
        "line. Or if you\n> didn't really feel like it, you could reply under this line.\n>\n\n"
        "I will reply under this one\n\n>\n> okay?\n>\n\nand under this.",
    ),
}

# Case id -> why Switchboard does not (yet) produce the peer's answer, with no convention at
# stake. Strict xfails, so fixing one makes the suite say so.
NOT_HANDLED: dict[str, str] = {}


def _params() -> list[Any]:
    # One test per case, named by the case id: the count and the names must match the file.
    ids = [case["id"] for case in CASES]
    if len(ids) != len(set(ids)) or not set(CONVENTIONS) | set(NOT_HANDLED) <= set(ids):
        raise RuntimeError("email_cases.json ids are not unique, or an xfail names no case")
    params = []
    for case in CASES:
        marks: list[pytest.MarkDecorator] = []
        if case["id"] in CONVENTIONS:
            marks.append(
                pytest.mark.xfail(
                    strict=True, raises=ConventionMismatch, reason=CONVENTIONS[case["id"]][0]
                )
            )
        elif case["id"] in NOT_HANDLED:
            marks.append(pytest.mark.xfail(strict=True, reason=NOT_HANDLED[case["id"]]))
        params.append(pytest.param(case, id=case["id"], marks=marks))
    return params


@pytest.mark.parametrize("case", _params())
def test_peer_case(case: dict[str, Any]) -> None:
    RUNNERS[case["kind"]](case)


# --- runners -----------------------------------------------------------------------------------


def _check_convention(case: Mapping[str, Any], actual: object) -> None:
    if case["id"] in CONVENTIONS:
        reason, ours = CONVENTIONS[case["id"]]
        holds = ours(actual) if callable(ours) else actual == ours
        assert holds, f"not even our own convention's answer: {actual!r}"
        raise ConventionMismatch(reason)


def _compare(mode: str, actual: str, case: Mapping[str, Any]) -> None:
    if mode == "contains":
        for needle in case["expected_contains"]:
            assert needle in actual
        return
    if mode == "not_contains":
        for needle in case["expected_not_contains"]:
            assert needle not in actual
        return
    expected = case["expected_reply"]
    if mode == "exact":
        assert actual == expected
    elif mode == "strip":
        assert actual.strip() == expected.strip()
    elif mode == "whitespace_insensitive":
        assert re.sub(r"\s", "", actual) == re.sub(r"\s", "", expected)
    else:
        raise AssertionError(f"unknown comparison {mode!r}")


def _reply_extraction(case: Mapping[str, Any]) -> None:
    if case["input_format"] == "eml":
        actual = parse_email(case["input"].encode("utf-8")).text
    else:
        actual = extract_new_text(case["input"])
    _check_convention(case, actual)
    _compare(case["comparison"], actual, case)


def _html_reply_extraction(case: Mapping[str, Any]) -> None:
    actual = extract_html_reply(case["input"])
    _check_convention(case, actual)
    _compare(case["comparison"], actual, case)


def _signature_split(case: Mapping[str, Any]) -> None:
    actual = split_signature(case["input"])
    _check_convention(case, actual)
    assert actual == (case["expected_text"], case["expected_signature"])


def _fragment_checks(fragment: Mapping[str, Any]) -> list[Callable[[str], bool]]:
    checks: list[Callable[[str], bool]] = []
    equals = str(fragment.get("equals", "")).strip()
    if equals:
        checks.append(lambda text: equals in text)
    if "contains" in fragment:
        contains = str(fragment["contains"])
        checks.append(lambda text: contains in text)
    if "pattern" in fragment:
        # Ruby's ^ is a line start; patterns are anchored on a fragment's first line.
        pattern = re.compile(fragment["pattern"], re.MULTILINE)
        checks.append(lambda text: pattern.search(text) is not None)
    return checks


def _reply_fragments(case: Mapping[str, Any]) -> None:
    """email_reply_parser shows the non-hidden fragments: each one's text must be in ours; a
    hidden fragment's text must not appear after the last shown fragment's position (quoted
    text shown inline can legitimately start like a hidden quote further down)."""
    actual = extract_new_text(case["input"])
    _check_convention(case, actual)
    fragments: Sequence[Mapping[str, Any]] = case["expected_fragments"]
    if all(not fragment.get("hidden") for fragment in fragments) and not any(
        _fragment_checks(fragment) for fragment in fragments
    ):
        assert actual == case["input"].strip()
        return
    last_shown = 0
    for fragment in fragments:
        if fragment.get("hidden"):
            continue
        for check in _fragment_checks(fragment):
            assert check(actual), f"shown fragment {fragment} missing from {actual!r}"
        anchor = fragment.get("equals") or fragment.get("contains")
        if anchor and anchor.strip() in actual:
            last_shown = max(last_shown, actual.index(anchor.strip()))
        elif "pattern" in fragment:
            match = re.search(fragment["pattern"], actual, re.MULTILINE)
            if match is not None:
                last_shown = max(last_shown, match.start())
    tail = actual[last_shown:]
    first_line_end = tail.find("\n")
    tail = tail[first_line_end + 1 :] if first_line_end >= 0 else ""
    for fragment in fragments:
        if fragment.get("hidden"):
            for check in _fragment_checks(fragment):
                assert not check(tail), f"hidden fragment {fragment} shown in {actual!r}"


def _thread_input(message: Mapping[str, Any]) -> ThreadMessage:
    if "raw" in message:
        return ThreadMessage.from_email(parse_email(message["raw"].encode("utf-8")))
    return ThreadMessage(
        message["message_id"], tuple(message.get("references", ())), None, message["subject"]
    )


def _matches(node: Container, expected: Mapping[str, Any]) -> None:
    assert node.message_id == expected["id"], node
    if "placeholder_for" in expected:
        assert node.is_placeholder
        assert node.key == expected["placeholder_for"]
    if "size" in expected:
        assert node.size == expected["size"]
    if "children" in expected:
        assert len(node.children) == len(expected["children"]), node.children
        for child, wanted in zip(node.children, expected["children"], strict=True):
            _matches(child, wanted)


def _threading(case: Mapping[str, Any]) -> None:
    expected = case["expected"]
    if "error" in expected:
        with pytest.raises(ValueError, match="Message-ID"):
            _thread_input(case["messages"][0])
        return
    messages = [_thread_input(message) for message in case["messages"]]
    if "threads" not in expected and "thread_index_1" not in expected:
        # Per-message expectations: how a raw message is read for threading.
        for message in messages:
            wanted = expected[message.message_id]
            assert message.subject == wanted["subject"]
            if "references_set" in wanted:
                assert sorted(message.parents()) == sorted(wanted["references_set"])
        return
    roots = thread(messages, **case.get("options", {}))
    if "threads" in expected:
        assert len(roots) == len(expected["threads"]), roots
        for root, wanted in zip(roots, expected["threads"], strict=True):
            _matches(root, wanted)
    if "thread_index_1" in expected:
        _matches(roots[1], expected["thread_index_1"])
    if "after_collapse_empty_root" in expected:
        _matches(collapse_empty(roots[0]), expected["after_collapse_empty_root"])


RUNNERS: dict[str, Callable[[Mapping[str, Any]], None]] = {
    "reply_extraction": _reply_extraction,
    "html_reply_extraction": _html_reply_extraction,
    "signature_split": _signature_split,
    "reply_fragments": _reply_fragments,
    "threading": _threading,
}
