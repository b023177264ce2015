"""Every Redis key Switchboard writes: its owner, shape and lifetime, in one module.

Keys (after the configurable prefix), as ``key`` - owner - shape - TTL:

- ``ingest:accepted:{event_id}`` - ingest - string ``pending``/``done`` - 30 s / 7 days
- ``x:since_id:{user_id}`` - ingest - id of the newest mention already on Kafka - none
- ``email:thread:{message_id}`` - ingest - thread key (``email:{root id}``) of an accepted
  email, so a reply naming it only in In-Reply-To joins its thread - 90 days
- ``imap:checkpoint:{user}@{host}/{mailbox}`` - ingest - hash: ``uidvalidity``, ``uid`` (the
  highest UID on Kafka and flagged; reset when UIDVALIDITY changes) - none
- ``sms:status:{message_sid}`` - ingest - hash: status, rank, provider status, error code,
  time of the most advanced Twilio status callback - 7 days
- ``sms:optout:{our_number}:{customer_number}`` - ingest - ``{keyword} {ISO time}`` of the
  customer's STOP (deleted by START); E.164 numbers - none
- ``chat:mailbox:{visitor_id}`` - outbound (ingest reads) - stream of agent replies (command
  id, text, time, in reply to), last 200 - 7 days after the latest reply
- ``chat:reply:{command_id}`` - outbound - mailbox entry id of the command's reply - 7 days
- ``chat:notify:{visitor_id}`` - outbound publishes, ingest pattern-subscribes - pub/sub
  channel (not a key): the id of a new mailbox entry
- ``attempts:{group}:{topic}:{partition}:{offset}`` - any consumer - failed attempts - 1 day
- ``router:seen:{inbound_event_id}`` - router - ``{conversation_id}|new|old|reopened`` - 7 days
- ``conv:thread:{thread_key}`` - router - id of the thread's conversation - none
- ``conv:{conversation_id}`` - router - hash: sequence, queue, status, times - none
- ``conv:seq`` - router - integer, source of reference numbers - none
- ``customer:id:{kind}:{value}`` - router - customer id owning an email/phone/social id - none
- ``customer:{id}`` - router - hash: name, tier, identities, first/last seen, merged_into - none
- ``customer:{id}:history`` - router - zset: conversation id -> first contact (ms), last 50 - none
- ``customer:{id}:open`` - router - hash: open conversation id -> ``queue|last contact ms`` - none
- ``incident:window:{key}`` - router - zset: customer -> last message (ms) - the window
- ``incident:active:{key}`` - router - id of the open incident of that problem - the cool-down
- ``sla:due:{partition}`` - sla - zset: timer id -> due time (ms) - none
- ``sla:claimed:{partition}`` - sla - hash: timer id -> claim time, until published - none
- ``sla:clock:{conversation_id}:{metric}`` - sla - JSON clock state - 30 days
- ``sla:open:{queue}`` - sla - set of ``conversation|metric`` of clocks running or paused - none
- ``outbound:send:{command_id}`` - outbound - hash: state, provider id, attempts - 7 days
- ``webhook:done:{delivery_id}`` - outbound - ``1`` once a subscriber answered 2xx (or was
  given up on) for that event - 7 days
"""

from __future__ import annotations

from dataclasses import dataclass

DAY = 86_400


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "sb:"

    def ingest_accepted(self, event_id: str) -> str:
        return f"{self.prefix}ingest:accepted:{event_id}"

    def x_since_id(self, user_id: str) -> str:
        return f"{self.prefix}x:since_id:{user_id}"

    def email_thread(self, message_id: str) -> str:
        return f"{self.prefix}email:thread:{message_id}"

    def imap_checkpoint(self, mailbox: str) -> str:
        return f"{self.prefix}imap:checkpoint:{mailbox}"

    def sms_status(self, message_sid: str) -> str:
        return f"{self.prefix}sms:status:{message_sid}"

    def sms_optout(self, our_number: str, customer_number: str) -> str:
        return f"{self.prefix}sms:optout:{our_number}:{customer_number}"

    def chat_mailbox(self, visitor_id: str) -> str:
        return f"{self.prefix}chat:mailbox:{visitor_id}"

    def chat_reply(self, command_id: str) -> str:
        return f"{self.prefix}chat:reply:{command_id}"

    def chat_notify(self, visitor_id: str) -> str:
        return f"{self.prefix}chat:notify:{visitor_id}"

    def chat_notify_pattern(self) -> str:
        """The glob matching every visitor's channel (the prefix's glob characters escaped)."""
        escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in self.prefix)
        return f"{escaped}chat:notify:*"

    def attempts(self, group: str, topic: str, partition: int, offset: int) -> str:
        return f"{self.prefix}attempts:{group}:{topic}:{partition}:{offset}"

    def router_seen(self, inbound_event_id: str) -> str:
        return f"{self.prefix}router:seen:{inbound_event_id}"

    def conversation_by_thread(self, thread_key: str) -> str:
        return f"{self.prefix}conv:thread:{thread_key}"

    def conversation(self, conversation_id: str) -> str:
        return f"{self.prefix}conv:{conversation_id}"

    def conversation_sequence(self) -> str:
        return f"{self.prefix}conv:seq"

    def customer_identity(self, kind: str, value: str) -> str:
        return f"{self.prefix}customer:id:{kind}:{value}"

    def customer(self, customer_id: str) -> str:
        return f"{self.prefix}customer:{customer_id}"

    def incident_window(self, key: str) -> str:
        return f"{self.prefix}incident:window:{key}"

    def incident_active(self, key: str) -> str:
        return f"{self.prefix}incident:active:{key}"

    def sla_due(self, partition: int) -> str:
        return f"{self.prefix}sla:due:{partition}"

    def sla_claimed(self, partition: int) -> str:
        return f"{self.prefix}sla:claimed:{partition}"

    def sla_clock(self, conversation_id: str, metric: str) -> str:
        return f"{self.prefix}sla:clock:{conversation_id}:{metric}"

    def sla_open(self, queue: str) -> str:
        return f"{self.prefix}sla:open:{queue}"

    def outbound_send(self, command_id: str) -> str:
        return f"{self.prefix}outbound:send:{command_id}"

    def webhook_done(self, delivery_id: str) -> str:
        return f"{self.prefix}webhook:done:{delivery_id}"
