/**
 * Peers over HTTPS: instances serve TLS and reach each other at https URLs,
 * trusting exactly the CA of server.peer_ca_file. An instance without it
 * cannot verify its peers and answers 503 PEER_UNAVAILABLE for their files.
 * A cluster whose Redis has no password says so at start.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { eventually, serverErrors } from '../helpers/api.js';
import { KEYS, startCallFS, type CallFSProcess } from '../helpers/callfs.js';
import { records } from '../helpers/obs.js';
import { createDatabase, freePort, startRedis, type RedisHandle } from '../helpers/services.js';
import { selfSignedCert } from '../helpers/tls.js';

let dir: string;
let ca: Buffer;
let redis: RedisHandle;
const byId = new Map<string, CallFSProcess>();
const nodes: CallFSProcess[] = [];
const node = (id: string) => byId.get(id) as CallFSProcess;

/** One request over TLS, verified against the test CA. */
function request(
  node: CallFSProcess,
  method: string,
  path: string,
  body?: string,
): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${node.url}${path}`,
      { method, ca, headers: { Authorization: `Bearer ${KEYS.alice}` }, agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'callfs-peer-tls-'));
  // The certificate every node serves, and the CA peers trust.
  const { cert, key } = selfSignedCert(dir);
  ca = readFileSync(cert);
  redis = await startRedis();
  const dsn = await createDatabase(inject('pgDsn'));
  const start = async (id: string, trustPeers: boolean) => {
    const port = await freePort();
    const started = await startCallFS({
      port,
      store: { type: 'postgres', dsn },
      config: {
        server: {
          protocol: 'https',
          cert_file: cert,
          key_file: key,
          external_url: `https://127.0.0.1:${port}`,
          ...(trustPeers ? { peer_ca_file: cert } : {}),
        },
        dlm: { type: 'redis', redis_addr: new URL(redis.url).host },
        instance_discovery: { instance_id: id, redis_registration: true, heartbeat_interval: '1s' },
      },
    });
    nodes.push(started);
    byId.set(id, started);
  };
  await start('tls1', true);
  await Promise.all([start('tls2', true), start('tls3', false)]);
}, 120_000);

afterAll(async () => {
  // tls3's 503 answers are this file's point; any other 5xx or error line is not.
  const errors = nodes.flatMap((n) =>
    serverErrors(n.logs).filter((l) => n !== node('tls3') || !l.includes('"HTTP request"')),
  );
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
  expect(errors).toEqual([]);
});

it('a file on tls1 is served by tls2 over https (peer CA), not by tls3 (no peer CA: 503)', async () => {
  const [n1, n2, n3] = [node('tls1'), node('tls2'), node('tls3')];
  expect((await request(n1, 'POST', '/v1/files/tls/a.txt', 'over tls')).status).toBe(201);
  await eventually(async () => {
    const got = await request(n2, 'GET', '/v1/files/tls/a.txt');
    expect([got.status, got.text, got.headers['x-callfs-instance-id']]).toEqual([
      200,
      'over tls',
      'tls1',
    ]);
  }, 10_000);
  const refused = await request(n3, 'GET', '/v1/files/tls/a.txt');
  expect(refused.status).toBe(503);
  expect(JSON.parse(refused.text)).toMatchObject({
    code: 'PEER_UNAVAILABLE',
    instance_id: 'tls1',
  });
});

it('warns once per instance at start that Redis has no password', () => {
  for (const node of nodes) {
    const warnings = records(node.logs).filter(
      (r) => r?.level === 'warn' && r.key === 'dlm.redis_password',
    );
    expect(warnings).toHaveLength(1);
    expect(String(warnings[0]?.msg)).toMatch(/Redis that has no password/);
  }
});
