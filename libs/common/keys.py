"""Every Redis key Switchboard writes: its owner, shape, lifetime and hash tag, in one module.

Hash tags (Redis Cluster). A key's slot is the CRC16 of its hash tag (the text between the
first ``{`` and the next ``}``), or of the whole key when it has none. Every multi-key operation
(a Lua script, a MULTI/EXEC pipeline) must touch keys of one slot, so keys used together share a
tag, and keys used alone carry none (they spread over every slot). The tags:

- ``{c:<conversation id>}`` - one conversation: the router's record (reopened, touched and created
  by one script each), its hub transcript (order and entries are written in one MULTI) and its
  SLA contact.
- ``{t:<thread key>}`` - one thread: the map to its conversation and the seen markers of its
  messages, written together by ``commit_placement.lua`` (the last step of a placement).
- ``{u:<customer id>}`` - one customer profile with its history and open conversations
  (``absorb_profile.lua`` folds another profile into it, ``retire_profile.lua`` empties one).
- ``{seq}`` - the reference sequence and its claims (``claim_reference.lua``: a conversation id
  gets one number however often it asks). One counter, so one slot whatever its tag.
- ``{q:<queue>}`` - one queue's hub stream, its per-event seen markers and its trimmed marker
  (``stream_append.lua``).
- ``{a:<channel>:<address>}`` - one address's automatic-acknowledgement markers
  (``claim_acknowledgement.lua`` checks the conversation's and the hour's together).
- ``{v:<visitor id>}`` - one chat visitor's mailbox and its command reply markers
  (``chat_mailbox_append.lua``).
- ``{i:<incident key>}`` - one problem's incident window and active incident
  (``count_incident.lua``).
- ``{sla:<partition>}`` - one Kafka partition's SLA state: its timers (due set and claims), the
  open and closed clocks of the conversations whose records arrive on it, and its per-queue open
  counts. The keeper stages a clock, its timers and the count in one MULTI, the scheduler claims
  and releases a partition's timers and reads their clocks: every one of those names the
  partition (the consumer has the record's, the scheduler fires per assigned partition, a clock
  stores its own), so they share its slot and partitions spread over the cluster. Every topic
  has the same partition count and records are keyed by thread key, so all records of a
  conversation arrive on one partition number; after a rebalance the new owner finds the state by
  the partition it was given. The open-clock gauge needs every queue's count across partitions:
  counts are kept per partition (a count shared by all partitions would have to be in every
  partition's slot) and the reader sums those listed in the untagged ``sla:partitions``. This
  layout replaced one ``{sla}`` slot for all of it: clocks written under ``{sla}`` are not read
  (the README's upgrade note).
- ``{hub:<group>}`` - one assignment group's push assignment (a queue's ``assignment_group``:
  queues and the agents who take their offers, like a TaskRouter workspace): its conversation
  summaries, open and waiting sets, agents, claims, offers and round-robin sequence, and the
  conversations linked to each incident, listed per queue and intersected with the queue's open
  set. ``assign.lua`` and ``track_conversation.lua`` join key prefixes with ids found inside the
  script (an agent's queues, a queue's agents), so everything one assignment decision reads
  shares the group's slot. An agent takes offers in one group (its queues must all be in it), so
  groups spread over a cluster's primaries; one group is one slot.

Operations that span entities are sequences of single-slot steps, each safe to repeat, ordered
so that a crash after any step and the message's redelivery end where an uninterrupted run does
(``tests/reliability/test_router_steps.py`` crashes each one after every step):

- placing a message (``services/router/conversation_state.py``): read the thread's seen marker and
  conversation; reopen or touch that conversation, or claim a reference for the conversation whose
  id derives from the message's event id, take ownership of its number (a number another
  conversation owns is claimed again) and create it (all create-once); then map the thread
  and write the seen marker in one script; then note the conversation in the customer's profile
  (repeatable, done on every delivery). A message with a marker has its conversation, and every
  step before the marker arrives at the same conversation and reference when repeated.
- moving a conversation to another assignment group (a transfer to a queue of another group, or
  a message routed to a queue of another group; ``services/hub/open_conversations.py``): withdraw
  its offer or assignment in the old group; copy its summary into the new group (and enter its
  new queue's sets there); point ``hub:group`` at the new group, noting the old one; remove it
  from the old group; drop the note. Readers follow the pointer, so they find a whole summary at
  every step; a crash before the pointer moves repeats the copy, one after it leaves the note,
  and the next event of the conversation finishes the removal
  (``tests/integration/hub/test_groups.py`` crashes it before every Redis call).
- identifying a customer (``services/router/customer_profiles.py``): read the identity indexes
  (untagged: each is read and written alone) and follow ``merged_into``; fold every other profile
  into the oldest (copy what it lacks, then mark the other merged: repeated, the copy changes
  nothing and the marked profile resolves to the oldest); update the survivor; point the indexes
  at it last.

Keys (after the configurable prefix, which must not contain ``{``), as ``key`` - owner - shape -
TTL; ``<name>`` is a part filled in, braces are literal hash tags:

- ``ingest:accepted:<event_id>`` - ingest - string ``pending``/``done`` - 30 s / 7 days
- ``x:since_id:<user_id>`` - ingest - id of the newest mention already on Kafka - none
- ``email:thread:<message_id>`` - ingest - thread key (``email:<root id>``) of an accepted email, so
  a reply naming it only in In-Reply-To joins its thread - 90 days
- ``email:sent:<message_id>`` - outbound (ingest reads) - thread key of the conversation an email we
  sent belongs to (Message-ID without angle brackets, domain lowercased), so a reply naming only our
  acknowledgement joins it - 90 days
- ``email:participants:<thread_key>`` - ingest - set of the lowercased senders and To/Cc addresses
  of the thread's messages: who may write in it - 90 days after the last message
- ``imap:checkpoint:<user>@<host>/<mailbox>`` - ingest - hash: ``uidvalidity``, ``uid`` (the highest
  UID on Kafka and flagged; reset when UIDVALIDITY changes) - none
- ``sms:status:<message_sid>`` - ingest - hash: status, rank, provider status, error code, time of
  the most advanced Twilio status callback - 7 days
- ``sms:optout:<our_number>:<customer_number>`` - ingest - ``<keyword> <ISO time>`` of the
  customer's STOP (deleted by START); E.164 numbers (WhatsApp: ``whatsapp:``-prefixed) - none
- ``whatsapp:inbound:<our_number>:<customer_number>`` - ingest (outbound reads) - zset of one member
  ``last`` scored by the time (ms) of the customer's latest WhatsApp message, which opens the
  24-hour customer-service window; E.164 numbers - 2 days
- ``chat:mailbox:{v:<visitor_id>}`` - outbound (ingest reads) - stream of agent replies (command id,
  text, time, in reply to), last 200 - 7 days after the latest reply
- ``chat:reply:{v:<visitor_id>}:<command_id>`` - outbound - mailbox entry id of the command's reply
  - 7 days
- ``chat:notify:<visitor_id>`` - outbound publishes, ingest pattern-subscribes - pub/sub channel
  (not a key): the id of a new mailbox entry
- ``attempts:<group>:<topic>:<partition>:<offset>`` - any consumer - failed attempts - 1 day
- ``router:seen:{t:<thread_key>}:<inbound_event_id>`` - router -
  ``<conversation_id>|new|old|reopened`` - 7 days
- ``conv:thread:{t:<thread_key>}`` - router - id of the thread's conversation - none
- ``conv:{c:<conversation_id>}`` - router - hash: sequence, queue, status, times, ``reopened_by``
  (the event that reopened it last), ``customer_id``, ``csat`` (the customer's survey score, 1-5)
  - none
- ``conv:seq:{seq}`` - router - integer, source of reference numbers - none
- ``conv:seq:{seq}:<conversation_id>`` - router - the sequence number claimed for that conversation
  - 7 days
- ``conv:number:<number>`` - router - the conversation that owns a reference number, written
  after its claim and in another slot than the sequence, so a failover that loses increments of
  the sequence cannot hand the number out twice - 7 days
- ``customer:id:<kind>:<value>`` - router - customer id owning an email/phone/social id - none
- ``customer:{u:<id>}`` - router - hash: name, tier, identities, first/last seen, merged_into -
  none
- ``customer:{u:<id>}:history`` - router - zset: conversation id -> first contact (ms), last 50
  - none
- ``customer:{u:<id>}:open`` - router - hash: open conversation id -> ``queue|last contact ms``
  - none
- ``incident:window:{i:<key>}`` - router - zset: customer -> last message (ms) - the window
- ``incident:active:{i:<key>}`` - router - id of the open incident of that problem - the cool-down
- ``sla:due:{sla:<partition>}`` - sla - zset: ``<conversation>|<metric code><generation>`` of
  each running clock -> due time (ms) of its next warning or breach - none
- ``sla:claimed:{sla:<partition>}`` - sla - hash: that member -> the due time it was claimed for,
  until its events are published - none
- ``sla:clocks:{sla:<partition>}:<bucket>`` - sla - hash: ``<conversation>|<metric code>`` ->
  msgpack array of an open (running or paused) clock; bucket = crc32(conversation) mod 128 - none
- ``sla:clock:{sla:<partition>}:<conversation_id>:<metric>`` - sla - msgpack array of a met or
  cancelled clock - 30 days
- ``sla:open:{sla:<partition>}`` - sla - hash: queue -> number of the partition's open clocks -
  none
- ``sla:partitions`` - sla - set of the partitions with clocks (entered by a worker before its
  first clock write there), which the open-clock gauge sums - none
- ``sla:contact:{c:<conversation_id>}`` - sla - hash: channel, recipient, sender, in_reply_to,
  reference, thread_key, automated, ``agent_reply`` (ms of the latest agent reply); only for
  conversations that can get status updates or a survey - 30 days after the last change
- ``survey:pending:<thread_key>`` - outbound (ingest reads) - ``<conversation_id>|<command_id>`` of
  the survey sent on an SMS/chat thread, whose bare 1-5 reply is its answer - the configured
  ``surveys.answer_window``
- ``outbound:send:<command_id>`` - outbound - hash: state, provider id, attempts - 7 days
- ``outbound:acked:{a:<channel>:<address>}:<conversation_id>:<kind>`` - outbound - id of the one
  automatic acknowledgement of that kind the address gets in that conversation - 30 days
- ``outbound:acks:{a:<channel>:<address>}:<hour>`` - outbound - set of the ids of the automatic
  acknowledgements sent to the address in that hour (Unix time of the command // 3600) - 2 hours
- ``webhook:done:<delivery_id>`` - outbound - ``1`` once a subscriber answered 2xx (or was given up
  on) for that event - 7 days
- ``hub:stream:{q:<queue>}`` - hub fan-out - stream of agent events of one queue (field ``e``:
  JSON), capped at about ``HUB_STREAM_MAXLEN`` entries and ``HUB_STREAM_MAX_AGE`` - none
- ``hub:seen:{q:<queue>}:<event_id>`` - hub fan-out - stream entry id the event was appended as (a
  redelivery appends nothing) - ``HUB_STREAM_MAX_AGE`` + 1 day
- ``hub:trimmed:{q:<queue>}`` - hub fan-out - id of the newest entry trimmed from the queue's stream
  (a resume id older than it must resync) - none
- ``hub:{hub:<group>}:open:<queue>`` - hub fan-out - zset: open conversation id -> earliest SLA
  deadline (ms; 2**52 when no clock runs) - none
- ``hub:group:{c:<conversation_id>}`` - hub fan-out - the assignment group whose keys hold the
  conversation's summary (set before the summary is first written there), followed mid-move by
  a space and the group it is leaving - 30 days after the latest routed message
- ``hub:{hub:<group>}:conv:<conversation_id>`` - hub fan-out - hash: queue, reference, channel,
  customer, ``identity`` (JSON: who wrote the latest message, ``verified`` or not), last text, reply
  address, ``deadline:<metric>`` (ms), ``window_closes`` (ms: the end of a WhatsApp conversation's
  customer-service window), ``req_skills`` and ``req_language`` (what an agent must have to be
  offered it), ``waiting_from`` (ms: when its relaxation ladder started), ``step`` (the ladder step
  it is on), ``issue_type`` (the router's for the latest message, or an agent's change) and
  ``message_id`` (that message's event id, which a correction names) - 30 days after the last change
- ``hub:transcript:{c:<conversation_id>}`` - hub fan-out - zset: transcript entry id (``in:``,
  ``out:``, ``note:``, ``action:``, ``sla:`` and the event's, command's or action's id) -> its time
  (ms); the newest 1,000 - 30 days after the last change
- ``hub:transcript:{c:<conversation_id>}:entries`` - hub fan-out - hash: entry id -> JSON entry
  (message with channel and sender, outbound message, note, action, SLA event, routing explanation);
  ``delivery:<entry id>`` -> the outbound message's receipt status - 30 days after the last change
- ``hub:action:<action_id>`` - hub - ``pending``/``done`` of an agent action's publish - 30 s / 7
  days
- ``hub:incident:<incident_id>`` - hub fan-out - hash: ``key``, ``issue_type``, ``customers``,
  ``window_seconds``, ``detected_at`` (ms), ``queue`` of an incident the router detected - 30 days
- ``hub:{hub:<group>}:incident:<incident_id>:linked`` - hub fan-out - set of the group's
  conversations whose messages the router linked to the incident - 30 days after the latest link
- ``hub:{hub:<group>}:incidents:<queue>`` - hub fan-out - zset: incident with a linked conversation
  (or its first one) in the queue -> time (ms) of the latest; older than 30 days dropped - none
- ``hub:{hub:<group>}:waiting:<queue>`` - hub fan-out and assigner - zset: open conversations of the
  queue neither assigned nor offered -> the same score as ``hub:open`` - none
- ``hub:{hub:<group>}:agent:<agent>`` - hub assigner - hash: presence ``status``, ``reason``,
  ``queues`` (space-separated), ``cap:<channel>``, ``alive_until`` (ms; refreshed while a socket is
  open), ``detached``, ``misses`` (offers ignored in a row), ``rr`` (sequence of the latest offer),
  ``skills`` and ``languages`` (space-separated: what it answers), ``offline_at`` (ms: a claim made
  before it, arriving late from Kafka, does not reassign what going offline returned) - 7 days after
  the latest presence
- ``hub:{hub:<group>}:agents:<queue>`` - hub assigner - set of agents online or away in the queue -
  none
- ``hub:{hub:<group>}:assigned:<agent>`` - hub assigner - hash: conversation id ->
  ``<channel>|<offer id>`` (offered) or ``<channel>|`` (assigned); what counts against the agent's
  capacity - none
- ``hub:{hub:<group>}:offer:<offer_id>`` - hub assigner - hash: conversation, agent, queue, channel,
  expires (ms), state (offered, accepted, declined, expired, withdrawn), seq (order made) - 1 day
- ``hub:{hub:<group>}:offers:<queue>`` - hub assigner - zset: outstanding offer id -> expiry (ms) -
  none
- ``hub:{hub:<group>}:unmet:<queue>`` - hub assigner - zset: waiting conversations whose
  requirements (at their ladder step) no agent online in the queue meets -> when they started
  waiting (ms); rewritten by every assignment pass - none
- ``hub:{hub:<group>}:relaxed:<queue>`` - hub assigner - hash: ``<conversation_id> <step>`` -> when
  the conversation took that relaxation ladder step (ms); a pass adds it, and removes it once the
  step is in the transcript and on the queue's stream - none
- ``hub:{hub:<group>}:rr`` - hub assigner - integer, orders offers for round robin - none
- ``hub:{hub:<group>}:declined:<conversation_id>`` - hub assigner - set of agents who declined or
  let an offer of the conversation expire (not offered it again meanwhile) - 10 offer timeouts
- ``hub:notify:<agent>`` - hub assigner publishes, every hub replica pattern-subscribes - pub/sub
  channel (not a key): the agent's offers or presence changed
- ``hub:figures:<queue>:<day>`` - hub fan-out - hash of one queue's UTC day (``YYYY-MM-DD``, the SLA
  event's or answer's day): ``met:<metric>:<conversation_id>`` -> ``<channel>|<seconds from the
  clock's start>``, ``breached:<metric>:<conversation_id>`` and
  ``warned:<metric>:<conversation_id>`` -> ``1``, ``csat:<conversation_id>`` and
  ``nps:<conversation_id>`` -> the score (one field per cause: a redelivery rewrites it) - 8 days
"""

