// HEAD load generator (wrk and h2load wait for a body after HEAD and stall).
// One process of `connections` keep-alive sockets, each sending HEAD requests
// one after another; a response is complete at its blank line (HEAD has no
// body). Prints one JSON line: requests, non-2xx, errors, latencies (µs).
// usage: node head-load.mjs URL PREFIX COUNT CONNECTIONS SECONDS [HEADER]...
import net from 'node:net';

const [url, prefix, countArg, connArg, secsArg, ...headers] = process.argv.slice(2);
const { hostname, port } = new URL(url);
const count = Number(countArg);
const until = performance.now() + Number(secsArg) * 1000;
const extra = headers.map((h) => `${h}\r\n`).join('');
const lat = [];
let requests = 0;
let bad = 0;
let errors = 0;
let counter = 0;

/** One connection; reconnects when the server closes it (keep-alive limit) while time remains. */
async function conn() {
  while (performance.now() < until) await session();
}

function session() {
  return new Promise((resolve) => {
    const sock = net.connect({ host: hostname, port: Number(port), noDelay: true });
    let buf = '';
    let sent = 0;
    const send = () => {
      if (performance.now() >= until) return void sock.end();
      const path = count === 0 ? prefix : `${prefix}${counter++ % count}.bin`;
      sent = performance.now();
      sock.write(`HEAD ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\n${extra}\r\n`);
    };
    sock.setEncoding('latin1');
    sock.on('connect', send);
    sock.on('data', (d) => {
      buf += d;
      let end;
      while ((end = buf.indexOf('\r\n\r\n')) !== -1) {
        if (!/^HTTP\/1\.1 2/.test(buf)) bad++;
        buf = buf.slice(end + 4);
        requests++;
        lat.push((performance.now() - sent) * 1000);
        send();
      }
    });
    sock.on('error', (err) => {
      if (performance.now() < until && err.code !== 'ECONNRESET' && err.code !== 'EPIPE') errors++;
      resolve();
    });
    sock.on('close', () => resolve());
  });
}

const started = performance.now();
await Promise.all(Array.from({ length: Number(connArg) }, conn));
const duration_us = Math.round((performance.now() - started) * 1000);
process.stdout.write(
  JSON.stringify({ requests, bad, errors, duration_us, lat: lat.map(Math.round) }) + '\n',
);
