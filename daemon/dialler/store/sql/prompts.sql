-- Prompt variables against the contacts' variables (dialler.domain.prompt): the warnings of
-- `contacts import`, `contacts add` and the start checks.

-- name: campaign_prompt
-- The prompt of the campaign's bot; no row when the campaign has no bot (nothing to compare).
SELECT b.prompt FROM campaigns c JOIN bots b ON b.id = c.bot_id WHERE c.id = $1;

-- name: bot_prompt
-- By name: the start checks judge the settings about to apply, whose bot may be a new one
-- (editing a paused campaign).
SELECT prompt FROM bots WHERE name = $1;

-- name: contact_variable_names
-- Every variable name any contact of the campaign has. One pass over the campaign's contacts
-- (json_object_keys parses each row's object); run only when the prompt has variables.
SELECT DISTINCT json_object_keys(variables) AS name FROM contacts WHERE campaign_id = $1;
