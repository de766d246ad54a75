/**
 * `work`, or `timedOut()` thrown once `ms` have passed, whichever comes
 * first. The work itself is not cancelled (its owner bounds it too, e.g. a
 * driver timeout); a late rejection is swallowed here, so it is never
 * unhandled.
 */
export async function withDeadline<T>(
  work: Promise<T>,
  ms: number,
  timedOut: () => Error,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  work.catch(() => undefined);
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(timedOut()), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
