"""Jamie Zawinski's message threading algorithm (https://www.jwz.org/doc/threading.html).

Switchboard keys a conversation by the Message-ID at the root of its thread. For one message
that is simply the first of its References (``ParsedEmail.thread_root``); this module builds the
whole forest from many messages, for tests, for backfills from an IMAP folder, and for finding
the root when a client mangled References. It follows JWZ's steps:

1. link every message under the last of its references, chaining the references in order
   (never re-linking an already linked container, never creating a loop), and under a
   placeholder container when the referenced message is not present;
2. take the containers without a parent as the root set;
4. prune placeholders with no children, and promote the children of a placeholder (at the root
   only when there is a single child);
5. optionally gather roots with the same normalised subject.

Step 3 (discarding the id table) has nothing to do in Python. Siblings keep the order in
which their messages were given; sort them by date afterwards if needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, NamedTuple

from services.ingest.mail.subject import is_reply_subject, normalise_subject

if TYPE_CHECKING:
    from services.ingest.mail.parse import ParsedEmail


class ThreadMessage(NamedTuple):
    """What threading needs of a message; a plain 4-tuple in this order works too."""

    message_id: str
    references: tuple[str, ...] = ()
    in_reply_to: str | None = None
    subject: str = ""

    @classmethod
    def from_email(cls, email: ParsedEmail) -> ThreadMessage:
        """The thread input for a parsed email; raises ValueError without a Message-ID, which
        JWZ cannot place (the caller keys such a message on its own)."""
        if not email.message_id:
            raise ValueError("message has no Message-ID and cannot be threaded")
        return cls(email.message_id, email.references, email.in_reply_to, email.subject)

    def parents(self) -> tuple[str, ...]:
        """References, root first, then In-Reply-To when References does not already end
        with it; duplicates and the message's own id are dropped."""
        seen: dict[str, None] = {}
        for reference in (*self.references, self.in_reply_to):
            if reference and reference != self.message_id:
                seen.setdefault(reference, None)
        return tuple(seen)


class Container:
    """A node of the thread forest: a message, or a placeholder for one that is referenced
    but absent (``message`` is None; ``key`` still names the missing Message-ID)."""

    __slots__ = ("children", "key", "message", "parent")

    def __init__(self, key: str | None, message: ThreadMessage | None = None) -> None:
        self.key = key
        self.message = message
        self.parent: Container | None = None
        self.children: list[Container] = []

    def __repr__(self) -> str:
        return f"Container({self.message_id or f'<placeholder {self.key}>'}, {len(self.children)})"

    @property
    def message_id(self) -> str | None:
        return self.message.message_id if self.message is not None else None

    @property
    def is_placeholder(self) -> bool:
        return self.message is None

    @property
    def size(self) -> int:
        """Number of containers in this subtree, itself included."""
        return sum(1 for _ in self.walk())

    def walk(self) -> Iterator[Container]:
        """This container and its descendants, depth first, without recursion."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def add_child(self, child: Container) -> None:
        if child.parent is not None:
            child.parent.children.remove(child)
        self.children.append(child)
        child.parent = self

    def detach(self) -> None:
        if self.parent is not None:
            self.parent.children.remove(self)
            self.parent = None

    def is_ancestor_of(self, other: Container) -> bool:
        node: Container | None = other
        while node is not None:
            if node is self:
                return True
            node = node.parent
        return False

    def subject(self) -> str:
        """The subject of this message, or of its first child's for a placeholder."""
        if self.message is not None:
            return self.message.subject
        return self.children[0].subject() if self.children else ""


