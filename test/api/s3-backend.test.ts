/**
 * The HTTP API suites once more with `backend.default_backend: s3` (over
 * SQLite, on a fresh bucket of the shared test S3 server): the same requests
 * must give the same answers whatever backend holds the bytes. The flag is
 * set before the suites load, so test/helpers/api.ts configures their servers.
 */
process.env.CALLFS_TEST_BACKEND = 's3';

await import('./files.test.js');
await import('./directories.test.js');
await import('./conditional.test.js');
await import('./links.test.js');
await import('./bodies.test.js');
await import('./torn-reads.test.js');
