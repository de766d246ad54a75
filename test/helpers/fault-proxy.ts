/**
 * A userspace TCP relay that injects network faults deterministically, for
 * "dependency stops answering" tests without iptables:
 *
 *   const p = await faultProxy('127.0.0.1', redisPort);
 *   // point the instance at 127.0.0.1:p.port instead of the real service
 *   p.blackhole(); // packets dropped: every connection stays open, no byte moves
 *   p.pass();      // heal: held bytes flow again, held connections proceed
 *   p.reset();     // every connection (and each new one) is reset (RST)
 *   await p.close();
 *
 * `blackhole` imitates a firewall DROP rather than a stopped service: the
 * client sees no error, no FIN, no RST — only silence. New connections are
 * accepted (the kernel answers the handshake) but never reach the target
 * until healed. Bytes sent meanwhile are not lost: reading stops, so they
 * wait in socket buffers and arrive on heal, as TCP retransmission would
 * deliver them; a close (FIN) waits behind them the same way.
 *
 * `pass({ resumeHeldAfterMs })` heals like a real network after a long
 * partition: new connections pass at once, but the connections that were
 * held stay stalled that much longer (TCP retransmits a held segment on an
 * exponential backoff, so after seconds of silence the next try comes
 * seconds after the heal).
 */
import { createConnection, createServer, type Socket } from 'node:net';

export type FaultMode = 'pass' | 'blackhole' | 'reset';

export interface FaultProxy {
  /** Port of the proxy on 127.0.0.1. */
  readonly port: number;
  readonly mode: FaultMode;
  /** Connections currently open through the proxy (client side). */
  readonly connections: number;
  pass(opts?: { resumeHeldAfterMs?: number }): void;
  blackhole(): void;
  reset(): void;
  close(): Promise<void>;
}

interface Link {
  client: Socket;
  upstream?: Socket;
  /** Bytes move (false while blackholed, or stalled after a heal). */
  flowing: boolean;
  /** A delayed resume (pass with resumeHeldAfterMs). */
  resume?: NodeJS.Timeout;
}

export async function faultProxy(targetHost: string, targetPort: number): Promise<FaultProxy> {
  let mode: FaultMode = 'pass';
  const links = new Set<Link>();

  const destroy = (link: Link) => {
    clearTimeout(link.resume);
    links.delete(link);
    link.client.destroy();
    link.upstream?.destroy();
  };

  /** Relays `from` → `to` with back-pressure; nothing moves while the link is stopped. */
  const relay = (link: Link, from: Socket, to: Socket) => {
    from.on('data', (chunk: Buffer) => {
      if (!to.write(chunk)) from.pause();
    });
    to.on('drain', () => {
      if (link.flowing) from.resume();
    });
    // A FIN travels behind the bytes sent before it.
    from.on('end', () => to.end());
    if (!link.flowing) from.pause();
  };

  const connectUpstream = (link: Link) => {
    const upstream = createConnection({ host: targetHost, port: targetPort, allowHalfOpen: true });
    link.upstream = upstream;
    upstream.setNoDelay(true);
    upstream.on('error', () => destroy(link));
    upstream.on('close', () => {
      if (link.client.destroyed) links.delete(link);
    });
    relay(link, link.client, upstream);
    relay(link, upstream, link.client);
  };

  const flow = (link: Link) => {
    link.flowing = true;
    if (!link.upstream) connectUpstream(link);
    link.client.resume();
    link.upstream?.resume();
  };

  // Half-open both ways: each FIN is passed on by `relay`, after the bytes before it.
  const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (client) => {
    if (mode === 'reset') {
      client.resetAndDestroy();
      return;
    }
    const link: Link = { client, flowing: false };
    links.add(link);
    client.setNoDelay(true);
    client.on('error', () => destroy(link));
    client.on('close', () => {
      if (!link.upstream || link.upstream.destroyed) links.delete(link);
    });
    if (mode === 'pass') flow(link);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string')
    throw new Error('fault proxy: no TCP address');

  return {
    port: address.port,
    get mode() {
      return mode;
    },
    get connections() {
      return links.size;
    },
    pass(opts = {}) {
      mode = 'pass';
      const delay = opts.resumeHeldAfterMs ?? 0;
      for (const link of links) {
        if (link.flowing) continue;
        clearTimeout(link.resume);
        if (delay <= 0) flow(link);
        else link.resume = setTimeout(() => flow(link), delay);
      }
    },
    blackhole() {
      mode = 'blackhole';
      for (const link of links) {
        clearTimeout(link.resume);
        link.flowing = false;
        link.client.pause();
        link.upstream?.pause();
      }
    },
    reset() {
      mode = 'reset';
      for (const link of [...links]) {
        clearTimeout(link.resume);
        links.delete(link);
        link.client.resetAndDestroy();
        link.upstream?.resetAndDestroy();
      }
    },
    async close() {
      for (const link of [...links]) destroy(link);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
