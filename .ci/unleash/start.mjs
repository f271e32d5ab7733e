// Starts the Unleash server the test suite talks to (tests/unleash_server.py runs it).
// Its settings come as JSON in UNLEASH_TEST_CONFIG: port, db {host, port, user, password,
// database}, adminToken, clientToken. It makes no outside connection: version check and
// telemetry are off (SEND_TELEMETRY=false and CHECK_VERSION=false are set by the caller,
// because `telemetry: false` in the options falls back to the environment's default).
import { start } from 'unleash-server';

const config = JSON.parse(process.env.UNLEASH_TEST_CONFIG);

await start({
  db: { ...config.db, ssl: false },
  server: { port: config.port, host: '127.0.0.1' },
  authentication: {
    type: 'open-source',
    createAdminUser: false,
    enableApiToken: true,
    initApiTokens: [
      { environment: '*', projects: ['*'], secret: config.adminToken, type: 'admin', tokenName: 'tests-admin' },
      { environment: 'development', projects: ['*'], secret: config.clientToken, type: 'backend', tokenName: 'tests-backend' },
    ],
  },
  versionCheck: { enable: false },
  // the client API answers from the database at once, so a flip is seen on the next poll
  clientFeatureCaching: { enabled: false },
  logLevel: 'warn',
});

