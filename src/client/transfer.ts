/**
 * File and directory transfers between the local disk and a server. A
 * download goes to a temp file beside the target, is fsynced and renamed
 * into place only once it is complete and verified: a failed transfer leaves
 * no partial file.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { CallFSUnsafePathError } from './errors.js';
import type { CallFSClient, DownloadOptions, RemoteEntry, UploadOptions } from './index.js';
import type { OnProgress } from './streams.js';

export interface TransferItem {
  type: 'file' | 'directory';
  /** Local path. */
  local: string;
  /** Namespace path. */
  remote: string;
  size: number;
  etag?: string | null;
}

export interface TransferPlan {
  items: TransferItem[];
  /** Total bytes of the files. */
  bytes: number;
  files: number;
}

export interface TreeOptions {
  onProgress?: OnProgress;
  /** Called as each file starts. */
  onFile?: (item: TransferItem) => void;
}

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

export async function uploadFile(
  client: CallFSClient,
  localPath: string,
  remote: string,
  opts: Omit<UploadOptions, 'size' | 'sha256'>,
): Promise<RemoteEntry> {
  const info = await stat(localPath);
  if (!info.isFile()) throw new Error(`not a regular file: ${localPath}`);
  const sha256 = await sha256OfFile(localPath);
  return client.upload(remote, createReadStream(localPath), { ...opts, size: info.size, sha256 });
}

/** Temp name beside the target, hidden, unique. */
export const tempPathFor = (target: string): string =>
  join(dirname(target), `.${basename(target)}.callfs-${randomBytes(6).toString('hex')}.part`);

export async function downloadFile(
  client: CallFSClient,
  remote: string,
  localPath: string,
  opts: Pick<DownloadOptions, 'onProgress' | 'signal'>,
): Promise<{ bytes: number; etag: string | null }> {
  const { body, etag, size } = await client.download(remote, opts);
  const tmp = tempPathFor(localPath);
  try {
    await pipeline(body, createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
    const fh = await open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, localPath);
  } catch (err) {
    body.destroy();
    await rm(tmp, { force: true });
    throw err;
  }
  return { bytes: size, etag };
}

/** remote directory + relative local path (OS separators) → namespace path. */
const joinRemote = (base: string, rel: string): string => {
  const tail = rel.split(sep).join('/');
  if (tail === '') return base;
  return base === '/' ? `/${tail}` : `${base}/${tail}`;
};

export async function planUpload(localDir: string, remoteDir: string): Promise<TransferPlan> {
  const items: TransferItem[] = [
    { type: 'directory', local: localDir, remote: remoteDir, size: 0 },
  ];
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const local = join(dir, e.name);
      const remote = joinRemote(remoteDir, relative(localDir, local));
      if (e.isDirectory()) {
        items.push({ type: 'directory', local, remote, size: 0 });
        await walk(local);
      } else if (e.isFile()) {
        items.push({ type: 'file', local, remote, size: (await stat(local)).size });
      }
      // symlinks, sockets and devices are not copied
    }
  };
  await walk(localDir);
  return summarise(items);
}

// C0/C1 controls and DEL (NUL included).
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Why a listed segment may not become a local file name; null when it may. */
function unsafeSegment(segment: string): string | null {
  if (segment === '') return 'an empty segment';
  if (segment === '.' || segment === '..') return `a "${segment}" segment`;
  if (segment.includes('\\')) return 'a backslash';
  if (CONTROL.test(segment)) return 'a control character';
  // Refused on every OS, so one listing is safe or refused the same everywhere.
  if (/^[A-Za-z]:/.test(segment)) return 'a drive letter';
  return null;
}

/**
 * The local path of a listed entry. The listing comes from the server (or
 * anyone on a plain-HTTP path), so nothing in it is trusted: the entry must
 * lie below `remoteDir`, every segment below it must be a plain name, and the
 * joined local path must stay inside `localDir`.
 */
function localPathOf(entry: RemoteEntry, remoteDir: string, localDir: string): string {
  const refuse = (why: string) =>
    new CallFSUnsafePathError(
      `refusing to download ${remoteDir}: the server listed the unsafe path ${JSON.stringify(entry.path)} (${why}); nothing was written`,
      String(entry.path),
    );
  if (typeof entry.path !== 'string') throw refuse('not a string');
  const prefix = remoteDir === '/' ? '/' : `${remoteDir}/`;
  if (!entry.path.startsWith(prefix)) throw refuse(`not inside ${remoteDir}`);
  const segments = entry.path.slice(prefix.length).split('/');
  for (const segment of segments) {
    const why = unsafeSegment(segment);
    if (why !== null) throw refuse(`it has ${why}`);
  }
  if (entry.name !== segments.at(-1)) throw refuse('its name is not its last segment');
  if (entry.type !== 'file' && entry.type !== 'directory')
    throw refuse('neither a file nor a directory');
  const root = resolve(localDir);
  const rel = relative(root, resolve(root, ...segments));
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel))
    throw refuse(`it resolves outside ${localDir}`);
  return join(localDir, ...segments);
}

/** Lists the whole tree first: one unsafe entry refuses the download before anything is written. */
export async function planDownload(
  client: CallFSClient,
  remoteDir: string,
  localDir: string,
): Promise<TransferPlan> {
  const items: TransferItem[] = [
    { type: 'directory', local: localDir, remote: remoteDir, size: 0 },
  ];
  for await (const e of client.listAll(remoteDir, { recursive: true, maxDepth: 1000 })) {
    items.push({
      type: e.type,
      local: localPathOf(e, remoteDir, localDir),
      remote: e.path,
      size: e.type === 'file' ? e.size : 0,
      etag: e.etag,
    });
  }
  // Parents before children.
  items.sort((a, b) => (a.remote < b.remote ? -1 : a.remote > b.remote ? 1 : 0));
  return summarise(items);
}

function summarise(items: TransferItem[]): TransferPlan {
  const files = items.filter((i) => i.type === 'file');
  return { items, files: files.length, bytes: files.reduce((n, i) => n + i.size, 0) };
}

/** Directories in plan order (parents first), then each file as it comes. */
async function runPlan(
  plan: TransferPlan,
  opts: TreeOptions,
  directory: (item: TransferItem) => Promise<unknown>,
  file: (item: TransferItem, onProgress: OnProgress | undefined) => Promise<unknown>,
): Promise<void> {
  for (const item of plan.items) {
    if (item.type === 'directory') {
      await directory(item);
      continue;
    }
    opts.onFile?.(item);
    await file(item, opts.onProgress);
  }
}

export const runUpload = (client: CallFSClient, plan: TransferPlan, opts: TreeOptions) =>
  runPlan(
    plan,
    opts,
    (item) => client.mkdir(item.remote),
    (item, onProgress) => uploadFile(client, item.local, item.remote, { onProgress }),
  );

export const runDownload = (client: CallFSClient, plan: TransferPlan, opts: TreeOptions) =>
  runPlan(
    plan,
    opts,
    (item) => mkdir(item.local, { recursive: true }),
    (item, onProgress) => downloadFile(client, item.remote, item.local, { onProgress }),
  );
