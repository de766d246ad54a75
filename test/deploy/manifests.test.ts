/**
 * The deployment assets as files: every YAML/JSON/shell file parses (yamllint
 * too), the compose and stack files pass `docker-compose config`, the
 * Kubernetes manifests pass their API schema (kubernetes-models) and agree
 * with each other, the CallFS configs each platform passes (file + the
 * environment it sets) pass `callfs config validate`, the Dockerfile is
 * multi-stage / non-root / health-checked, the dashboards are current
 * Grafana JSON with the seed's panels, and the README shows each path.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { parse as parseYaml } from 'yaml';
import { CLI } from '../helpers/callfs.js';
import { findOrAptInstallTool } from '../helpers/services.js';
import {
  assetFiles,
  dashboard,
  dashboardExprs,
  DASHBOARDS,
  read,
  ROOT,
  run,
  yamlDocs,
  yamlFile,
} from './assets.js';

type Tree = Record<string, unknown>;
const secret24 = (i: number) => `s${i}-`.padEnd(24, 'x');

let compose: string;
let yamllint: string;
let tmp: string;

beforeAll(async () => {
  // Sequential: apt-get takes one lock.
  compose = await findOrAptInstallTool('docker-compose', 'docker-compose');
  yamllint = await findOrAptInstallTool('yamllint', 'yamllint');
  tmp = mkdtempSync(join(tmpdir(), 'callfs-deploy-'));
}, 240_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** `callfs config validate` of a config file with exactly `env` (no other CALLFS_*). */
function validate(
  config: string,
  env: Record<string, string>,
): { code: number | null; out: string } {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('CALLFS_')),
  );
  const r = spawnSync(process.execPath, [CLI, 'config', 'validate', '--config', config], {
    env: { ...base, ...env },
    encoding: 'utf8',
  });
  return { code: r.status, out: r.stdout + r.stderr };
}

