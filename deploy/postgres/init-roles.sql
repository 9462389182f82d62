-- The rehearsal's two database roles (docker-compose.yml runs this once, as the superuser, when
-- the postgres volume is new). A real deployment runs the same statements with its own passwords:
-- see deploy/README.md, "Database roles".
--
-- stagegate_owner owns the database and so every table the migrations create; only
-- `stagegate db upgrade` connects as it. stagegate_app is what the API and workers connect as:
-- not a superuser, owning nothing, granted by `stagegate db upgrade --runtime-role stagegate_app`
-- exactly what the service needs (INSERT and SELECT on the audit trail).
CREATE ROLE stagegate_owner LOGIN PASSWORD 'stagegate-owner';  -- rehearsal value
CREATE ROLE stagegate_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD 'stagegate-app';  -- rehearsal value
ALTER DATABASE stagegate OWNER TO stagegate_owner;
REVOKE ALL ON DATABASE stagegate FROM PUBLIC;
GRANT CONNECT ON DATABASE stagegate TO stagegate_app;
-- The default from PostgreSQL 15 on; spelled out so an older server cannot let the runtime role
-- create (and so own) tables of its own.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
