-- Appends an outbound reply to a visitor's chat mailbox, once per command, and wakes the
-- visitor's sockets on the pub/sub channel.
-- KEYS[1] the visitor's mailbox stream
-- KEYS[2] the command's reply marker (the entry id it was appended as)
-- ARGV[1] max length of the mailbox, ARGV[2] TTL (s) of both keys, ARGV[3] command id,
--   ARGV[4] text, ARGV[5] time, ARGV[6] in reply to, ARGV[7] pub/sub channel
-- Returns the entry id (the existing one when the command was appended before).
local existing = redis.call('GET', KEYS[2])
if existing then return existing end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], '*',
  'command_id', ARGV[3], 'text', ARGV[4], 'at', ARGV[5], 'in_reply_to', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], id, 'EX', ARGV[2])
redis.call('PUBLISH', ARGV[7], id)
return id
