// The metrics reference table for the README, generated from the registry so
// the documentation names exactly what the agent exports.
import { AgentMetrics } from './registry.ts';

export async function metricsReferenceMarkdown(): Promise<string> {
  const m = new AgentMetrics({ defaultMetrics: false });
  const families = (await m.registry.getMetricsAsJSON()).filter((f) => f.name.startsWith('pg_prefaulter_'));
  const rows = families.map((f) => {
    const labels = new Set<string>();
    for (const v of (f as { values?: { labels?: Record<string, unknown> }[] }).values ?? []) {
      for (const k of Object.keys(v.labels ?? {})) if (k !== 'le') labels.add(k);
    }
    // rmgr labels appear only once data flows; name them from the instrument.
    if (f.name === 'pg_prefaulter_wal_records_total' || f.name === 'pg_prefaulter_wal_bytes_total') labels.add('rmgr');
    return `| \`${f.name}\` | ${f.type} | ${[...labels].map((l) => `\`${l}\``).join(', ') || '-'} | ${f.help} |`;
  });
  return ['| Metric | Type | Labels | Meaning |', '|---|---|---|---|', ...rows].join('\n') +
    '\n\nPlus the standard `process_*` and `nodejs_*` metrics of prom-client.\n';
}
