-- Which of a topic's limits were asked as -1, "the plan's maximum": the value column beside
-- keeps the maximum it was resolved to (what the brokers have), and the API reads -1 back, as
-- Upstash's did, so a declarative tool (terraform) that wrote -1 sees no difference. 1 = yes.
ALTER TABLE topics ADD COLUMN retention_time_is_max BIGINT NOT NULL DEFAULT 0;
ALTER TABLE topics ADD COLUMN retention_size_is_max BIGINT NOT NULL DEFAULT 0;
ALTER TABLE topics ADD COLUMN max_message_size_is_max BIGINT NOT NULL DEFAULT 0;
