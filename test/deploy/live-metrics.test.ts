/**
 * Every metric an alert (prometheus/callfs_rules.yml) or a dashboard
 * (grafana/dashboards/*.json) queries exists in a live /metrics: of the
 * embedded default (SQLite, localfs, in-process locks) and of a 2-instance
 * cluster (PostgreSQL, Redis), after the operations that produce each series.
 * Names come from parsing the expressions, not from a list. The probe paths
 * of the manifests answer 200 on the same servers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCallFS, type CallFSProcess } from '../helpers/callfs.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { driveSeedSeries, SEED_DRIVE_CONFIG } from '../helpers/drive.js';
import { call, scrape } from '../helpers/obs.js';
import type { Scrape } from '../helpers/prom.js';
import {
  dashboard,
  dashboardExprs,
  DASHBOARDS,
  promqlUse,
  read,
  rulesOf,
  yamlDocs,
  yamlFile,
} from './assets.js';

/** Series Prometheus makes itself for every target, not the target's /metrics. */
const PROMETHEUS_SERIES = new Set(['up']);
/** Target labels Prometheus attaches at scrape time. */
const TARGET_LABELS = new Set(['job', 'instance']);
/** Families that only a cluster fills (peers, the internal proxy): declared on a single node. */
const CLUSTER_ONLY = new Set([
  'callfs_cross_server_operations_total',
  'callfs_cross_server_operation_duration_seconds',
]);
const family = (name: string) => name.replace(/_(bucket|count|sum)$/, '');

interface Query {
  where: string;
  expr: string;
}

function queries(): Query[] {
  const out: Query[] = rulesOf(yamlFile('prometheus/callfs_rules.yml')).map((r) => ({
    where: `alert ${r.alert}`,
    expr: r.expr,
  }));
  for (const file of DASHBOARDS) {
    for (const expr of dashboardExprs(dashboard(file))) out.push({ where: file, expr });
  }
  return out;
}

/** metric name → label names it carries, over every sample of the scrapes. */
function labelIndex(scrapes: Scrape[]): Map<string, Set<string>> {
  const idx = new Map<string, Set<string>>();
  for (const s of scrapes) {
    for (const row of s.rows) {
      const set = idx.get(row.name) ?? new Set<string>();
      for (const l of Object.keys(row.labels)) set.add(l);
      idx.set(row.name, set);
    }
  }
  return idx;
}

/** Problems of `q` against live scrapes: absent metrics, matchers on labels a metric lacks. */
function problems(
  q: Query,
  live: Map<string, Set<string>>,
  skip: (n: string) => boolean,
): string[] {
  const use = promqlUse(q.expr);
  const out: string[] = [];
  for (const name of use.names) {
    if (PROMETHEUS_SERIES.has(name) || skip(name)) continue;
    const labels = live.get(name);
    if (!labels) {
      out.push(`${q.where}: ${name} is not in /metrics`);
      continue;
    }
    for (const l of use.labels.get(name) ?? []) {
      if (!TARGET_LABELS.has(l) && !labels.has(l))
        out.push(`${q.where}: ${name} has no label ${l}`);
    }
  }
  return out;
}

let single: CallFSProcess | undefined;
let cluster: Cluster | undefined;
let singleLive: Scrape;
let clusterLive: Scrape[];

beforeAll(async () => {
  [single, cluster] = await Promise.all([
    startCallFS({ config: SEED_DRIVE_CONFIG }),
    startCluster({ size: 2, config: SEED_DRIVE_CONFIG }),
  ]);
  const [n1, n2] = cluster.nodes as [Cluster['nodes'][0], Cluster['nodes'][0]];
  await Promise.all([driveSeedSeries(single.url), driveSeedSeries(n1.url)]);
  // Cross-server series: node2 proxies a read of node1's file, and sees a conflict.
  await n1.create('/x/owned.txt', 'owned by node1');
  expect((await n2.read('/x/owned.txt')).bytes.toString()).toBe('owned by node1');
  expect((await n2.file('POST', '/x/owned.txt', { body: 'again' })).status).toBe(409);
  singleLive = await scrape(single.url);
  clusterLive = await Promise.all([scrape(n1.url), scrape(n2.url)]);
}, 120_000);

