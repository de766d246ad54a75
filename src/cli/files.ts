/**
 * The file commands of `callfs` (ls, stat, cp, mv, rm, mkdir, link, cat), on
 * the typed client. They load no server module. Remote paths in `cp` start
 * with ':' (`:/docs/a.txt`); the other commands take remote paths only.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, join, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { CallFSApiError, CallFSClient, remotePath, type RemoteEntry } from '../client/index.js';
import { Progress } from '../client/progress.js';
import { resolveConnection, type ConnectionFlags } from './connection.js';
import { errorJson, errorLine, exitCodeOf, UsageError } from './exit.js';

interface Common extends ConnectionFlags {
  json?: boolean;
}

function withConnection(cmd: Command): Command {
  return cmd
    .option('--url <url>', 'server URL (env CALLFS_URL; default http://127.0.0.1:8443)')
    .option('--key <key>', 'API key (env CALLFS_API_KEY)')
    .option('--profile <name>', 'profile from the profile file (env CALLFS_PROFILE)')
    .option('--json', 'machine-readable output on stdout');
}

const out = (line: string) => process.stdout.write(`${line}\n`);
const printJson = (value: unknown) => out(JSON.stringify(value, null, 2));

/** Runs a command with a client; maps failures to a message and an exit code. */
async function run(flags: Common, body: (client: CallFSClient) => Promise<void>): Promise<void> {
  let client: CallFSClient | null = null;
  try {
    client = new CallFSClient(resolveConnection(flags));
    await body(client);
  } catch (err) {
    if (flags.json) process.stderr.write(`${JSON.stringify(errorJson(err))}\n`);
    else process.stderr.write(`callfs: ${errorLine(err)}\n`);
    process.exitCode = exitCodeOf(err);
  } finally {
    await client?.close();
  }
}

/** `:` marks a remote path in cp; the other commands accept it too. */
const isRemote = (arg: string) => arg.startsWith(':');
const stripRemote = (arg: string) => remotePath(isRemote(arg) ? arg.slice(1) || '/' : arg);

/** 90, 90s, 15m, 1h, 1d → seconds. */
export function parseExpiry(text: string): number {
  const m = /^(\d+)\s*(s|m|h|d)?$/i.exec(text.trim());
  if (!m)
    throw new UsageError(`--expires: expected a duration like 90s, 15m, 1h or 1d, got "${text}"`);
  const mult = { s: 1, m: 60, h: 3600, d: 86400 }[
    (m[2] ?? 's').toLowerCase() as 's' | 'm' | 'h' | 'd'
  ];
  return Number(m[1]) * mult;
}

function humanEntry(e: RemoteEntry, full: boolean): string {
  const name = full ? e.path : e.name;
  const size = e.type === 'directory' ? '-' : String(e.size);
  return `${e.type === 'directory' ? 'd' : '-'} ${e.mode} ${e.owner.padEnd(12)} ${size.padStart(12)} ${e.mtime}  ${name}${e.type === 'directory' ? '/' : ''}`;
}

async function statOrNull(client: CallFSClient, path: string): Promise<RemoteEntry | null> {
  try {
    return await client.stat(path);
  } catch (err) {
    if (err instanceof CallFSApiError && err.status === 404) return null;
    throw err;
  }
}

const remoteJoin = (dir: string, name: string) => (dir === '/' ? `/${name}` : `${dir}/${name}`);
const remoteBase = (p: string) => p.slice(p.lastIndexOf('/') + 1);

/** Where a copy lands: into the destination when it is (or is written as) a directory. */
async function remoteTarget(client: CallFSClient, dstArg: string, name: string): Promise<string> {
  const dst = stripRemote(dstArg);
  if (dstArg.endsWith('/') || dst === '/') return remoteJoin(dst, name);
  const e = await statOrNull(client, dst);
  return e?.type === 'directory' ? remoteJoin(dst, name) : dst;
}

function localTarget(dstArg: string, name: string): string {
  const isDir =
    dstArg.endsWith('/') ||
    dstArg.endsWith(sep) ||
    (existsSync(dstArg) && statSync(dstArg).isDirectory());
  return isDir ? join(dstArg, name) : dstArg;
}

interface CpFlags extends Common {
  recursive?: boolean;
}

