/**
 * The OpenAPI 3.1 document of the public API (SPEC §2–§3), built here and
 * nowhere else: the server serves it at GET /openapi.json and the repo keeps
 * the same JSON in docs/openapi.json (`npm run openapi` rewrites it; a test
 * checks both against the live router). Error codes come from the one table
 * in src/core/errors.ts.
 */
import { ERROR_STATUS, type ErrorCode } from '../core/errors.js';
import { VERSION } from '../version.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

const ref = (name: string): Obj => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Obj, description: string): Obj => ({
  description,
  content: { 'application/json': { schema } },
});

/** Codes a client can meet on every authenticated route. */
const COMMON_ERRORS = [401, 429, 500, 503] as const;

function codesFor(status: number): ErrorCode[] {
  return (Object.keys(ERROR_STATUS) as ErrorCode[]).filter((c) => ERROR_STATUS[c] === status);
}

function errorResponses(statuses: readonly number[]): Obj {
  const out: Obj = {};
  for (const status of [...new Set([...statuses])].sort((a, b) => a - b)) {
    const codes = codesFor(status);
    out[String(status)] = {
      description: `Error: ${codes.join(', ')}`,
      content: { 'application/json': { schema: ref('Error') } },
    };
  }
  return out;
}

const pathParam: Obj = {
  name: 'path',
  in: 'path',
  required: true,
  description:
    'Namespace path below the root, each segment percent-encoded; it may contain "/". A trailing "/" names a directory.',
  schema: { type: 'string' },
};

const header = (description: string, schema: Obj = { type: 'string' }): Obj => ({
  description,
  schema,
});

const ENTRY_HEADERS: Obj = {
  ETag: header('Quoted hex SHA-256 of the content (files)'),
  'Last-Modified': header('HTTP date of mtime'),
  'X-CallFS-Type': header('file or directory', { type: 'string', enum: ['file', 'directory'] }),
  'X-CallFS-Size': header('Size in bytes', { type: 'integer' }),
  'X-CallFS-Mode': header('Octal mode, e.g. 0644'),
  'X-CallFS-Owner': header('Identity that created the entry'),
  'X-CallFS-MTime': header('Modification time, RFC 3339'),
  'X-CallFS-Instance-ID': header('Instance holding the bytes'),
  'X-CallFS-Backend': header('Backend holding the bytes (localfs, s3, noop)'),
};

const ifMatch: Obj = {
  name: 'If-Match',
  in: 'header',
  required: false,
  description: 'Only if the current ETag is one of these (412 otherwise, also when absent)',
  schema: { type: 'string' },
};

const uploadHeaders: Obj[] = [
  {
    name: 'X-CallFS-SHA256',
    in: 'header',
    required: false,
    description: 'Expected SHA-256 (64 hex digits); a mismatch is 400 CHECKSUM_MISMATCH',
    schema: { type: 'string', pattern: '^[0-9a-fA-F]{64}$' },
  },
  {
    name: 'Content-MD5',
    in: 'header',
    required: false,
    description: 'Expected MD5 (base64); a mismatch is 400 CHECKSUM_MISMATCH',
    schema: { type: 'string' },
  },
];

const binaryBody: Obj = {
  required: false,
  content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
};

const entryResponse = (description: string): Obj => ({
  description,
  headers: ENTRY_HEADERS,
  content: { 'application/json': { schema: ref('Entry') } },
});

const secured = { security: [{ bearerAuth: [] }] };
const ADMIN_ONLY =
  'Off unless debug.enabled (404 for everyone); then for users of auth.admin_users only ' +
  '(403 for other users). Rate-limited per worker (429).';
const open = { security: [] };

