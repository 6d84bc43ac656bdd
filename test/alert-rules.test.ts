import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

// The alert rules, their promtool unit tests, the scrape configuration and the Grafana dashboard
// (infra/prometheus, infra/grafana) against each other and against the catalogue of metrics
// (docs/metrics.md) and the runbook (docs/operations.md): issue 39.

const repo = (path: string) => fileURLToPath(new URL(`../${path}`, import.meta.url));
const prometheusDir = repo('infra/prometheus');
const read = (path: string) => readFileSync(repo(path), 'utf8');


/** promtool, run in infra/prometheus (the relative rule_files resolve there); fails the test, never skips it. */
function promtool(...args: string[]): string {
  try {
    return execFileSync('promtool', args, { cwd: prometheusDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { status?: number | null; stdout?: string; stderr?: string };
    if (e.code === 'ENOENT') assert.fail("promtool is not installed: run scripts/setup.sh (it installs Debian's prometheus package, which brings promtool)");
    assert.fail(`promtool ${args.join(' ')} exited with ${String(e.status)}:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

interface Rule {
  readonly alert?: string;
  readonly record?: string;
  readonly expr: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}
interface RuleTest {
  readonly alertname: string;
  readonly eval_time: string;
  readonly exp_alerts?: readonly unknown[] | null;
}
interface Panel {
  readonly id: unknown;
  readonly type: unknown;
  readonly title: unknown;
  readonly gridPos?: Record<string, unknown>;
  readonly datasource?: { type?: unknown; uid?: unknown };
  readonly targets?: readonly { expr?: unknown }[];
}

const alertRules = (): Rule[] => {
  const doc = parseYaml(read('infra/prometheus/alerts.yml')) as { groups: { name: string; rules: Rule[] }[] };
  return doc.groups.flatMap((g) => g.rules).filter((r) => r.alert !== undefined);
};
const alertNames = () => [...new Set(alertRules().map((r) => r.alert!))];

/** Metric names in docs/metrics.md's tables (a backticked name in a row's first cell), with their type. */
function documentedMetrics(): Map<string, string> {
  const names = new Map<string, string>();
  for (const line of read('docs/metrics.md').split('\n')) {
    const row = /^\|\s*`(fleetpki_[a-z0-9_]+)`\s*\|\s*([a-z]+)\s*\|/.exec(line);
    if (row) names.set(row[1]!, row[2]!);
  }
  return names;
}

const PROMQL_WORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'inf', 'nan']);

/**
 * The metric names a PromQL expression selects: identifiers that are not functions (followed by "("),
 * keywords, label names (inside {...} or a by/on/without/ignoring/group_x list), strings or Grafana
 * variables ($site, $__rate_interval).
 */
function metricNames(expr: string): Set<string> {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\$\w+/g, '')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of bare.matchAll(/(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()/g)) {
    if (!PROMQL_WORDS.has(m[1]!.toLowerCase())) names.add(m[1]!);
  }
  return names;
}

/** Why a name is not allowed, or undefined: docs/metrics.md's names (a histogram's series too), `up`, prom-client's defaults. */
function undocumented(name: string, documented: Map<string, string>): string | undefined {
  if (name === 'up' || name.startsWith('nodejs_') || name.startsWith('process_') || documented.has(name)) return undefined;
  const histogram = /^(.*)_(bucket|count|sum)$/.exec(name);
  if (histogram && documented.get(histogram[1]!) === 'histogram') return undefined;
  return `${name} is not in docs/metrics.md`;
}

/** GitHub's heading anchors: lowercase, punctuation other than "-" and "_" dropped, spaces to "-". */
function anchors(markdown: string): Set<string> {
  const found = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const heading = fenced ? null : /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
    if (heading) found.add(heading[1]!.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-'));
  }
  return found;
}

test('promtool accepts the rules, their unit tests pass, and the scrape configuration is valid', () => {
  const rules = promtool('check', 'rules', 'alerts.yml');
  assert.match(rules, /SUCCESS: \d+ rules found/);
  const tests = promtool('test', 'rules', 'alerts.test.yml');
  assert.match(tests, /SUCCESS/);
  assert.doesNotMatch(tests, /FAILED/);
  const config = promtool('check', 'config', 'prometheus.yml');
  assert.match(config, /SUCCESS: prometheus\.yml is valid/);
});

test('every scrape target sets site and process, and prometheus.yml loads alerts.yml', () => {
  const config = parseYaml(read('infra/prometheus/prometheus.yml')) as { rule_files: string[]; scrape_configs: { job_name: string; static_configs: { targets: string[]; labels?: Record<string, string> }[] }[] };
  assert.deepEqual(config.rule_files, ['alerts.yml']);
  const processes = new Set<string>();
  for (const job of config.scrape_configs) {
    for (const group of job.static_configs) {
      assert.match(group.labels?.site ?? '', /^[ab]$/, `${job.job_name} ${group.targets.join(',')}: site label`);
      const name = group.labels?.process;
      assert.ok(name, `${job.job_name} ${group.targets.join(',')}: process label`);
      processes.add(name);
    }
  }
  assert.deepEqual([...processes].sort(), ['batch-worker', 'daemons', 'issuer-api', 'site-agent', 'status-responder']);
});

test('every alert has a severity, a summary, a description and a runbook section in docs/operations.md', () => {
  const sections = anchors(read('docs/operations.md'));
  const rules = alertRules();
  assert.ok(rules.length >= 20, `only ${rules.length} alert rules`);
  for (const rule of rules) {
    assert.match(rule.labels?.severity ?? '', /^(page|ticket)$/, `${rule.alert}: severity`);
    assert.ok(rule.annotations?.summary, `${rule.alert}: summary`);
    assert.ok(rule.annotations?.description, `${rule.alert}: description`);
    const runbook = /^docs\/operations\.md#(.+)$/.exec(rule.annotations?.runbook ?? '');
    assert.ok(runbook, `${rule.alert}: runbook "${rule.annotations?.runbook}" is not docs/operations.md#<anchor>`);
    assert.ok(sections.has(runbook[1]!), `${rule.alert}: docs/operations.md has no heading for #${runbook[1]}`);
    // One section per alert, named after it.
    assert.equal(runbook[1], rule.alert!.toLowerCase(), `${rule.alert}: its runbook is another alert's section`);
  }
});

test('every alert has a firing and a silent case in alerts.test.yml, and every case tests an existing alert', () => {
  const doc = parseYaml(read('infra/prometheus/alerts.test.yml')) as { rule_files: string[]; tests: { alert_rule_test?: RuleTest[] }[] };
  assert.deepEqual(doc.rule_files, ['alerts.yml']);
  const cases = doc.tests.flatMap((t) => t.alert_rule_test ?? []);
  const firing = new Set(cases.filter((c) => (c.exp_alerts ?? []).length > 0).map((c) => c.alertname));
  const silent = new Set(cases.filter((c) => (c.exp_alerts ?? []).length === 0).map((c) => c.alertname));
  const names = alertNames();
  for (const name of names) {
    assert.ok(firing.has(name), `${name}: no case where it fires`);
    assert.ok(silent.has(name), `${name}: no case where it stays silent`);
  }
  // A case for a misspelt alert would pass while it expects silence.
  for (const c of cases) assert.ok(names.includes(c.alertname), `alerts.test.yml tests ${c.alertname} at ${c.eval_time}, which alerts.yml does not define`);
});

test('the metric-name extraction sees through functions, labels and variables', () => {
  assert.deepEqual(
    [...metricNames('sum by (site, le) (rate(fleetpki_hsm_operation_duration_seconds_bucket{kind="sign", site=~"$site"}[$__rate_interval])) > 0.25 and on (site) max by (site) (fleetpki_site_active) == 1 unless up offset 15m')].sort(),
    ['fleetpki_hsm_operation_duration_seconds_bucket', 'fleetpki_site_active', 'up'],
  );
  assert.equal(undocumented('fleetpki_hsm_operation_duration_seconds_bucket', documentedMetrics()), undefined);
  assert.match(undocumented('fleetpki_hsm_operations_total_bucket', documentedMetrics()) ?? '', /not in docs\/metrics\.md/, 'a counter has no buckets');
  assert.match(undocumented('fleetpki_not_a_metric', documentedMetrics()) ?? '', /not in docs\/metrics\.md/);
});

test('the alerts and the dashboard use only metrics docs/metrics.md lists (or up and prom-client defaults)', () => {
  const documented = documentedMetrics();
  assert.ok(documented.size >= 40, `only ${documented.size} metrics found in docs/metrics.md's tables`);
  const problems: string[] = [];
  for (const rule of alertRules()) {
    const names = metricNames(rule.expr);
    if (names.size === 0) problems.push(`${rule.alert}: no metric found in its expression`);
    for (const name of names) {
      const why = undocumented(name, documented);
      if (why) problems.push(`${rule.alert}: ${why}`);
    }
  }
  const dashboard = JSON.parse(read('infra/grafana/fleetpki-dashboard.json')) as { panels: Panel[]; templating: { list: { name: string; query: unknown; definition?: string }[] } };
  for (const panel of dashboard.panels) {
    for (const target of panel.targets ?? []) {
      for (const name of metricNames(String(target.expr))) {
        const why = undocumented(name, documented);
        if (why) problems.push(`dashboard panel ${String(panel.id)} "${String(panel.title)}": ${why}`);
      }
    }
  }
  for (const variable of dashboard.templating.list) {
    const query = typeof variable.query === 'string' ? variable.query : ((variable.query as { query?: string } | undefined)?.query ?? '');
    for (const name of metricNames(query.replace(/^label_values\((.*),\s*\w+\)$/, '$1'))) {
      const why = undocumented(name, documented);
      if (why) problems.push(`dashboard variable ${variable.name}: ${why}`);
    }
  }
  assert.deepEqual(problems, []);
});

test('the dashboard is importable: inputs, uid, site variable, one row per part, well-formed panels', () => {
  const dashboard = JSON.parse(read('infra/grafana/fleetpki-dashboard.json')) as {
    __inputs?: { name: string; type: string; pluginId: string }[];
    title: unknown;
    uid: unknown;
    panels: unknown;
    templating?: { list?: { name: string; query: unknown }[] };
  };
  assert.equal(dashboard.title, 'fleetpki');
  assert.equal(dashboard.uid, 'fleetpki');
  assert.ok(dashboard.__inputs?.some((i) => i.name === 'DS_PROMETHEUS' && i.type === 'datasource' && i.pluginId === 'prometheus'), '__inputs: DS_PROMETHEUS');
  const site = dashboard.templating?.list?.find((v) => v.name === 'site');
  assert.ok(site, 'templating: the site variable');
  assert.match(JSON.stringify(site.query), /label_values\(fleetpki_site_active, ?site\)/);
  assert.ok(Array.isArray(dashboard.panels));
  const panels = dashboard.panels as Panel[];
  const ids = new Set<unknown>();
  const exprs: string[] = [];
  for (const [i, panel] of panels.entries()) {
    const what = `panel ${i} (${String(panel.title)})`;
    assert.ok(Number.isInteger(panel.id), `${what}: integer id`);
    assert.ok(!ids.has(panel.id), `${what}: id ${String(panel.id)} is used twice`);
    ids.add(panel.id);
    assert.ok(typeof panel.type === 'string' && panel.type.length > 0, `${what}: type`);
    assert.ok(typeof panel.title === 'string' && panel.title.length > 0, `${what}: title`);
    for (const key of ['h', 'w', 'x', 'y']) assert.equal(typeof panel.gridPos?.[key], 'number', `${what}: gridPos.${key}`);
    assert.ok((panel.gridPos!.x as number) + (panel.gridPos!.w as number) <= 24, `${what}: wider than the grid`);
    if (panel.type === 'row') continue;
    assert.deepEqual(panel.datasource, { type: 'prometheus', uid: '${DS_PROMETHEUS}' }, `${what}: datasource`);
    assert.ok((panel.targets ?? []).length > 0, `${what}: no target`);
    for (const target of panel.targets ?? []) {
      assert.ok(typeof target.expr === 'string' && target.expr.trim().length > 0, `${what}: a target without expr`);
      assert.match(target.expr, /\$site/, `${what}: "${target.expr}" ignores the site variable`);
      exprs.push(target.expr);
    }
  }
  // One row per part, in this order, each followed by panels of its own.
  const parts = ['HSM', 'Issuance', 'Batch', 'Status (CRL/OCSP)', 'Sites & replication', 'Audit & archive', 'Processes'];
  assert.deepEqual(panels.filter((p) => p.type === 'row').map((p) => p.title), parts);
  for (const [i, panel] of panels.entries()) {
    if (panel.type === 'row') assert.ok(panels[i + 1] && panels[i + 1]!.type !== 'row', `row "${String(panel.title)}" has no panel`);
  }
  // Every expression is valid PromQL: promtool parses them as recording rules (JSON is YAML).
  const dir = mkdtempSync(join(tmpdir(), 'fleetpki-dashboard-'));
  try {
    const rules = { groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `dashboard:expr_${i}`, expr: expr.replaceAll('$__rate_interval', '5m').replaceAll('$site', 'a') })) }] };
    writeFileSync(join(dir, 'dashboard-rules.yml'), JSON.stringify(rules));
    assert.match(promtool('check', 'rules', join(dir, 'dashboard-rules.yml')), new RegExp(`SUCCESS: ${exprs.length} rules found`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