/** Runs a transfer under a progress bar (shown on a TTY only); a failure clears the bar first. */
async function withBar<T>(
  total: number,
  label: string,
  fn: (bar: Progress) => Promise<T>,
  note?: string,
): Promise<T> {
  const bar = new Progress(process.stderr, total);
  if (label !== '') bar.setLabel(label);
  try {
    const result = await fn(bar);
    bar.finish();
    return result;
  } catch (err) {
    bar.abort();
    throw note === undefined ? err : withLocalNote(err, note);
  }
}

type Report = Record<string, unknown>;

async function copyUp(
  client: CallFSClient,
  src: string,
  dst: string,
  flags: CpFlags,
): Promise<Report> {
  const info = statSync(src);
  if (info.isDirectory()) {
    if (!flags.recursive) throw new UsageError(`${src} is a directory (use -r)`);
    const root = await remoteTarget(client, dst, basename(resolve(src)));
    const plan = await client.planUpload(src, root);
    await withBar(plan.bytes, '', (bar) =>
      client.uploadDirectory(plan, {
        onFile: (i) => bar.setLabel(i.remote),
        onProgress: (n) => bar.add(n),
      }),
    );
    return { source: src, destination: `:${root}`, files: plan.files, bytes: plan.bytes };
  }
  const to = await remoteTarget(client, dst, basename(src));
  const entry = await withBar(info.size, basename(src), (bar) =>
    client.uploadFile(src, to, { onProgress: (n) => bar.add(n) }),
  );
  return { source: src, destination: `:${to}`, files: 1, bytes: entry.size, etag: entry.etag };
}

async function copyDown(
  client: CallFSClient,
  src: string,
  dst: string,
  flags: CpFlags,
): Promise<Report> {
  const from = stripRemote(src);
  const entry = await client.stat(from);
  if (entry.type === 'directory') {
    if (!flags.recursive) throw new UsageError(`${src} is a directory (use -r)`);
    const name = from === '/' ? 'callfs' : remoteBase(from);
    const root = existsSync(dst) && statSync(dst).isDirectory() ? join(dst, name) : dst;
    const plan = await client.planDownload(from, root);
    await withBar(
      plan.bytes,
      '',
      (bar) =>
        client.downloadDirectory(plan, {
          onFile: (i) => bar.setLabel(i.remote),
          onProgress: (n) => bar.add(n),
        }),
      'the file being copied was not written',
    );
    return { source: src, destination: root, files: plan.files, bytes: plan.bytes };
  }
  const to = localTarget(dst, entry.name);
  const r = await withBar(
    entry.size,
    entry.name,
    (bar) => client.downloadFile(from, to, { onProgress: (n) => bar.add(n) }),
    `nothing was written to ${to}`,
  );
  return { source: src, destination: to, files: 1, bytes: r.bytes, etag: r.etag };
}

async function copyRemote(client: CallFSClient, src: string, dst: string): Promise<Report> {
  const from = stripRemote(src);
  const to = await remoteTarget(client, dst, remoteBase(from));
  const dl = await client.download(from);
  const entry = await withBar(dl.size, remoteBase(from), (bar) =>
    client.upload(to, dl.body, { size: dl.size, onProgress: (n) => bar.add(n) }),
  );
  return { source: src, destination: `:${to}`, files: 1, bytes: entry.size, etag: entry.etag };
}

async function copy(client: CallFSClient, src: string, dst: string, flags: CpFlags): Promise<void> {
  let report: Report;
  if (isRemote(src) && isRemote(dst)) report = await copyRemote(client, src, dst);
  else if (!isRemote(src) && isRemote(dst)) report = await copyUp(client, src, dst, flags);
  else if (isRemote(src)) report = await copyDown(client, src, dst, flags);
  else {
    throw new UsageError(
      'cp copies between the local disk and the server: mark the remote side with ":" (e.g. :/docs/a.txt)',
    );
  }
  if (flags.json) printJson(report);
}

/** Adds what happened locally to a failed download's message (same class, same exit code). */
function withLocalNote(err: unknown, note: string): unknown {
  if (err instanceof Error) err.message = `${err.message}; ${note}`;
  return err;
}

