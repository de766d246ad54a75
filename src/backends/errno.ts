/** The `code` of a Node system or stream error (ENOENT, ERR_STREAM_PREMATURE_CLOSE…), if any. */
export function errnoCode(err: unknown): string | undefined {
  if (err instanceof Error && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}
