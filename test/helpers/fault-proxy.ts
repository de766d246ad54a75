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
 * until `pass()`. Bytes sent meanwhile are not lost: reading stops, so they
 * wait in socket buffers and arrive on heal, as TCP retransmission would
 * deliver them. A close by either side is held back too and passed on at heal.
 */
import { createConnection, createServer, type Socket } from 'node:net';

export type FaultMode = 'pass' | 'blackhole' | 'reset';

export interface FaultProxy {
  /** Port of the proxy on 127.0.0.1. */
  readonly port: number;
  readonly mode: FaultMode;
  /** Connections currently open through the proxy (client side). */
  readonly connections: number;
  pass(): void;
  blackhole(): void;
  reset(): void;
  close(): Promise<void>;
}

interface Link {
  client: Socket;
  upstream?: Socket;
  /** A side closed while blackholed: finish the close on heal. */
  closePending: boolean;
}

export async function faultProxy(targetHost: string, targetPort: number): Promise<FaultProxy> {
  let mode: FaultMode = 'pass';
  const links = new Set<Link>();

  const destroy = (link: Link) => {
    links.delete(link);
    link.client.destroy();
    link.upstream?.destroy();
  };

  const closed = (link: Link) => {
    if (mode === 'blackhole') link.closePending = true;
    else destroy(link);
  };

  /** Relays `from` → `to` with back-pressure; nothing moves while blackholed. */
  const relay = (link: Link, from: Socket, to: Socket) => {
    from.on('data', (chunk: Buffer) => {
      if (!to.write(chunk)) from.pause();
    });
    to.on('drain', () => {
      if (mode === 'pass') from.resume();
    });
    if (mode !== 'pass') from.pause();
  };

  const connectUpstream = (link: Link) => {
    const upstream = createConnection({ host: targetHost, port: targetPort });
    link.upstream = upstream;
    upstream.setNoDelay(true);
    upstream.on('error', () => closed(link));
    upstream.on('close', () => closed(link));
    relay(link, link.client, upstream);
    relay(link, upstream, link.client);
    if (mode === 'pass') link.client.resume();
  };

  const server = createServer({ pauseOnConnect: true }, (client) => {
    if (mode === 'reset') {
      client.resetAndDestroy();
      return;
    }
    const link: Link = { client, closePending: false };
    links.add(link);
    client.setNoDelay(true);
    client.on('error', () => closed(link));
    client.on('close', () => closed(link));
    if (mode === 'pass') connectUpstream(link);
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
    pass() {
      mode = 'pass';
      for (const link of [...links]) {
        if (link.closePending) destroy(link);
        else if (!link.upstream) connectUpstream(link);
        else {
          link.client.resume();
          link.upstream.resume();
        }
      }
    },
    blackhole() {
      mode = 'blackhole';
      for (const link of links) {
        link.client.pause();
        link.upstream?.pause();
      }
    },
    reset() {
      mode = 'reset';
      for (const link of [...links]) {
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
