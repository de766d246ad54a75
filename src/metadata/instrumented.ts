import { recordDbQuery } from '../observability/metrics.js';
import type { MetadataStore } from './types.js';

/** Metric operation names of the seed for each store method. */
const OPERATION: Record<string, string> = {
  get: 'get_metadata',
  list: 'list_directory',
  countChildren: 'count_children',
  ensureDirectories: 'create_directory',
  commitFile: 'update_metadata',
  clearPending: 'clear_pending',
  listPending: 'list_pending',
  delete: 'delete_metadata',
  move: 'move_metadata',
  createLink: 'create_link',
  consumeLink: 'consume_link',
  ping: 'ping',
};

/**
 * Wraps a store so that every query is counted and timed under the seed's
 * operation names. commitFile of a new path counts as create_metadata.
 */
export function instrumentStore(store: MetadataStore): MetadataStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof prop !== 'string' || typeof value !== 'function' || !(prop in OPERATION)) {
        return typeof value === 'function' ? value.bind(target) : value;
      }
      const fn = value as (...args: unknown[]) => Promise<unknown>;
      return async (...args: unknown[]) => {
        const operation =
          prop === 'commitFile' && args[1] === null
            ? 'create_metadata'
            : (OPERATION[prop] as string);
        const start = process.hrtime.bigint();
        try {
          return await fn.apply(target, args);
        } finally {
          recordDbQuery(operation, Number(process.hrtime.bigint() - start) / 1e9);
        }
      };
    },
  });
}