export function registerFileCommands(program: Command): void {
  withConnection(
    program
      .command('ls')
      .description('list a directory (or show a file)')
      .argument('[path]', 'remote path', '/')
      .option('-R, --recursive', 'list everything below, with full paths'),
  ).action((path: string, flags: Common & { recursive?: boolean }) =>
    run(flags, async (client) => {
      const p = stripRemote(path);
      const e = await client.stat(p);
      const items: RemoteEntry[] = [];
      if (e.type === 'file') items.push(e);
      else
        for await (const item of client.listAll(p, { recursive: flags.recursive, maxDepth: 1000 }))
          items.push(item);
      if (flags.json) printJson(items);
      else for (const item of items) out(humanEntry(item, flags.recursive === true));
    }),
  );

  withConnection(
    program
      .command('stat')
      .description('show the metadata of a file or directory')
      .argument('<path>', 'remote path'),
  ).action((path: string, flags: Common) =>
    run(flags, async (client) => {
      const e = await client.stat(stripRemote(path));
      if (flags.json) printJson(e);
      else for (const [k, v] of Object.entries(e)) out(`${k}: ${v === null ? '-' : String(v)}`);
    }),
  );

  withConnection(
    program
      .command('cp')
      .description('copy between the local disk and the server (remote paths start with ":")')
      .argument('<src>', 'local path or :/remote/path')
      .argument('<dst>', 'local path or :/remote/path')
      .option('-r, --recursive', 'copy directories with everything below'),
  ).action((src: string, dst: string, flags: CpFlags) =>
    run(flags, (client) => copy(client, src, dst, flags)),
  );

  withConnection(
    program
      .command('mv')
      .description('move or rename a file or directory on the server')
      .argument('<src>', 'remote path')
      .argument('<dst>', 'remote path (into it when it is a directory)')
      .option('-f, --force', 'replace an existing destination file')
      .option('-p, --parents', 'create missing parents of the destination')
      .option('--if-match <etag>', 'only if the source still has this ETag'),
  ).action(
    (
      src: string,
      dst: string,
      flags: Common & { force?: boolean; parents?: boolean; ifMatch?: string },
    ) =>
      run(flags, async (client) => {
        const from = stripRemote(src);
        const to = await remoteTarget(client, dst, remoteBase(from));
        const e = await client.move(from, to, {
          overwrite: flags.force,
          createParents: flags.parents,
          ifMatch: flags.ifMatch,
        });
        if (flags.json) printJson(e);
      }),
  );

  withConnection(
    program
      .command('rm')
      .description('delete files or (with -r) directories')
      .argument('<paths...>', 'remote paths')
      .option('-r, --recursive', 'delete directories with everything below')
      .option('--if-match <etag>', 'only if the file still has this ETag'),
  ).action((paths: string[], flags: Common & { recursive?: boolean; ifMatch?: string }) =>
    run(flags, async (client) => {
      const deleted: string[] = [];
      for (const path of paths) {
        deleted.push(
          ...(await client.delete(stripRemote(path), {
            recursive: flags.recursive,
            ifMatch: flags.ifMatch,
          })),
        );
      }
      if (flags.json) printJson({ deleted });
    }),
  );

  withConnection(
    program
      .command('mkdir')
      .description('create directories (and missing parents)')
      .argument('<paths...>', 'remote paths'),
  ).action((paths: string[], flags: Common) =>
    run(flags, async (client) => {
      const made: RemoteEntry[] = [];
      for (const path of paths) made.push(await client.mkdir(stripRemote(path)));
      if (flags.json) printJson(made);
    }),
  );

  withConnection(
    program
      .command('link')
      .description('a single-use download link for a file')
      .argument('<path>', 'remote path')
      .option('--expires <duration>', 'lifetime: 90s, 15m, 1h, 1d (at most 1d)', '1h'),
  ).action((path: string, flags: Common & { expires: string }) =>
    run(flags, async (client) => {
      const seconds = parseExpiry(flags.expires);
      const link = await client.generateLink(stripRemote(path), seconds);
      if (flags.json) printJson(link);
      else out(`${link.url}\nexpires ${link.expires_at} (single use)`);
    }),
  );

  withConnection(
    program
      .command('cat')
      .description("write a file's bytes to stdout (verified against its ETag)")
      .argument('<path>', 'remote path'),
  ).action((path: string, flags: Common) =>
    run(flags, async (client) => {
      const { body } = await client.download(stripRemote(path));
      try {
        await pipeline(body, process.stdout, { end: false });
      } catch (err) {
        // The reader went away (`| head`): not a failure of ours.
        if ((err as { code?: string }).code !== 'EPIPE') throw err;
        body.destroy();
      }
    }),
  );
}