function filesPath(): Obj {
  return {
    parameters: [pathParam],
    get: {
      ...secured,
      operationId: 'readFile',
      summary: 'Download a file (streamed) or list a directory',
      parameters: [
        { name: 'Range', in: 'header', required: false, schema: { type: 'string' } },
        { name: 'If-None-Match', in: 'header', required: false, schema: { type: 'string' } },
        { name: 'If-Modified-Since', in: 'header', required: false, schema: { type: 'string' } },
      ],
      responses: {
        '200': {
          description: 'File bytes, or the JSON array of a directory’s children',
          headers: {
            ...ENTRY_HEADERS,
            'Accept-Ranges': header('bytes'),
            'Content-Length': header('Length of the body', { type: 'integer' }),
          },
          content: {
            'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
            'application/json': { schema: { type: 'array', items: ref('Entry') } },
          },
        },
        '206': {
          description: 'The requested byte range',
          headers: { ...ENTRY_HEADERS, 'Content-Range': header('bytes start-end/size') },
          content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
        },
        '304': { description: 'Not modified (If-None-Match / If-Modified-Since)' },
        ...errorResponses([400, 404, 416, ...COMMON_ERRORS]),
      },
    },
    head: {
      ...secured,
      operationId: 'statFile',
      summary: 'The headers GET would send, no body',
      responses: {
        '200': { description: 'Metadata headers', headers: ENTRY_HEADERS },
        '304': { description: 'Not modified' },
        '404': { description: 'No such file or directory (no body on HEAD)' },
      },
    },
    post: {
      ...secured,
      operationId: 'createFile',
      summary: 'Create a file from the body; "p/" creates a directory (idempotent)',
      parameters: uploadHeaders,
      requestBody: binaryBody,
      responses: {
        '200': entryResponse('The directory already existed'),
        '201': entryResponse('Created'),
        ...errorResponses([400, 403, 409, 413, ...COMMON_ERRORS]),
      },
    },
    put: {
      ...secured,
      operationId: 'putFile',
      summary: 'Create or replace a file from the body (streamed)',
      parameters: [
        ifMatch,
        {
          name: 'If-None-Match',
          in: 'header',
          required: false,
          description: '"*": create only if absent (412 otherwise)',
          schema: { type: 'string' },
        },
        ...uploadHeaders,
      ],
      requestBody: binaryBody,
      responses: {
        '200': entryResponse('Replaced'),
        '201': entryResponse('Created'),
        ...errorResponses([400, 403, 412, 413, ...COMMON_ERRORS]),
      },
    },
    patch: {
      ...secured,
      operationId: 'moveFile',
      summary: 'Rename ({name}) or move ({destination}) a file or directory',
      parameters: [ifMatch],
      requestBody: {
        required: true,
        content: { 'application/json': { schema: ref('MoveRequest') } },
      },
      responses: {
        '200': entryResponse('Moved; the entry at its new path'),
        ...errorResponses([400, 403, 404, 409, 412, ...COMMON_ERRORS]),
      },
    },
    delete: {
      ...secured,
      operationId: 'deleteFile',
      summary: 'Delete a file or an empty directory',
      parameters: [ifMatch],
      responses: {
        '204': { description: 'Deleted' },
        ...errorResponses([400, 403, 404, 409, 412, ...COMMON_ERRORS]),
      },
    },
  };
}