def thread(messages: Iterable[ThreadMessage], *, group_by_subject: bool = True) -> list[Container]:
    """Thread ``messages`` into a forest; roots come in the order their ids were first seen."""
    table: dict[str, Container] = {}
    for raw in messages:
        message = ThreadMessage._make(raw)
        own = table.get(message.message_id)
        if own is None:
            own = table[message.message_id] = Container(message.message_id, message)
        elif own.message is None:
            own.message = message
        else:
            # A second message with the same id: JWZ keeps both, the newcomer under a new key.
            key = f"{message.message_id}\x00{len(table)}"
            own = table[key] = Container(key, message)
        previous: Container | None = None
        for reference in message.parents():
            container = table.get(reference)
            if container is None:
                container = table[reference] = Container(reference)
            if (
                previous is not None
                and container.parent is None
                and container is not own
                and not container.is_ancestor_of(previous)
            ):
                previous.add_child(container)
            previous = container
        # Step 1C: the last reference is the parent; what earlier messages' References
        # suggested about this message gives way, unless it would make a loop.
        if previous is not None:
            if previous is not own and not own.is_ancestor_of(previous):
                previous.add_child(own)
        else:
            own.detach()

    roots: list[Container] = []
    for container in table.values():
        if container.parent is None:
            roots.extend(_prune(container, at_root=True))
    if group_by_subject:
        roots = _group_by_subject(roots)
    return roots


def _prune(container: Container, *, at_root: bool) -> list[Container]:
    """Step 4 for ``container``'s subtree; returns what replaces it among its siblings."""
    # Iterative post-order: children before parents, so deep threads cannot recurse too far.
    order: list[Container] = []
    stack = [container]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children)
    for node in reversed(order):
        if node is container:
            continue
        if node.message is None:
            parent = node.parent
            assert parent is not None
            position = parent.children.index(node)
            promoted = node.children
            for child in promoted:
                child.parent = parent
            node.children = []
            parent.children[position : position + 1] = promoted
            node.parent = None
    if container.message is None:
        if not container.children:
            return []
        if at_root and len(container.children) == 1:
            child = container.children[0]
            child.parent = None
            container.children = []
            return [child]
    return [container]


def _group_by_subject(roots: list[Container]) -> list[Container]:
    """Step 5: gather root threads that share a normalised subject (non-empty ones only)."""
    table: dict[str, Container] = {}
    for root in roots:
        subject = normalise_subject(root.subject())
        if not subject:
            continue
        existing = table.get(subject)
        if (
            existing is None
            or (existing.message is not None and root.message is None)
            or (
                existing.message is not None
                and root.message is not None
                and is_reply_subject(existing.message.subject)
                and not is_reply_subject(root.message.subject)
            )
        ):
            table[subject] = root
    for root in roots:
        subject = normalise_subject(root.subject())
        chosen = table.get(subject) if subject else None
        if chosen is None or chosen is root or root.parent is not None:
            continue
        if chosen.is_placeholder and root.is_placeholder:
            for child in list(root.children):
                chosen.add_child(child)
        elif chosen.is_placeholder:
            chosen.add_child(root)
        elif root.is_placeholder:
            root.add_child(chosen)
            table[subject] = root
        elif is_reply_subject(root.subject()) and not is_reply_subject(chosen.subject()):
            chosen.add_child(root)
        else:
            merged = Container(None)
            merged.add_child(chosen)
            merged.add_child(root)
            table[subject] = merged
    # The forest's roots, in the order their first member appeared; emptied placeholders go.
    result: list[Container] = []
    seen: set[int] = set()
    for root in roots:
        top = root
        while top.parent is not None:
            top = top.parent
        if top.is_placeholder and not top.children:
            continue
        if id(top) not in seen:
            seen.add(id(top))
            result.append(top)
    return result


def collapse_empty(root: Container) -> Container:
    """Promote the first child of a placeholder root to be the root, its siblings becoming
    its children; any other root is returned unchanged. Useful when a thread must be shown
    under a real message (the first reply stands in for the missing original)."""
    if root.message is not None or not root.children:
        return root
    first, *rest = root.children
    for child in root.children:
        child.parent = None
    root.children = []
    for child in rest:
        first.add_child(child)
    return first
