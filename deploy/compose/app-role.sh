#!/bin/sh
# The app's role (run once by the postgres image): it logs in and owns nothing; `db upgrade`,
# run as the owner, grants it what the API and workers need.
set -eu
psql -v ON_ERROR_STOP=1 -v pw="$(cat /run/secrets/app_db_password)" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE myhibachi_app LOGIN PASSWORD :'pw';
SQL
