// The Node ceiling for the read scenarios, measured in the same run as CallFS
// and nginx: a bare node:http server with N cluster workers (argv: root port
// workers) serving files under `root` with no auth, metadata, headers or
// metrics. Small files (≤ 256 KiB) are answered from memory after the first
// read, as CallFS's content cache does; larger ones stream with
// fs.createReadStream (256 KiB chunks, as CallFS's localfs backend).
import cluster from 'node:cluster';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';

const [root, port, workers] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const SMALL = 256 * 1024;

if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.kill();
    process.exit(0);
  });
} else {
  const small = new Map();
  http
    .createServer((req, res) => {
      const file = join(root, decodeURIComponent(req.url.split('?')[0]));
      let st;
      try {
        st = statSync(file);
      } catch {
        st = null;
      }
      if (!st?.isFile()) {
        res.writeHead(404).end();
        return;
      }
      res.setHeader('Content-Length', st.size);
      if (st.size <= SMALL) {
        let bytes = small.get(file);
        if (!bytes) small.set(file, (bytes = readFileSync(file)));
        res.end(bytes);
        return;
      }
      createReadStream(file, { highWaterMark: 256 * 1024 }).pipe(res);
    })
    .listen(port, '127.0.0.1', () => process.send?.('listening'));
}
