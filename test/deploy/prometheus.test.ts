/**
 * prometheus/: the configs pass promtool and amtool, the rules are the seed
 * document's alerts (docs/seed-monitoring.md), the rule unit tests fire and do
 * not fire every alert, and the discovery jobs keep exactly the targets the
 * k8s/ and swarm/ manifests describe.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { findOrAptInstallTool } from '../helpers/services.js';
import {
  read,
  relabel,
  ROOT,
  rulesOf,
  run,
  yamlDocs,
  yamlFile,
  type RelabelConfig,
  type Rule,
} from './assets.js';

type Tree = Record<string, unknown>;
interface Job extends Tree {
  job_name: string;
  relabel_configs?: RelabelConfig[];
}

/** The fenced YAML blocks of the seed document. */
function seedYamlBlocks(): unknown[] {
  const seed = read('docs/seed-monitoring.md');
  return [...seed.matchAll(/```yaml\n([\s\S]*?)```/g)].map(
    (m) => parseYaml(m[1] as string) as unknown,
  );
}

/**
 * Alerts whose expression differs from the seed's, and why. Everything else
 * (name, `for`, severity, annotations, and every other expression) must be
 * the seed's exactly.
 */
const CORRECTED: Record<string, string> = {
  CallFSHighErrorRate: 'series-by-series division made every 5xx series its own 100%',
  CallFSBackendFailures: 'fired per idle operation type instead of per backend',
  CallFSCacheLowHitRate: 'hit + miss matched no series (different operation labels): never fired',
  CallFSServiceDown: 'watched only the static job, not callfs-k8s / callfs-swarm',
};

let promtool: string;
let amtool: string;
let tmp: string;

