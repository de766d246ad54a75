/**
 * File and directory transfers between the local disk and a server. A
 * download goes to a temp file beside the target, is fsynced and renamed
 * into place only once it is complete and verified: a failed transfer leaves
 * no partial file.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
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

export async function planDownload(
  client: CallFSClient,
  remoteDir: string,
  localDir: string,
): Promise<TransferPlan> {
  const items: TransferItem[] = [
    { type: 'directory', local: localDir, remote: remoteDir, size: 0 },
  ];
  const prefix = remoteDir === '/' ? '/' : `${remoteDir}/`;
  for await (const e of client.listAll(remoteDir, { recursive: true, maxDepth: 1000 })) {
    const rel = e.path.slice(prefix.length);
    items.push({
      type: e.type,
      local: join(localDir, ...rel.split('/')),
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
