-- The Unleash server's own database, next to the application's (run once by the postgres image).
CREATE DATABASE unleash;