afterAll(async () => {
  await Promise.all([single?.stop(), cluster?.stop()]);
});

describe('metrics of the alerts and dashboards, in a live /metrics', () => {
  it('finds the queried metrics by parsing every expression', () => {
    const names = new Set(queries().flatMap((q) => promqlUse(q.expr).names));
    // 8 alerts, 20 panel targets (17 panels), 2 instance variables.
    expect(queries()).toHaveLength(8 + 20 + 2);
    expect([...names].sort()).toEqual([
      'callfs_active_locks',
      'callfs_backend_op_duration_seconds_bucket',
      'callfs_backend_ops_total',
      'callfs_cache_operations_total',
      'callfs_cache_size',
      'callfs_cross_server_operation_duration_seconds_bucket',
      'callfs_cross_server_operations_total',
      'callfs_http_client_connections_active',
      'callfs_http_client_connections_idle',
      'callfs_http_request_duration_seconds_bucket',
      'callfs_http_requests_total',
      'callfs_lock_operation_duration_seconds_bucket',
      'callfs_lock_operations_total',
      'callfs_metadata_db_queries_total',
      'callfs_metadata_db_query_duration_seconds_bucket',
      'callfs_single_use_link_consumptions_total',
      'callfs_single_use_link_generations_total',
      'process_resident_memory_bytes',
      'up',
    ]);
  });

  it('the 2-instance cluster exposes every one, with every label a query matches on', () => {
    const live = labelIndex(clusterLive);
    expect(queries().flatMap((q) => problems(q, live, () => false))).toEqual([]);
  });

  it('the embedded default exposes every one (cluster-only families declared)', () => {
    const live = labelIndex([singleLive]);
    expect(queries().flatMap((q) => problems(q, live, (n) => CLUSTER_ONLY.has(family(n))))).toEqual(
      [],
    );
    for (const f of CLUSTER_ONLY) expect(singleLive.types.has(f), f).toBe(true);
  });

  it('a missing metric is reported (the check can fail)', () => {
    const live = labelIndex([singleLive]);
    expect(
      problems(
        { where: 'x', expr: 'rate(callfs_no_such_total{status="a"}[5m]) > 0' },
        live,
        () => false,
      ),
    ).toEqual(['x: callfs_no_such_total is not in /metrics']);
    expect(
      problems({ where: 'x', expr: 'callfs_active_locks{bogus="1"}' }, live, () => false),
    ).toEqual(['x: callfs_active_locks has no label bogus']);
  });
});

describe('probe paths of the manifests', () => {
  /** Every HTTP path a health check or probe of the assets requests. */
  function probePaths(): string[] {
    const paths = new Set<string>();
    const sts = yamlDocs('k8s/statefulset.yaml')[0] as {
      spec: {
        template: { spec: { containers: Array<Record<string, { httpGet?: { path: string } }>> } };
      };
    };
    for (const c of sts.spec.template.spec.containers) {
      for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
        const p = c[probe]?.httpGet?.path;
        if (p) paths.add(p);
      }
    }
    for (const text of [
      read('Dockerfile'),
      read('compose/docker-compose.yml'),
      read('swarm/callfs-stack.yml'),
    ]) {
      for (const m of text.matchAll(/http:\/\/127\.0\.0\.1:8443(\/[a-z]+)/g))
        paths.add(m[1] as string);
    }
    return [...paths].sort();
  }

  it('/health and /ready answer 200 on the embedded default and on every cluster node', async () => {
    expect(probePaths()).toEqual(['/health', '/ready']);
    for (const base of [single!.url, ...cluster!.nodes.map((n) => n.url)]) {
      for (const p of probePaths()) {
        const r = await call(base, 'GET', p, { key: null });
        expect(`${base}${p} ${r.status}`).toBe(`${base}${p} 200`);
      }
    }
  });
});