from __future__ import annotations

from dataclasses import dataclass

DAY = 86_400

SEQUENCE = "{seq}"
"""Hash tag of the reference sequence and its claims (one counter: see the module text)."""


def _tag(kind: str, *parts: str) -> str:
    """The hash tag ``{kind:part:...}`` shared by the keys of one entity.

    A ``}`` inside a part ends the tag early; the keys of one entity still share it (the text
    before that ``}`` is the same in all of them)."""
    return "{" + ":".join((kind, *parts)) + "}"


def _sla_tag(partition: int) -> str:
    """The hash tag of one Kafka partition's SLA state (see the module text)."""
    return _tag("sla", str(partition))


def _glob_escaped(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "sb:"

    def ingest_accepted(self, event_id: str) -> str:
        return f"{self.prefix}ingest:accepted:{event_id}"

    def x_since_id(self, user_id: str) -> str:
        return f"{self.prefix}x:since_id:{user_id}"

    def email_thread(self, message_id: str) -> str:
        return f"{self.prefix}email:thread:{message_id}"

    def email_sent(self, message_id: str) -> str:
        return f"{self.prefix}email:sent:{message_id}"

    def email_participants(self, thread_key: str) -> str:
        return f"{self.prefix}email:participants:{thread_key}"

    def imap_checkpoint(self, mailbox: str) -> str:
        return f"{self.prefix}imap:checkpoint:{mailbox}"

    def sms_status(self, message_sid: str) -> str:
        return f"{self.prefix}sms:status:{message_sid}"

    def sms_optout(self, our_number: str, customer_number: str) -> str:
        return f"{self.prefix}sms:optout:{our_number}:{customer_number}"

    def whatsapp_inbound(self, our_number: str, customer_number: str) -> str:
        return f"{self.prefix}whatsapp:inbound:{our_number}:{customer_number}"

    def chat_mailbox(self, visitor_id: str) -> str:
        return f"{self.prefix}chat:mailbox:{_tag('v', visitor_id)}"

    def chat_reply(self, visitor_id: str, command_id: str) -> str:
        return f"{self.prefix}chat:reply:{_tag('v', visitor_id)}:{command_id}"

    def chat_notify(self, visitor_id: str) -> str:
        return f"{self.prefix}chat:notify:{visitor_id}"

    def chat_notify_pattern(self) -> str:
        """The glob matching every visitor's channel (the prefix's glob characters escaped)."""
        return f"{_glob_escaped(self.prefix)}chat:notify:*"

    def attempts(self, group: str, topic: str, partition: int, offset: int) -> str:
        return f"{self.prefix}attempts:{group}:{topic}:{partition}:{offset}"

    def router_seen(self, thread_key: str, inbound_event_id: str) -> str:
        return f"{self.prefix}router:seen:{_tag('t', thread_key)}:{inbound_event_id}"

    def conversation_by_thread(self, thread_key: str) -> str:
        return f"{self.prefix}conv:thread:{_tag('t', thread_key)}"

    def conversation(self, conversation_id: str) -> str:
        return f"{self.prefix}conv:{_tag('c', conversation_id)}"

    def conversation_sequence(self) -> str:
        return f"{self.prefix}conv:seq:{SEQUENCE}"

    def conversation_reference(self, conversation_id: str) -> str:
        return f"{self.conversation_sequence()}:{conversation_id}"

    def reference_owner(self, number: int) -> str:
        return f"{self.prefix}conv:number:{number}"

    def customer_identity(self, kind: str, value: str) -> str:
        return f"{self.prefix}customer:id:{kind}:{value}"

    def customer(self, customer_id: str) -> str:
        return f"{self.prefix}customer:{_tag('u', customer_id)}"

    def customer_history(self, customer_id: str) -> str:
        return f"{self.customer(customer_id)}:history"

    def customer_open(self, customer_id: str) -> str:
        return f"{self.customer(customer_id)}:open"

    def incident_window(self, key: str) -> str:
        return f"{self.prefix}incident:window:{_tag('i', key)}"

    def incident_active(self, key: str) -> str:
        return f"{self.prefix}incident:active:{_tag('i', key)}"

    def sla_due(self, partition: int) -> str:
        return f"{self.prefix}sla:due:{_sla_tag(partition)}"

    def sla_claimed(self, partition: int) -> str:
        return f"{self.prefix}sla:claimed:{_sla_tag(partition)}"

    def sla_clocks(self, partition: int, bucket: int) -> str:
        return f"{self.prefix}sla:clocks:{_sla_tag(partition)}:{bucket}"

    def sla_clock(self, partition: int, conversation_id: str, metric: str) -> str:
        return f"{self.prefix}sla:clock:{_sla_tag(partition)}:{conversation_id}:{metric}"

    def sla_open_counts(self, partition: int) -> str:
        return f"{self.prefix}sla:open:{_sla_tag(partition)}"

    def sla_partitions(self) -> str:
        return f"{self.prefix}sla:partitions"

    def sla_contact(self, conversation_id: str) -> str:
        return f"{self.prefix}sla:contact:{_tag('c', conversation_id)}"

    def survey_pending(self, thread_key: str) -> str:
        return f"{self.prefix}survey:pending:{thread_key}"

    def outbound_send(self, command_id: str) -> str:
        return f"{self.prefix}outbound:send:{command_id}"

    def outbound_acknowledged(
        self, conversation_id: str, kind: str, channel: str, address: str
    ) -> str:
        return f"{self.prefix}outbound:acked:{_tag('a', channel, address)}:{conversation_id}:{kind}"

    def outbound_acknowledgements(self, channel: str, address: str, hour: int) -> str:
        return f"{self.prefix}outbound:acks:{_tag('a', channel, address)}:{hour}"

    def webhook_done(self, delivery_id: str) -> str:
        return f"{self.prefix}webhook:done:{delivery_id}"

    def hub_stream(self, queue: str) -> str:
        return f"{self.prefix}hub:stream:{_tag('q', queue)}"

    def hub_seen(self, event_id: str, queue: str) -> str:
        return f"{self.prefix}hub:seen:{_tag('q', queue)}:{event_id}"

    def hub_trimmed(self, queue: str) -> str:
        return f"{self.prefix}hub:trimmed:{_tag('q', queue)}"

    def hub_open(self, group: str, queue: str) -> str:
        return f"{self._hub(group)}:open:{queue}"

    def hub_conversation(self, group: str, conversation_id: str) -> str:
        return f"{self._hub(group)}:conv:{conversation_id}"

    def hub_group_of(self, conversation_id: str) -> str:
        return f"{self.prefix}hub:group:{_tag('c', conversation_id)}"

    def hub_figures(self, queue: str, day: str) -> str:
        return f"{self.prefix}hub:figures:{queue}:{day}"

    def hub_transcript(self, conversation_id: str) -> str:
        return f"{self.prefix}hub:transcript:{_tag('c', conversation_id)}"

    def hub_transcript_entries(self, conversation_id: str) -> str:
        return f"{self.hub_transcript(conversation_id)}:entries"

    def hub_action(self, action_id: str) -> str:
        return f"{self.prefix}hub:action:{action_id}"

    def hub_incident(self, incident_id: str) -> str:
        return f"{self.prefix}hub:incident:{incident_id}"

    def hub_incident_linked(self, group: str, incident_id: str) -> str:
        return f"{self._hub(group)}:incident:{incident_id}:linked"

    def hub_incidents(self, group: str, queue: str) -> str:
        return f"{self._hub(group)}:incidents:{queue}"

    def hub_waiting(self, group: str, queue: str) -> str:
        return f"{self._hub(group)}:waiting:{queue}"

    def hub_agent(self, group: str, agent: str) -> str:
        return f"{self._hub(group)}:agent:{agent}"

    def hub_agents(self, group: str, queue: str) -> str:
        return f"{self._hub(group)}:agents:{queue}"

    def hub_assigned(self, group: str, agent: str) -> str:
        return f"{self._hub(group)}:assigned:{agent}"

    def hub_offer(self, group: str, offer_id: str) -> str:
        return f"{self._hub(group)}:offer:{offer_id}"

    def hub_offers(self, group: str, queue: str) -> str:
        return f"{self._hub(group)}:offers:{queue}"

    def hub_unmet(self, group: str, queue: str) -> str:
        return f"{self._hub(group)}:unmet:{queue}"

    def hub_relaxed(self, group: str, queue: str) -> str:
        return f"{self._hub(group)}:relaxed:{queue}"

    def hub_offer_sequence(self, group: str) -> str:
        return f"{self._hub(group)}:rr"

    def hub_declined(self, group: str, conversation_id: str) -> str:
        return f"{self._hub(group)}:declined:{conversation_id}"

    def _hub(self, group: str) -> str:
        """The start of an assignment group's keys, its hash tag included."""
        return f"{self.prefix}hub:{_tag('hub', group)}"

    def hub_notify(self, agent: str) -> str:
        return f"{self.prefix}hub:notify:{agent}"

    def hub_notify_pattern(self) -> str:
        """The glob matching every agent's channel (the prefix's glob characters escaped)."""
        return f"{_glob_escaped(self.prefix)}hub:notify:*"
