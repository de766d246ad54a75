import type Router from '@koa/router';
import type { Next } from 'koa';
import { z } from 'zod';
import { CallFSError } from '../../core/errors.js';
import { normalise } from '../../core/paths.js';
import { Engine } from '../../core/engine.js';
import type { LinkService } from '../../links/service.js';
import { readJson } from '../body.js';
import { identityOf, type CallFSContext } from '../context.js';

type Middleware = (ctx: CallFSContext, next: Next) => Promise<void>;

const generateBody = z.object({
  // No length cap here: normalise() refuses paths over 4096 bytes as INVALID_PATH.
  path: z.string().min(1),
  expiry_seconds: z.number(),
});

/** RFC 6266 with an ASCII fallback and the UTF-8 name. */
function attachment(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

export function linkRoutes(
  router: Router<unknown, CallFSContext>,
  links: LinkService,
  guards: { generate: Middleware[]; download: Middleware[] },
): void {
  router.post('/v1/links/generate', ...guards.generate, async (ctx) => {
    const body = await readJson(ctx, generateBody);
    const { path } = normalise(body.path);
    ctx.status = 201;
    ctx.body = await links.generate(path, body.expiry_seconds, identityOf(ctx));
  });

  router.get('/download/:token', ...guards.download, async (ctx) => {
    // A link is single-use and a HEAD would spend it without the bytes (as
    // S3's presigned GET URLs, it is good for GET only).
    if (ctx.method === 'HEAD') {
      throw new CallFSError('METHOD_NOT_ALLOWED', 'download links answer GET only', {
        headers: { Allow: 'GET' },
      });
    }
    const { entry, body } = await links.consume(String(ctx.params.token));
    ctx.set('Content-Disposition', attachment(Engine.fileName(entry.path)));
    ctx.set('Cache-Control', 'no-store');
    ctx.type = 'application/octet-stream';
    ctx.length = entry.size;
    ctx.body = body;
  });
}