beforeAll(async () => {
  // Sequential: apt-get takes one lock.
  promtool = await findOrAptInstallTool('promtool', 'prometheus');
  amtool = await findOrAptInstallTool('amtool', 'prometheus-alertmanager');
  tmp = mkdtempSync(join(tmpdir(), 'callfs-prom-'));
}, 240_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const prometheusYml = () =>
  yamlFile('prometheus/prometheus.yml') as Tree & { scrape_configs: Job[] };
const job = (name: string) => {
  const j = prometheusYml().scrape_configs.find((x) => x.job_name === name);
  if (!j) throw new Error(`no job ${name}`);
  return j;
};

describe('promtool and amtool', () => {
  it('promtool check rules: the eight alerts', async () => {
    const { stdout } = await run(promtool, ['check', 'rules', 'prometheus/callfs_rules.yml'], {
      cwd: ROOT,
    });
    expect(stdout).toContain('SUCCESS: 8 rules found');
  });

  it('promtool test rules: every unit test passes', async () => {
    const { stdout } = await run(promtool, ['test', 'rules', 'prometheus/callfs_rules.test.yml'], {
      cwd: ROOT,
    });
    expect(stdout).toMatch(/SUCCESS/);
  });

  it('promtool test rules fails on the seed’s own expressions of the corrected alerts', async () => {
    const seed = rulesOf(
      seedYamlBlocks().find((b) => (b as Tree | null)?.groups !== undefined) as Tree,
    );
    const file = yamlFile('prometheus/callfs_rules.yml') as { groups: Array<{ rules: Rule[] }> };
    for (const r of file.groups[0]!.rules) r.expr = seed.find((x) => x.alert === r.alert)!.expr;
    const dir = mkdtempSync(join(tmp, 'seed-'));
    writeFileSync(join(dir, 'callfs_rules.yml'), stringify(file));
    copyFileSync(join(ROOT, 'prometheus/callfs_rules.test.yml'), join(dir, 'rules.test.yml'));
    const r = spawnSync(promtool, ['test', 'rules', 'rules.test.yml'], {
      cwd: dir,
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    const failed = [...(r.stdout + r.stderr).matchAll(/alertname: (\w+),/g)].map((m) => m[1]);
    expect([...new Set(failed)].sort()).toEqual(Object.keys(CORRECTED).sort());
  });

  it('promtool check config: prometheus.yml (the Kubernetes job checked below) and compose/prometheus.yml', async () => {
    // Debian's promtool is built without Kubernetes discovery: check a copy without that job.
    const full = prometheusYml();
    const withoutK8s = {
      ...full,
      scrape_configs: full.scrape_configs.filter((j) => !('kubernetes_sd_configs' in j)),
    };
    expect(withoutK8s.scrape_configs.map((j) => j.job_name)).toEqual(['callfs', 'callfs-swarm']);
    writeFileSync(join(tmp, 'prometheus.yml'), stringify(withoutK8s));
    writeFileSync(join(tmp, 'compose.yml'), read('compose/prometheus.yml'));
    copyFileSync(join(ROOT, 'prometheus/callfs_rules.yml'), join(tmp, 'callfs_rules.yml'));
    for (const file of ['prometheus.yml', 'compose.yml']) {
      const { stdout } = await run(promtool, ['check', 'config', file], { cwd: tmp });
      expect(stdout).toContain('is valid prometheus config file syntax');
      expect(stdout).toContain('SUCCESS: 8 rules found');
    }
  });

  it('amtool check-config: alertmanager.yml', async () => {
    const { stdout } = await run(amtool, ['check-config', 'prometheus/alertmanager.yml'], {
      cwd: ROOT,
    });
    expect(stdout).toContain('SUCCESS');
    expect(stdout).toContain('1 receivers');
    // The document's own version does not load: invalid webhook URL, unknown email keys.
    const seed = /```yaml\n(# alertmanager\.yml\n[\s\S]*?)```/.exec(
      read('docs/seed-monitoring.md'),
    )!;
    const file = join(tmp, 'seed-alertmanager.yml');
    writeFileSync(
      file,
      (seed[1] as string).replace('YOUR_SLACK_WEBHOOK_URL', 'https://h.example/x'),
    );
    const r = spawnSync(amtool, ['check-config', file], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout + r.stderr).toContain('field subject not found');
  });
});

describe('the rules are the seed document’s alerts', () => {
  const seedRules = () => {
    const block = seedYamlBlocks().find((b) => (b as Tree | null)?.groups !== undefined) as Tree;
    return rulesOf(block);
  };

  it('same names, for, severities, annotations; expressions equal but the corrected ones', () => {
    const ours = rulesOf(yamlFile('prometheus/callfs_rules.yml'));
    const seed = seedRules();
    expect(seed).toHaveLength(8);
    expect(ours.map((r) => r.alert)).toEqual(seed.map((r) => r.alert));
    for (const [i, s] of seed.entries()) {
      const o = ours[i]!;
      expect({ for: o.for, labels: o.labels, annotations: o.annotations }).toEqual({
        for: s.for,
        labels: s.labels,
        annotations: s.annotations,
      });
      if (s.alert in CORRECTED) {
        expect(o.expr, s.alert).not.toBe(s.expr);
        // The same comparison and threshold.
        expect(/\s(==|>|<)\s*[\d.]+$/.exec(o.expr)?.[0]).toBe(
          /\s(==|>|<)\s*[\d.]+$/.exec(s.expr)?.[0],
        );
      } else {
        expect(o.expr, s.alert).toBe(s.expr);
      }
    }
  });

  it('the unit tests make every alert fire and also hold it silent', () => {
    const tests = yamlFile('prometheus/callfs_rules.test.yml').tests as Array<{
      alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }>;
    }>;
    const evals = tests.flatMap((t) => t.alert_rule_test);
    for (const r of rulesOf(yamlFile('prometheus/callfs_rules.yml'))) {
      const mine = evals.filter((e) => e.alertname === r.alert);
      expect(
        mine.some((e) => e.exp_alerts.length > 0),
        `${r.alert} fires`,
      ).toBe(true);
      expect(
        mine.some((e) => e.exp_alerts.length === 0),
        `${r.alert} silent`,
      ).toBe(true);
    }
  });

  it('has the seed’s three jobs, discovery rules kept as the seed has them', () => {
    const seedJobs = seedYamlBlocks().flatMap((b) => {
      if (Array.isArray(b)) return b as Job[];
      const sc = (b as Tree | null)?.scrape_configs;
      return Array.isArray(sc) ? (sc as Job[]) : [];
    });
    expect(seedJobs.map((j) => j.job_name)).toEqual(['callfs', 'callfs-k8s', 'callfs-swarm']);
    expect(prometheusYml().scrape_configs.map((j) => j.job_name)).toEqual(
      seedJobs.map((j) => j.job_name),
    );
    const seed = (n: string) => seedJobs.find((j) => j.job_name === n)!;
    expect(job('callfs-k8s').kubernetes_sd_configs).toEqual(
      seed('callfs-k8s').kubernetes_sd_configs,
    );
    // The two keep rules as in the seed; the address rule reads __address__ too (see prometheus.yml).
    expect(job('callfs-k8s').relabel_configs!.slice(0, 2)).toEqual(
      seed('callfs-k8s').relabel_configs!.slice(0, 2),
    );
    expect(job('callfs-swarm').relabel_configs![0]).toEqual(
      seed('callfs-swarm').relabel_configs![0],
    );
    expect(job('callfs').metrics_path).toBe('/metrics');
    expect(prometheusYml().rule_files).toEqual(['callfs_rules.yml']);
  });
});

describe('discovery jobs against the manifests', () => {
  const k8sDocs = () =>
    ['statefulset.yaml', 'services.yaml'].flatMap((f) => yamlDocs(`k8s/${f}`)) as Tree[];

  /** The target Kubernetes pod discovery makes of a pod of the StatefulSet, one per container port. */
  function podTargets(template: Tree): Array<Record<string, string>> {
    const meta = template.metadata as {
      labels: Record<string, string>;
      annotations: Record<string, string>;
    };
    const containers = (
      template.spec as { containers: Array<{ ports: Array<{ containerPort: number }> }> }
    ).containers;
    const base: Record<string, string> = { __meta_kubernetes_pod_name: 'callfs-0' };
    const san = (k: string) => k.replace(/[^a-zA-Z0-9_]/g, '_');
    for (const [k, v] of Object.entries(meta.labels))
      base[`__meta_kubernetes_pod_label_${san(k)}`] = v;
    for (const [k, v] of Object.entries(meta.annotations))
      base[`__meta_kubernetes_pod_annotation_${san(k)}`] = v;
    return containers.flatMap((c) =>
      c.ports.map((p) => ({ ...base, __address__: `10.1.2.3:${p.containerPort}` })),
    );
  }

  it('callfs-k8s keeps each StatefulSet pod once, at its annotated port, and nothing else', () => {
    const sts = k8sDocs().find((d) => d.kind === 'StatefulSet')!;
    const template = (sts.spec as Tree).template as Tree;
    const rules = job('callfs-k8s').relabel_configs!;
    const kept = podTargets(template)
      .map((t) => relabel(t, rules))
      .filter((t) => t !== null);
    expect(kept.map((t) => t.__address__)).toEqual(['10.1.2.3:8443']);
    expect(kept[0]!.pod).toBe('callfs-0');
    const annotations = (template.metadata as Tree).annotations as Record<string, string>;
    expect(annotations['prometheus.io/port']).toBe('8443');
    // A pod on another port with the annotation is scraped at the annotated port.
    expect(
      relabel({ ...podTargets(template)[0]!, __address__: '10.1.2.3:9999' }, rules)?.__address__,
    ).toBe('10.1.2.3:8443');
    // Not labelled app=callfs, or not annotated: dropped.
    const other = { ...podTargets(template)[0]!, __meta_kubernetes_pod_label_app: 'other' };
    expect(relabel(other, rules)).toBeNull();
    const quiet = {
      ...podTargets(template)[0]!,
      __meta_kubernetes_pod_annotation_prometheus_io_scrape: 'false',
    };
    expect(relabel(quiet, rules)).toBeNull();
  });

  it('callfs-swarm keeps every CallFS task of the stack on its network, and not PostgreSQL or Redis', () => {
    const stack = yamlFile('swarm/callfs-stack.yml');
    const services = stack.services as Record<
      string,
      {
        deploy?: { labels?: Record<string, string> };
        networks?: string[];
        ports?: Array<{ published: number }>;
      }
    >;
    const rules = job('callfs-swarm').relabel_configs!;
    const sd = (job('callfs-swarm').dockerswarm_sd_configs as Array<{ port: number }>)[0]!;
    const kept: string[] = [];
    for (const [name, svc] of Object.entries(services)) {
      for (const net of svc.networks ?? []) {
        const t: Record<string, string> = {
          // A published port, else the discovery's `port`.
          __address__: `10.0.1.5:${svc.ports?.[0]?.published ?? sd.port}`,
          __meta_dockerswarm_network_name: `callfs_${net}`,
          __meta_dockerswarm_task_slot: '1',
        };
        for (const [k, v] of Object.entries(svc.deploy?.labels ?? {})) {
          t[`__meta_dockerswarm_service_label_${k}`] = v;
        }
        // Every task is also on the ingress network: that address is dropped.
        const ingress = { ...t, __meta_dockerswarm_network_name: 'ingress' };
        expect(relabel(ingress, rules)).toBeNull();
        const target = relabel(t, rules);
        if (target === null) continue;
        kept.push(name);
        expect(target.__address__, name).toBe('10.0.1.5:8443');
      }
    }
    expect(kept).toEqual(['callfs-1', 'callfs-2', 'callfs-3']);
    expect(sd.port).toBe(8443);
  });
});
