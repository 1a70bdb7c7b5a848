-- The runtime role of one service on RDS, run by the load task as the owner (the RDS master
-- user): psql -v runtime=<service> -v owner=<service>_owner -v database=<name>, password in $RUNTIME_PASSWORD.
-- Idempotent: rerunning it sets the current password from Secrets Manager (rotation).
\getenv password RUNTIME_PASSWORD
SELECT format('CREATE ROLE %I LOGIN', :'runtime')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'runtime') \gexec
ALTER ROLE :"runtime" WITH LOGIN PASSWORD :'password';
GRANT CONNECT ON DATABASE :"database" TO :"runtime";
GRANT USAGE ON SCHEMA public TO :"runtime";
-- Tables the loader already made, then those it (or a schema change) makes later.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"runtime";
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO :"runtime";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"runtime";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" GRANT USAGE ON SEQUENCES TO :"runtime";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" GRANT USAGE ON SCHEMAS TO :"runtime";
