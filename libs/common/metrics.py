"""Every Prometheus metric Switchboard exports, each with a one-line meaning.

Names follow the Prometheus conventions (``switchboard_`` namespace, base units, ``_total``
on counters). Services only import from here, so ``/metrics`` is documented in one place.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SLA_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0, 8 * 3600.0, 24 * 3600.0, 72 * 3600.0)

records_processed = Counter(
    "switchboard_records_processed_total",
    "Kafka records a consumer finished, by topic and outcome (ok, deadlettered).",
    ["group", "topic", "outcome"],
)
record_processing_seconds = Histogram(
    "switchboard_record_processing_seconds",
    "Time from taking a record to its outputs being acknowledged by Kafka.",
    ["group", "topic"],
    buckets=LATENCY_BUCKETS,
)
record_retries = Counter(
    "switchboard_record_retries_total",
    "Failed attempts at a record that will be tried again.",
    ["group", "topic"],
)
consumer_lag = Gauge(
    "switchboard_consumer_lag_records",
    "Records between the consumer's position and the partition's end.",
    ["group", "topic", "partition"],
)
consumer_stalled_partitions = Gauge(
    "switchboard_consumer_stalled_partitions",
    "Partitions with records in flight whose position has not advanced for "
    "SWITCHBOARD_STALL_SECONDS.",
    ["group"],
)
events_published = Counter(
    "switchboard_events_published_total",
    "Events acknowledged by Kafka, by topic and CloudEvents type.",
    ["topic", "type"],
)
messages_ingested = Counter(
    "switchboard_messages_ingested_total",
    "Customer messages accepted by ingest, by channel.",
    ["channel"],
)
messages_duplicate = Counter(
    "switchboard_messages_duplicate_total",
    "Provider redeliveries recognised and not published again, by channel.",
    ["channel"],
)
webhook_rejections = Counter(
    "switchboard_webhook_rejections_total",
    "Inbound requests refused, by channel and reason.",
    ["channel", "reason"],
)
x_polls = Counter(
    "switchboard_x_polls_total",
    "Polls of the X mentions timeline, by outcome (ok, rate_limited, error).",
    ["outcome"],
)
sms_keywords = Counter(
    "switchboard_sms_keywords_total",
    "Inbound SMS that were a consent keyword, by kind (opt-out, opt-in, help).",
    ["kind"],
)
sms_status_callbacks = Counter(
    "switchboard_sms_status_callbacks_total",
    "Twilio status callbacks, by status and outcome (recorded, stale).",
    ["status", "outcome"],
)
chat_connections = Gauge(
    "switchboard_chat_connections",
    "Chat websockets open on this ingest process.",
)
chat_frames = Counter(
    "switchboard_chat_frames_total",
    "Chat frames from visitors, by outcome (accepted, duplicate, invalid, rate_limited, retry).",
    ["outcome"],
)
chat_replies_delivered = Counter(
    "switchboard_chat_replies_delivered_total",
    "Agent replies written to a visitor's chat websocket (once per open socket).",
)
chat_closes = Counter(
    "switchboard_chat_closes_total",
    "Chat websockets closed by the server, by reason.",
    ["reason"],
)
conversations_routed = Counter(
    "switchboard_conversations_routed_total",
    "Messages routed, by queue and channel.",
    ["queue", "channel"],
)
routing_seconds = Histogram(
    "switchboard_routing_seconds",
    "Time to decide the queue of one message.",
    buckets=LATENCY_BUCKETS,
)
sla_events = Counter(
    "switchboard_sla_events_total",
    "SLA clock events emitted, by kind, metric and queue.",
    ["kind", "metric", "queue"],
)
sla_response_seconds = Histogram(
    "switchboard_sla_response_seconds",
    "Time a clock counted until it was met (business time where the policy counts that), "
    "by metric (first_response, next_response, resolution), queue, channel and policy.",
    ["metric", "queue", "channel", "policy"],
    buckets=SLA_BUCKETS,
)
sla_open_clocks = Gauge(
    "switchboard_sla_open_clocks",
    "Clocks running or paused, by queue (read from Redis periodically).",
    ["queue"],
)
sla_timer_lag_seconds = Histogram(
    "switchboard_sla_timer_lag_seconds",
    "Delay from a timer's due time to its event being acknowledged by Kafka.",
    buckets=LATENCY_BUCKETS,
)
outbound_followups = Counter(
    "switchboard_outbound_followups_total",
    "Status updates and CSAT surveys the SLA service asked outbound to send, by kind.",
    ["kind"],
)
survey_answers = Counter(
    "switchboard_survey_answers_total",
    "CSAT survey answers ingest recorded (repeats not counted), by channel and score.",
    ["channel", "score"],
)
survey_scores = Histogram(
    "switchboard_survey_scores",
    "Survey scores the router recorded, by queue and kind (csat 1-5, nps 0-10): the sum over "
    "the count is CSAT's average; NPS detractors are le=6, promoters the count less le=8.",
    ["queue", "kind"],
    buckets=tuple(float(score) for score in range(11)),
)
outbound_sends = Counter(
    "switchboard_outbound_sends_total",
    "Outbound commands finished, by channel and final status.",
    ["channel", "status"],
)
outbound_provider_seconds = Histogram(
    "switchboard_outbound_provider_seconds",
    "Duration of one provider call (SMTP, Twilio, X).",
    ["channel"],
    buckets=LATENCY_BUCKETS,
)
hub_connections = Gauge(
    "switchboard_hub_connections",
    "Agent websockets open on this hub process.",
)
hub_events_fanned_out = Counter(
    "switchboard_hub_events_fanned_out_total",
    "Events appended to a queue stream by the hub fan-out, by kind.",
    ["kind"],
)
hub_events_sent = Counter(
    "switchboard_hub_events_sent_total",
    "Queue events queued for an agent websocket (replayed or live).",
)
hub_slow_consumer_disconnects = Counter(
    "switchboard_hub_slow_consumer_disconnects_total",
    "Agent websockets closed because their outgoing buffer was full.",
)
hub_closes = Counter(
    "switchboard_hub_closes_total",
    "Agent websockets closed by the hub, by reason.",
    ["reason"],
)
hub_actions = Counter(
    "switchboard_hub_actions_total",
    "Agent actions, by kind and outcome (published, duplicate, rejected, retry).",
    ["kind", "outcome"],
)
hub_offers = Counter(
    "switchboard_hub_offers_total",
    "Conversations offered to agents, by outcome (made, accepted, declined, expired, withdrawn).",
    ["outcome"],
)
hub_ladder_steps = Counter(
    "switchboard_hub_ladder_steps_total",
    "Waiting conversations moved to a step of their queue's relaxation ladder, by queue and step.",
    ["queue", "step"],
)
hub_agents_online = Gauge(
    "switchboard_hub_agents_online",
    "Agents online in a queue, as the latest assignment pass of this process saw them.",
    ["queue"],
)
hub_conversations_waiting = Gauge(
    "switchboard_hub_conversations_waiting",
    "Open conversations of a queue that no agent holds (every hub replica reads the same "
    "Redis state every few seconds: aggregate with max, not sum).",
    ["queue"],
)
hub_conversations_held = Gauge(
    "switchboard_hub_conversations_held",
    "Open conversations of a queue an agent holds: the agents' load (as read by every hub).",
    ["queue"],
)
hub_oldest_wait_seconds = Gauge(
    "switchboard_hub_oldest_wait_seconds",
    "How long the longest-waiting unheld conversation of a queue has waited since the "
    "customer's latest message (0 when none waits; as read by every hub).",
    ["queue"],
)
hub_conversations_at_risk = Gauge(
    "switchboard_hub_conversations_at_risk",
    "Open conversations of a queue with a clock that warned and is neither met nor breached "
    "(as read by every hub).",
    ["queue"],
)
