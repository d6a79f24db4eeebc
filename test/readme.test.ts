// The README's reference tables are generated from the code; a stale README fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { generatedSections, replaceSection } from '../scripts/update-readme.ts';

test('README configuration and metrics references match the code (npm run docs regenerates them)', async () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  for (const [name, body] of Object.entries(await generatedSections())) {
    assert.equal(replaceSection(readme, name, body), readme, `README section "${name}" is stale: run npm run docs`);
  }
});

test('README quickstart names the commands that exist', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  assert.match(readme, /npm ci && npx pg-prefaulter demo/);
  assert.match(readme, /^npm test/m);
});
