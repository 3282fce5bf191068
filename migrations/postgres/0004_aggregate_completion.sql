-- Aggregate completion that loses nothing and repeats nothing: a complete group is first
-- claimed by the message that completes it (`completing`, the completed message's id; a
-- claimed group takes no new members), then its completed message is published
-- (confirmed), then the group is finished: removed, and its members remembered in
-- knut_agg_done, so that a member redelivered afterwards does not open a new group.
ALTER TABLE knut_agg_groups ADD COLUMN completing TEXT;
ALTER TABLE knut_agg_groups ADD COLUMN claimed_at_us BIGINT;
CREATE TABLE IF NOT EXISTS knut_agg_done (
    route      TEXT   NOT NULL,
    message_id TEXT   NOT NULL,
    done_at_us BIGINT NOT NULL,
    PRIMARY KEY (route, message_id)
);
CREATE INDEX IF NOT EXISTS knut_agg_done_at ON knut_agg_done (route, done_at_us);
