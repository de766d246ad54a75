/**
 * S3Backend specifics, against the shared real S3 server (radosgw or MinIO):
 * what the contract suite cannot say for every backend.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { S3Backend, type S3BackendOptions } from '../../src/backends/s3.js';
import {
  createBucket,
  emptyBucket,
  listKeys,
  listUploads,
  s3BackendOptions,
  s3Client,
} from '../helpers/s3.js';
import { bodyOf, readAll } from './backend.contract.js';

const MiB = 1024 * 1024;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('S3Backend specifics', () => {
  const info = inject('s3');
  let client: S3Client;
  let bucket: string;
  const opened: S3Backend[] = [];

  const backend = (o: Partial<S3BackendOptions> = {}): S3Backend => {
    const b = new S3Backend({
      ...s3BackendOptions(info, bucket),
      prefix: `t-${randomUUID()}/`,
      ...o,
    });
    opened.push(b);
    return b;
  };

  beforeAll(async () => {
    client = s3Client(info);
    bucket = await createBucket(info, client);
  });
  afterAll(async () => {
    for (const b of opened) await b.close();
    await emptyBucket(client, bucket);
    client.destroy();
  });

  it('wrong credentials: check() and every operation fail naming the credential keys', async () => {
    const b = backend({ secretAccessKey: 'not-the-secret-0123456789' });
    const refused = {
      code: 'SERVICE_UNAVAILABLE',
      message: expect.stringContaining('backend.s3_secret_key') as unknown,
    };
    await expect(b.check()).rejects.toMatchObject(refused);
    await expect(b.create('/x.txt', bodyOf('x'))).rejects.toMatchObject(refused);
    await expect(b.list('/')).rejects.toMatchObject(refused);
  });

  it('missing bucket: check() and reads fail naming backend.s3_bucket_name', async () => {
    const b = backend({ bucket: `absent-${Date.now()}` });
    const missing = {
      code: 'SERVICE_UNAVAILABLE',
      message: expect.stringContaining('backend.s3_bucket_name') as unknown,
    };
    await expect(b.check()).rejects.toMatchObject(missing);
    await expect(b.list('/')).rejects.toMatchObject(missing);
    await expect(b.create('/x.txt', bodyOf('x'))).rejects.toMatchObject(missing);
  });

  it('an endpoint that is down: SERVICE_UNAVAILABLE quickly, naming backend.s3_endpoint', async () => {
    const b = backend({ endpoint: 'http://127.0.0.1:9', maxAttempts: 1 });
    const started = Date.now();
    await expect(b.check()).rejects.toMatchObject({
      code: 'SERVICE_UNAVAILABLE',
      message: expect.stringContaining('backend.s3_endpoint') as unknown,
    });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('maps namespace paths to object keys: no leading slash, unicode, spaces and + kept', async () => {
    const prefix = `keys-${randomUUID()}/`;
    const b = backend({ prefix });
    const names = ['/a b/c+d.txt', '/ünï/文件 名+.txt', '/plus+only', '/sp ace'];
    for (const n of names) await (await b.create(n, bodyOf(n))).publish();
    expect((await listKeys(client, bucket, prefix)).sort()).toEqual(
      names.map((n) => prefix + n.slice(1)).sort(),
    );
    for (const n of names) expect((await readAll(await b.open(n))).toString()).toBe(n);
    expect(await b.list('/ünï')).toEqual(['文件 名+.txt']);
    await b.move('/a b/c+d.txt', '/x+y z/ü+.txt');
    expect((await readAll(await b.open('/x+y z/ü+.txt'))).toString()).toBe('/a b/c+d.txt');
    expect(await b.stat('/a b/c+d.txt')).toBeNull();
  });

  it('streams a body in bounded parts: 21 MiB in 5 MiB parts round-trips', async () => {
    const b = backend({ partSize: 5 * MiB });
    const data = randomBytes(21 * MiB);
    const staged = await b.create('/parts.bin', bodyOf(data));
    expect(staged.size).toBe(data.length);
    await staged.publish();
    expect(sha256(await readAll(await b.open('/parts.bin')))).toBe(sha256(data));
    const range = await readAll(
      await b.open('/parts.bin', { start: 5 * MiB - 2, end: 5 * MiB + 1 }),
    );
    expect(range).toEqual(data.subarray(5 * MiB - 2, 5 * MiB + 2));
  });

  it('moves above the copy threshold with a multipart UploadPartCopy, versions kept', async () => {
    const b = backend({ partSize: 5 * MiB, copyThreshold: 5 * MiB, copyPartSize: 5 * MiB });
    const data = randomBytes(12 * MiB);
    const big = await b.create('/big/src.bin', bodyOf(data));
    await big.publish();
    const small = await b.create('/big/small.txt', bodyOf('small'));
    await small.publish();
    await b.move('/big', '/moved');
    const expectBig = { version: big.version, size: big.size };
    expect(sha256(await readAll(await b.open('/moved/src.bin', undefined, expectBig)))).toBe(
      sha256(data),
    );
    const expectSmall = { version: small.version, size: small.size };
    const back = await readAll(await b.open('/moved/small.txt', undefined, expectSmall));
    expect(back.toString()).toBe('small');
    expect(await b.stat('/big')).toBeNull();
    // A single file above the threshold too.
    await b.move('/moved/src.bin', '/again.bin');
    const range = await readAll(await b.open('/again.bin', { start: 0, end: 9 }, expectBig));
    expect(range).toEqual(data.subarray(0, 10));
  });

  it('lists a directory of 5,000 objects, paged (1,000 per ListObjectsV2 page)', async () => {
    const prefix = `many-${randomUUID()}/`;
    const raw = S3Backend.createClient(s3BackendOptions(info, bucket));
    let listCalls = 0;
    raw.middlewareStack.add(
      (next, context) => (args) => {
        if (context.commandName === 'ListObjectsV2Command') listCalls++;
        return next(args);
      },
      { step: 'initialize', name: 'countLists' },
    );
    const b = backend({ prefix, client: raw });
    const names = Array.from({ length: 5000 }, (_, i) => `f${String(i).padStart(5, '0')}.txt`);
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < names.length) {
          const name = names[next++] as string;
          await client.send(
            new PutObjectCommand({
              Bucket: bucket,
              Key: `${prefix}dir/${name}`,
              Body: Buffer.alloc(0),
              ContentLength: 0,
            }),
          );
        }
      }),
    );
    await b.createDirectory('/dir/sub');
    listCalls = 0;
    const listed = await b.list('/dir');
    expect(listed.length).toBe(5001);
    expect(listed).toEqual([...names, 'sub'].sort());
    expect(listCalls).toBeGreaterThanOrEqual(5);
    // A page of S3's own to confirm the server pages at 1,000.
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}dir/`, Delimiter: '/' }),
    );
    expect(page.IsTruncated).toBe(true);
    await expect(b.deleteDirectory('/dir')).rejects.toMatchObject({ code: 'DIRECTORY_NOT_EMPTY' });
  }, 120_000);

  it('passes SSE and the canned ACL on every write', async () => {
    const raw = S3Backend.createClient(s3BackendOptions(info, bucket));
    const seen: Array<{ command: string; input: Record<string, unknown> }> = [];
    raw.middlewareStack.add(
      (_next, context) => (args) => {
        seen.push({
          command: String(context.commandName),
          input: args.input as Record<string, unknown>,
        });
        // Stop before the wire: not every S3 clone has a KMS.
        return Promise.reject(new Error('captured'));
      },
      { step: 'initialize', name: 'capture' },
    );
    const b = backend({
      client: raw,
      serverSideEncryption: 'aws:kms',
      kmsKeyId: 'arn:aws:kms:us-east-1:111122223333:key/test',
      acl: 'bucket-owner-full-control',
    });
    await expect(b.create('/enc.txt', bodyOf('x'))).rejects.toThrow('captured');
    await expect(b.createDirectory('/encdir')).rejects.toThrow();
    await expect(b.move('/a', '/b')).rejects.toThrow('captured'); // HeadObject first
    const create = seen.find((s) => s.command === 'CreateMultipartUploadCommand');
    expect(create?.input).toMatchObject({
      ServerSideEncryption: 'aws:kms',
      SSEKMSKeyId: 'arn:aws:kms:us-east-1:111122223333:key/test',
      ACL: 'bucket-owner-full-control',
    });
  });

  it('sweepStaged aborts orphan uploads but leaves young ones alone when asked to', async () => {
    const prefix = `sweep-${randomUUID()}/`;
    const b = backend({ prefix });
    await b.create('/orphan.txt', bodyOf('x')); // never published: as after a crash
    const patient = backend({ prefix, sweepMinAgeMs: 3_600_000 });
    expect(await patient.sweepStaged(new Set())).toBe(0);
    expect((await listUploads(client, bucket, prefix)).length).toBe(1);
    const restarted = backend({ prefix });
    expect(await restarted.sweepStaged(new Set())).toBe(1);
    expect(await listUploads(client, bucket, prefix)).toEqual([]);
  });
});
