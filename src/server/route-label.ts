/**
 * The `path` label of the HTTP metrics: a route pattern, never a raw path, so
 * cardinality stays bounded. Anything no route serves is "unmatched".
 */
const PREFIXES: ReadonlyArray<[prefix: string, label: string]> = [
  ['/v1/files/', '/v1/files/*'],
  ['/v1/directories/', '/v1/directories/*'],
  ['/v1/links/', '/v1/links/*'],
  ['/download/', '/download/*'],
  ['/v1/internal/', '/v1/internal/*'],
  ['/debug/', '/debug/*'],
];

const EXACT: ReadonlyMap<string, string> = new Map([
  ['/v1/files', '/v1/files/*'],
  ['/v1/directories', '/v1/directories/*'],
  ['/health', '/health'],
  ['/ready', '/ready'],
  ['/metrics', '/metrics'],
  ['/openapi.json', '/openapi.json'],
]);

export const UNMATCHED = 'unmatched';

export function routeLabel(path: string): string {
  const exact = EXACT.get(path);
  if (exact) return exact;
  for (const [prefix, label] of PREFIXES) if (path.startsWith(prefix)) return label;
  return UNMATCHED;
}