export function openApiDocument(): Obj {
  const codes = Object.keys(ERROR_STATUS) as ErrorCode[];
  return {
    openapi: '3.1.0',
    info: {
      title: 'CallFS',
      version: VERSION,
      description:
        'A REST file server. Paths are absolute inside the namespace: /v1/files/a/b.txt is /a/b.txt.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    security: [{ bearerAuth: [] }],
    paths: {
      '/health': {
        get: {
          ...open,
          operationId: 'health',
          summary: 'Liveness',
          responses: { '200': json(ref('Health'), 'Alive') },
        },
      },
      '/ready': {
        get: {
          ...open,
          operationId: 'ready',
          summary: 'Readiness: metadata store, storage and (cluster) Redis reachable',
          responses: {
            '200': json(ref('Ready'), 'Ready'),
            '503': json(ref('Ready'), 'Not ready; checks names what failed'),
          },
        },
      },
      '/metrics': {
        get: {
          ...open,
          operationId: 'metrics',
          summary:
            'Prometheus text, merged across workers (a bearer key with metrics.require_auth)',
          responses: {
            '200': { description: 'Prometheus exposition', content: { 'text/plain': {} } },
          },
        },
      },
      '/openapi.json': {
        get: {
          ...open,
          operationId: 'openapi',
          summary: 'This document',
          responses: { '200': json({ type: 'object' }, 'OpenAPI 3.1 document') },
        },
      },
      '/v1/files/{path}': filesPath(),
      '/v1/directories/{path}': {
        parameters: [pathParam],
        get: {
          ...secured,
          operationId: 'listDirectory',
          summary: 'List a directory, optionally recursively, in pages',
          parameters: [
            {
              name: 'recursive',
              in: 'query',
              required: false,
              schema: { type: 'string', enum: ['true', 'false', '1', '0'] },
            },
            {
              name: 'max_depth',
              in: 'query',
              required: false,
              description: 'Levels below the children (0 = children only; default 100, max 1000)',
              schema: { type: 'integer', minimum: 0 },
            },
            {
              name: 'limit',
              in: 'query',
              required: false,
              schema: { type: 'integer', minimum: 1, maximum: 10000, default: 1000 },
            },
            {
              name: 'cursor',
              in: 'query',
              required: false,
              description: 'next_cursor of the previous page',
              schema: { type: 'string' },
            },
          ],
          responses: {
            '200': json(ref('DirectoryListing'), 'One page of entries'),
            ...errorResponses([400, 404, ...COMMON_ERRORS]),
          },
        },
      },
      '/v1/links/generate': {
        post: {
          ...secured,
          operationId: 'generateLink',
          summary: 'A single-use download link for a file',
          requestBody: {
            required: true,
            content: { 'application/json': { schema: ref('LinkRequest') } },
          },
          responses: {
            '201': json(ref('Link'), 'Created'),
            ...errorResponses([400, 404, ...COMMON_ERRORS]),
          },
        },
      },
      '/download/{token}': {
        get: {
          ...open,
          operationId: 'download',
          summary: 'Stream the file of a single-use link, once',
          parameters: [{ name: 'token', in: 'path', required: true, schema: { type: 'string' } }],
          responses: {
            '200': {
              description: 'The file, as an attachment',
              headers: { 'Content-Disposition': header('attachment; filename=…') },
              content: {
                'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
              },
            },
            ...errorResponses([404, 410, 429, 500, 503]),
          },
        },
      },
      '/debug/vars': {
        get: {
          ...secured,
          operationId: 'debugVars',
          summary: 'Diagnostics: pools, cache, locks, workers, peers, memory',
          description: ADMIN_ONLY,
          responses: {
            '200': json({ type: 'object' }, 'Variables'),
            ...errorResponses([401, 403, 404, 429]),
          },
        },
      },
      '/debug/pprof/heap': {
        get: {
          ...secured,
          operationId: 'debugHeap',
          summary: 'V8 heap snapshot of the serving worker',
          description: ADMIN_ONLY,
          responses: {
            '200': json({ type: 'object' }, 'Heap snapshot'),
            ...errorResponses([401, 403, 404, 429, 503]),
          },
        },
      },
      '/debug/pprof/profile': {
        get: {
          ...secured,
          operationId: 'debugProfile',
          summary: 'CPU profile (.cpuprofile) over N seconds',
          description: ADMIN_ONLY,
          parameters: [
            {
              name: 'seconds',
              in: 'query',
              required: false,
              schema: { type: 'integer', minimum: 1, maximum: 60, default: 10 },
            },
          ],
          responses: {
            '200': json({ type: 'object' }, 'CPU profile'),
            ...errorResponses([400, 401, 403, 404, 429, 503]),
          },
        },
      },
    },
    components: {
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          description: 'An API key from auth.api_key_users or auth.api_keys',
        },
      },
      schemas: {
        Error: {
          type: 'object',
          required: ['code', 'message'],
          additionalProperties: true,
          description: 'Every error answer. Further fields carry details (path, instance_id, …).',
          properties: {
            code: { type: 'string', enum: codes },
            message: { type: 'string' },
          },
          'x-status-by-code': Object.fromEntries(codes.map((c) => [c, ERROR_STATUS[c]])),
        },
        Entry: {
          type: 'object',
          required: ['name', 'path', 'type', 'size', 'mode', 'owner', 'mtime', 'etag'],
          properties: {
            name: { type: 'string' },
            path: { type: 'string', description: 'Absolute namespace path, no trailing slash' },
            type: { type: 'string', enum: ['file', 'directory'] },
            size: { type: 'integer', minimum: 0 },
            mode: { type: 'string', examples: ['0644', '0755'] },
            owner: { type: 'string' },
            mtime: { type: 'string', format: 'date-time' },
            ctime: { type: 'string', format: 'date-time' },
            backend_type: { type: 'string' },
            instance_id: { type: 'string' },
            etag: { type: ['string', 'null'], description: 'Quoted SHA-256; null for directories' },
          },
        },
        DirectoryListing: {
          type: 'object',
          required: ['path', 'type', 'recursive', 'max_depth', 'count', 'items', 'next_cursor'],
          properties: {
            path: { type: 'string' },
            type: { const: 'directory' },
            recursive: { type: 'boolean' },
            max_depth: { type: 'integer' },
            count: { type: 'integer' },
            items: { type: 'array', items: ref('Entry') },
            next_cursor: { type: ['string', 'null'] },
          },
        },
        MoveRequest: {
          type: 'object',
          additionalProperties: false,
          description: 'Exactly one of name and destination',
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 255 },
            destination: { type: 'string', description: 'Absolute namespace path' },
            backend: { type: 'string', enum: ['localfs', 's3', 'noop'] },
            instance: { type: 'string' },
            overwrite: { type: 'boolean', default: false },
            create_parents: { type: 'boolean', default: false },
          },
          oneOf: [{ required: ['name'] }, { required: ['destination'] }],
        },
        LinkRequest: {
          type: 'object',
          required: ['path', 'expiry_seconds'],
          properties: {
            path: { type: 'string' },
            expiry_seconds: { type: 'integer', minimum: 1, maximum: 86400 },
          },
        },
        Link: {
          type: 'object',
          required: ['token', 'url', 'expires_at'],
          properties: {
            token: { type: 'string' },
            url: { type: 'string', format: 'uri' },
            expires_at: { type: 'string', format: 'date-time' },
          },
        },
        Health: {
          type: 'object',
          required: ['status'],
          properties: { status: { const: 'ok' } },
        },
        Ready: {
          type: 'object',
          required: ['status', 'checks'],
          properties: {
            status: { type: 'string', enum: ['ready', 'unavailable'] },
            checks: { type: 'object', additionalProperties: { type: 'string' } },
            code: { type: 'string' },
            message: { type: 'string' },
          },
        },
      },
    },
  };
}
