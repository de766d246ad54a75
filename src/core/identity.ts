import type { Entry } from '../metadata/types.js';
import { errors } from './errors.js';

/** Who is asking. `internal-proxy` acts for peers and may modify anything. */
export interface Identity {
  user: string;
}

export const INTERNAL_USER = 'internal-proxy';

/** Owner-based rule (SPEC §3): reading is open to everyone authenticated. */
export function assertCanModify(entry: Entry, who: Identity, verb: string): void {
  if (who.user === entry.owner || who.user === INTERNAL_USER) return;
  throw errors.denied(`${who.user} may not ${verb} ${entry.path}: owned by ${entry.owner}`, {
    path: entry.path,
  });
}
