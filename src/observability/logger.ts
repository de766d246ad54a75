import { AsyncLocalStorage } from 'node:async_hooks';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * The request a piece of code runs for. Every log line written inside it
 * carries its `trace_id`, from any module, without passing loggers around.
 */
export const requestContext = new AsyncLocalStorage<{ traceId: string }>();

function traceMixin(): Record<string, string> {
  const ctx = requestContext.getStore();
  return ctx ? { trace_id: ctx.traceId } : {};
}

/**
 * The pino logger of the seed's formats: `json` lines with `level` as a word,
 * `time` ISO-8601 and `msg`; or `console`, one tab-separated line per record
 * (time, LEVEL, msg, key=value…). Secrets are redacted by path; the code
 * never logs keys, and DSNs go through redactDsn first.
 */
export function createLogger(opts: {
  level: string;
  format: 'json' | 'console';
  destination?: NodeJS.WritableStream;
}): Logger {
  const dest = opts.destination ?? process.stdout;
  return pino(
    {
      level: opts.level,
      base: undefined,
      mixin: traceMixin,
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: [
          'authorization',
          'headers.authorization',
          '*.authorization',
          'api_key',
          '*.api_key',
          'password',
          '*.password',
          'secret',
          '*.secret',
        ],
        censor: '***',
      },
    },
    opts.format === 'console' ? consoleStream(dest) : (dest as pino.DestinationStream),
  );
}

function formatValue(key: string, v: unknown): string {
  if (key === 'duration' && typeof v === 'number') return `${Math.round(v * 1000)}ms`;
  if (typeof v === 'string') return /[\s"=]/.test(v) ? JSON.stringify(v) : v;
  return JSON.stringify(v);
}

/** `2025-07-13T12:00:00Z    INFO    HTTP request    method=GET path=/x status=200 duration=25ms` */
function consoleStream(dest: NodeJS.WritableStream): pino.DestinationStream {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue;
        try {
          const { time, level, msg, ...rest } = JSON.parse(line) as Record<string, unknown>;
          const fields = Object.entries(rest)
            .map(([k, v]) => `${k}=${formatValue(k, v)}`)
            .join(' ');
          dest.write(
            `${String(time)}\t${String(level).toUpperCase()}\t${String(msg ?? '')}\t${fields}\n`,
          );
        } catch {
          dest.write(line + '\n');
        }
      }
      done();
    },
  });
}