describe('every asset file parses', () => {
  it('YAML (no duplicate keys), JSON, shell, env files', () => {
    const files = [...assetFiles(), 'Dockerfile', 'docker-entrypoint.sh'];
    const kinds: Record<string, number> = {};
    for (const f of files) {
      const ext = /\.([a-z]+)$/.exec(f)?.[1] ?? f;
      kinds[ext] = (kinds[ext] ?? 0) + 1;
      if (ext === 'yml' || ext === 'yaml') expect(yamlDocs(f).length, f).toBeGreaterThan(0);
      else if (ext === 'json') expect(() => JSON.parse(read(f)), f).not.toThrow();
      else if (ext === 'sh') expect(spawnSync('sh', ['-n', join(ROOT, f)]).status, f).toBe(0);
      else if (ext === 'example')
        for (const line of read(f).split('\n'))
          expect(line, f).toMatch(/^(#.*|[A-Z][A-Z0-9_]*=\S+|)$/);
      else if (f !== 'Dockerfile') throw new Error(`no check for ${f}`);
    }
    expect(kinds.json).toBe(2);
    expect((kinds.yml ?? 0) + (kinds.yaml ?? 0)).toBeGreaterThanOrEqual(17);
  });

  it('yamllint finds no error in any YAML file (it catches duplicate keys)', () => {
    const files = assetFiles().filter((f) => /\.ya?ml$/.test(f));
    const conf = '{extends: relaxed, rules: {line-length: disable}}';
    const r = spawnSync(yamllint, ['-f', 'parsable', '-d', conf, ...files], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(r.stdout.split('\n').filter((l) => l.includes('[error]'))).toEqual([]);
    expect(r.status).toBe(0);
    // And it does catch one.
    writeFileSync(join(tmp, 'dup.yml'), 'a: 1\na: 2\n');
    const dup = spawnSync(yamllint, ['-f', 'parsable', '-d', conf, join(tmp, 'dup.yml')], {
      encoding: 'utf8',
    });
    expect(dup.stdout).toContain('duplication of key "a"');
  });
});

describe('compose/', () => {
  const file = join(ROOT, 'compose/docker-compose.yml');
  const envFile = join(ROOT, 'compose/.env.example');
  const resolved = async (): Promise<{ services: Record<string, Tree> }> => {
    const { stdout } = await run(compose, ['--env-file', envFile, '-f', file, 'config'], {
      cwd: join(ROOT, 'compose'),
    });
    return parseYaml(stdout) as { services: Record<string, Tree> };
  };

  it('docker-compose config accepts it with .env.example, and refuses without the secrets', async () => {
    await run(compose, ['--env-file', envFile, '-f', file, 'config', '-q'], { cwd: tmp });
    const empty = join(tmp, 'empty.env');
    writeFileSync(empty, '');
    const r = spawnSync(compose, ['--env-file', empty, '-f', file, 'config', '-q'], {
      encoding: 'utf8',
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/set \w+ in \.env/);
  });

  it('has the 3 instances, PostgreSQL, Redis, MinIO with its bucket, Prometheus, Alertmanager, Grafana', async () => {
    const { services } = await resolved();
    expect(Object.keys(services).sort()).toEqual([
      'alertmanager',
      'callfs-1',
      'callfs-2',
      'callfs-3',
      'grafana',
      'minio',
      'minio-bucket',
      'postgres',
      'prometheus',
      'redis',
    ]);
    expect(JSON.stringify(services['minio-bucket']!.command)).toContain(
      'mc mb --ignore-existing local/callfs',
    );
    const vols = (s: string) => JSON.stringify(services[s]!.volumes);
    expect(vols('prometheus')).toContain('prometheus/callfs_rules.yml');
    expect(vols('alertmanager')).toContain('prometheus/alertmanager.yml');
    expect(vols('grafana')).toContain('grafana/dashboards');
    expect(vols('grafana')).toContain('grafana/provisioning/dashboards');
    // The Prometheus of the stack scrapes exactly the three instances.
    const prom = yamlFile('compose/prometheus.yml') as {
      scrape_configs: Array<{ static_configs: Array<{ targets: string[] }> }>;
    };
    expect(prom.scrape_configs[0]!.static_configs[0]!.targets).toEqual([
      'callfs-1:8443',
      'callfs-2:8443',
      'callfs-3:8443',
    ]);
    // Grafana loads the dashboards from where the provider looks.
    const provider = (
      yamlFile('grafana/provisioning/dashboards/callfs.yml').providers as Array<{
        options: { path: string };
      }>
    )[0]!;
    expect(vols('grafana')).toContain(provider.options.path);
  });

  it('each instance: own id, hostname, config that `callfs config validate` accepts with its environment', async () => {
    const { services } = await resolved();
    const ids: string[] = [];
    for (const name of ['callfs-1', 'callfs-2', 'callfs-3']) {
      const s = services[name] as Tree & { environment: Record<string, string>; hostname: string };
      expect(s.hostname).toBe(name);
      expect((s.build as Tree).dockerfile).toBe('Dockerfile');
      expect(JSON.stringify(s.healthcheck)).toContain('http://127.0.0.1:8443/health');
      ids.push(s.environment.CALLFS_INSTANCE_DISCOVERY__INSTANCE_ID as string);
      const r = validate(join(ROOT, 'compose/callfs.yaml'), s.environment);
      expect(r, name).toEqual({ code: 0, out: `${join(ROOT, 'compose/callfs.yaml')}: ok\n` });
    }
    expect(ids).toEqual(['callfs-1', 'callfs-2', 'callfs-3']);
    // No secret in the files: they come from .env.
    for (const f of ['compose/docker-compose.yml', 'compose/callfs.yaml']) {
      expect(read(f)).not.toMatch(/change-me/);
    }
  });
});

describe('k8s/', () => {
  const docs = () =>
    ['namespace', 'configmap', 'secret', 'services', 'statefulset', 'pdb'].flatMap((f) =>
      yamlDocs(`k8s/${f}.yaml`),
    ) as Tree[];
  const byKind = (kind: string) => docs().filter((d) => d.kind === kind);

  it('every manifest passes its Kubernetes API schema (kubernetes-models)', () => {
    const models: Record<string, new (o: never) => { validate(): void }> = {
      Namespace,
      ConfigMap,
      Secret,
      Service,
      StatefulSet,
      PodDisruptionBudget,
    };
    const kinds = docs().map((d) => d.kind as string);
    expect(kinds.sort()).toEqual([
      'ConfigMap',
      'Namespace',
      'PodDisruptionBudget',
      'Secret',
      'Service',
      'Service',
      'StatefulSet',
    ]);
    for (const d of docs()) {
      const Model = models[d.kind as string]!;
      expect(() => new Model(d as never).validate(), `${d.kind}`).not.toThrow();
    }
    // The validator does reject a wrong type.
    const bad = structuredClone(byKind('StatefulSet')[0]!) as { spec: { replicas: unknown } };
    bad.spec.replicas = 'three';
    expect(() => new StatefulSet(bad as never).validate()).toThrow(/replicas/);
  });

  it('the kustomization lists every manifest', () => {
    const k = yamlFile('k8s/kustomization.yaml');
    expect(k.kind).toBe('Kustomization');
    const listed = (k.resources as string[]).slice().sort();
    const files = assetFiles()
      .filter((f) => f.startsWith('k8s/') && f !== 'k8s/kustomization.yaml')
      .map((f) => f.slice(4))
      .sort();
    expect(listed).toEqual(files);
    expect(k.namespace).toBe((byKind('Namespace')[0]!.metadata as Tree).name);
  });

  it('labels, selectors, names, ports and probes agree', () => {
    const sts = byKind('StatefulSet')[0] as Tree & { spec: Tree & Record<string, never> };
    const spec = sts.spec as unknown as {
      serviceName: string;
      selector: { matchLabels: Record<string, string> };
      template: {
        metadata: { labels: Record<string, string> };
        spec: { containers: Array<Record<string, never>>; volumes: Array<Tree> };
      };
    };
    const labels = spec.template.metadata.labels;
    expect(labels.app).toBe('callfs');
    const matches = (sel: Record<string, string>) =>
      Object.entries(sel).every(([k, v]) => labels[k] === v);
    expect(matches(spec.selector.matchLabels)).toBe(true);
    const services = byKind('Service') as Array<{
      metadata: { name: string };
      spec: {
        clusterIP?: string;
        selector: Record<string, string>;
        ports: Array<{ targetPort: string | number; port: number }>;
      };
    }>;
    const headless = services.find((s) => s.metadata.name === spec.serviceName)!;
    expect(headless.spec.clusterIP).toBe('None');
    expect(services.find((s) => s.spec.clusterIP !== 'None')!.metadata.name).toBe('callfs');
    for (const s of services) expect(matches(s.spec.selector), s.metadata.name).toBe(true);
    const pdb = byKind('PodDisruptionBudget')[0] as {
      spec: { selector: { matchLabels: Record<string, string> } };
    };
    expect(matches(pdb.spec.selector.matchLabels)).toBe(true);

    const c = spec.template.spec.containers[0] as unknown as {
      ports: Array<{ name: string; containerPort: number }>;
      livenessProbe: { httpGet: { path: string; port: string } };
      readinessProbe: { httpGet: { path: string; port: string } };
      resources: { requests: Tree; limits: Tree };
      envFrom: Array<{ secretRef: { name: string } }>;
      env: Array<{ name: string; value?: string }>;
    };
    const portByName = new Map(c.ports.map((p) => [p.name, p.containerPort]));
    expect(c.livenessProbe.httpGet.path).toBe('/health');
    expect(c.readinessProbe.httpGet.path).toBe('/ready');
    for (const p of [c.livenessProbe, c.readinessProbe])
      expect(portByName.has(p.httpGet.port)).toBe(true);
    for (const s of services)
      for (const p of s.spec.ports) expect(portByName.has(String(p.targetPort))).toBe(true);
    expect(Object.keys(c.resources.requests).sort()).toEqual(['cpu', 'memory']);
    expect(Object.keys(c.resources.limits).sort()).toEqual(['cpu', 'memory']);
    // The server listens on the container port (the ConfigMap's listen_addr).
    const cm = byKind('ConfigMap')[0] as {
      metadata: { name: string };
      data: Record<string, string>;
    };
    const cfg = parseYaml(cm.data['callfs.yaml']!) as { server: { listen_addr: string } };
    expect(Number(cfg.server.listen_addr.split(':').at(-1))).toBe(portByName.get('http'));
    // References resolve.
    expect(c.envFrom[0]!.secretRef.name).toBe((byKind('Secret')[0]!.metadata as Tree).name);
    expect(JSON.stringify(spec.template.spec.volumes)).toContain(`"name":"${cm.metadata.name}"`);
    // Instance id from the pod name; peers at the pod's headless-Service DNS name.
    const env = Object.fromEntries(c.env.map((e) => [e.name, e.value]));
    expect(env.CALLFS_INSTANCE_DISCOVERY__INSTANCE_ID).toBe('$(POD_NAME)');
    expect(env.CALLFS_SERVER__EXTERNAL_URL).toBe(
      `http://$(POD_NAME).${spec.serviceName}.$(POD_NAMESPACE).svc.cluster.local:${portByName.get('http')}`,
    );
  });

  it('the ConfigMap + Secret + pod environment pass `callfs config validate`; the placeholders do not', () => {
    const cm = byKind('ConfigMap')[0] as { data: Record<string, string> };
    const file = join(tmp, 'k8s-callfs.yaml');
    writeFileSync(file, cm.data['callfs.yaml']!);
    const secret = (byKind('Secret')[0] as { stringData: Record<string, string> }).stringData;
    const sts = byKind('StatefulSet')[0] as {
      spec: {
        template: { spec: { containers: Array<{ env: Array<{ name: string; value?: string }> }> } };
      };
    };
    // Kubernetes expands $(VAR) from earlier entries; the downward API gives the pod's name.
    const podEnv: Record<string, string> = { POD_NAME: 'callfs-0', POD_NAMESPACE: 'callfs' };
    for (const e of sts.spec.template.spec.containers[0]!.env) {
      if (e.value !== undefined)
        podEnv[e.name] = e.value.replace(/\$\((\w+)\)/g, (_, v: string) => podEnv[v] ?? '');
    }
    const placeholders = validate(file, { ...secret, ...podEnv });
    expect(placeholders.code).toBe(2);
    expect(placeholders.out).toContain('auth.internal_proxy_secret');
    const real = Object.fromEntries(
      Object.entries(secret).map(([k, v], i) => [k, v.replace('REPLACE_ME', secret24(i))]),
    );
    expect(validate(file, { ...real, ...podEnv })).toEqual({ code: 0, out: `${file}: ok\n` });
  });
});

describe('swarm/', () => {
  it('docker-compose config accepts the stack file', async () => {
    const { stderr } = await run(
      compose,
      ['-f', join(ROOT, 'swarm/callfs-stack.yml'), 'config', '-q'],
      { cwd: tmp },
    );
    // v1 warns that it ignores `configs` (a Swarm feature); nothing else.
    expect(stderr.replace(/.*use `docker stack deploy`.*\n?/, '')).toBe('');
  });

  it('each instance: label app=callfs, health check, config, secrets that `callfs config validate` accepts', () => {
    const stack = yamlFile('swarm/callfs-stack.yml') as {
      services: Record<string, Tree>;
      secrets: Record<string, Tree>;
      configs: Record<string, { file: string }>;
    };
    const callfs = Object.entries(stack.services).filter(([n]) => n.startsWith('callfs-'));
    expect(callfs.map(([n]) => n)).toEqual(['callfs-1', 'callfs-2', 'callfs-3']);
    const configFile = join(ROOT, 'swarm', stack.configs.callfs_config!.file);
    expect(existsSync(configFile)).toBe(true);
    for (const [name, s] of callfs) {
      expect((s.deploy as { labels: Record<string, string> }).labels.app).toBe('callfs');
      expect(JSON.stringify(s.healthcheck)).toContain('http://127.0.0.1:8443/health');
      const secrets = s.secrets as Array<{ source: string; target: string }>;
      for (const sec of secrets)
        expect(stack.secrets[sec.source], sec.source).toEqual({ external: true });
      // The entrypoint exports /run/secrets/CALLFS_* as variables of those names.
      const env: Record<string, string> = { ...(s.environment as Record<string, string>) };
      for (const [i, sec] of secrets.entries()) {
        expect(sec.target).toMatch(/^CALLFS_[A-Z_]+__[A-Z_]+$/);
        env[sec.target] = sec.target.endsWith('DSN')
          ? 'postgres://callfs:pw@postgres:5432/callfs'
          : secret24(i);
      }
      expect(validate(configFile, env), name).toEqual({ code: 0, out: `${configFile}: ok\n` });
    }
    // Every secret create-secrets.sh makes is one the stack uses, and the reverse.
    const created = [...read('swarm/create-secrets.sh').matchAll(/^new (\w+)/gm)]
      .map((m) => m[1])
      .sort();
    expect(created).toEqual(Object.keys(stack.secrets).sort());
  });
});

describe('Dockerfile', () => {
  const text = read('Dockerfile');
  const stages = text.split(/^FROM /m).slice(1);

  it('multi-stage on node:24, npm ci + build + prune, non-root, HEALTHCHECK on /health', () => {
    expect(stages.length).toBe(2);
    for (const s of stages) expect(s).toMatch(/^node:24[-\w.]*/);
    expect(stages[0]).toMatch(/RUN npm ci/);
    expect(stages[0]).toMatch(/npm run build && npm prune --omit=dev/);
    const final = stages[1]!;
    expect(/^USER (\S+)$/m.exec(final)?.[1]).toBe('node');
    expect(final).toMatch(
      /^HEALTHCHECK .*\n?.*CMD \["node", "-e", "fetch\(process\.env\.HEALTHCHECK_URL\)/m,
    );
    expect(final).toContain('HEALTHCHECK_URL=http://127.0.0.1:8443/health');
    expect(final).toMatch(/^EXPOSE 8443$/m);
    expect(final).toMatch(/^ENTRYPOINT \["callfs-entrypoint"\]$/m);
    // What the image copies exists, and the entrypoint starts the built CLI.
    for (const m of text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const src of (m[1] as string).split(' '))
        expect(existsSync(join(ROOT, src)), src).toBe(true);
    }
    expect(read('docker-entrypoint.sh')).toContain('exec node /app/dist/cli.js "$@"');
    expect(read('package.json')).toContain('"build": "tsc -p tsconfig.build.json"');
  });
});

describe('grafana/', () => {
  const SEED_PANELS: Record<string, { title: string; panels: string[] }> = {
    'grafana/dashboards/callfs-overview.json': {
      title: 'CallFS Overview',
      panels: ['Request Rate', 'Request Duration', 'Backend Operations', 'Error Rate'],
    },
    'grafana/dashboards/callfs-backend-performance.json': {
      title: 'CallFS Backend Performance',
      panels: ['Backend Operation Duration', 'Database Query Performance', 'Cache Hit Rate'],
    },
  };

  it('the seed’s two dashboards: its panels, current panel types, templated datasource and instance', () => {
    const seed = read('docs/seed-monitoring.md');
    for (const file of DASHBOARDS) {
      const d = dashboard(file);
      const want = SEED_PANELS[file]!;
      expect(seed).toContain(`"title": "${want.title}"`);
      expect(d.title).toBe(want.title);
      expect(d.uid).toMatch(/^callfs-/);
      for (const p of want.panels) {
        expect(seed).toContain(`"title": "${p}"`);
        expect(d.panels.map((x) => x.title)).toContain(p);
      }
      for (const p of d.panels) {
        expect(['timeseries', 'stat'], p.title).toContain(p.type);
        expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      }
      const vars = Object.fromEntries(d.templating.list.map((v) => [v.name as string, v]));
      expect(vars.datasource).toMatchObject({ type: 'datasource', query: 'prometheus' });
      expect(vars.instance).toMatchObject({ type: 'query', includeAll: true, multi: true });
      // Every selector of every query is narrowed to the chosen instances.
      for (const expr of dashboardExprs(d).slice(0, -1)) {
        const selectors = [...expr.matchAll(/\b(callfs_\w+|process_\w+)(\{[^}]*\})?/g)];
        for (const s of selectors) expect(s[2] ?? '', expr).toContain('instance=~"$instance"');
      }
    }
  });
});

describe('README', () => {
  it('shows compose, Kubernetes, Swarm and the dashboards import', () => {
    const readme = read('README.md');
    const section = readme.split(/^## Deployment$/m)[1]?.split(/^## /m)[0] ?? '';
    for (const cmd of [
      'cp .env.example .env',
      'docker compose up -d --build',
      'kubectl apply -k k8s/',
      'docker stack deploy -c swarm/callfs-stack.yml callfs',
      'swarm/create-secrets.sh',
      'grafana/dashboards/',
      'promtool test rules',
    ]) {
      expect(section, cmd).toContain(cmd);
    }
    expect(readme).not.toMatch(/Not yet built[\s\S]*deployment assets/);
  });
});
