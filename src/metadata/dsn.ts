/**
 * Logs may name the database but never its password: postgres://user:***@host/db.
 */
export function redactDsn(dsn: string): string {
  try {
    const url = new URL(dsn);
    if (url.password) url.password = '***';
    // Query parameters can carry secrets too (password=, sslkey passphrases).
    for (const key of [...url.searchParams.keys()]) {
      if (/pass|secret|key/i.test(key)) url.searchParams.set(key, '***');
    }
    return url.toString().replaceAll('%2A', '*');
  } catch {
    // Not a URL (e.g. "host=... password=..." keyword form): mask password values.
    return dsn.replace(/(password\s*=\s*)(\S+)/gi, '$1***').replace(/:[^:@/]*@/, ':***@');
  }
}
