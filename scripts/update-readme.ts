// Regenerates the README's configuration and metrics reference sections from
// the code (npm run docs). test/readme.test.ts fails when they are stale.
import { readFileSync, writeFileSync } from 'node:fs';
import { configReferenceMarkdown } from '../src/config/index.ts';
import { metricsReferenceMarkdown } from '../src/metrics/reference.ts';

export async function generatedSections(): Promise<Record<string, string>> {
  return { config: configReferenceMarkdown(), metrics: await metricsReferenceMarkdown() };
}

export function replaceSection(text: string, name: string, body: string): string {
  const start = `<!-- generated:${name} -->`;
  const end = `<!-- /generated:${name} -->`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i < 0 || j < i) throw new Error(`README.md lacks the ${start} ... ${end} markers`);
  return `${text.slice(0, i + start.length)}\n${body.trimEnd()}\n${text.slice(j)}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const path = new URL('../README.md', import.meta.url);
  let text = readFileSync(path, 'utf8');
  for (const [name, body] of Object.entries(await generatedSections())) text = replaceSection(text, name, body);
  writeFileSync(path, text);
}
