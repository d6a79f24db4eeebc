// Placeholder until the demo command lands; the CLI registry already points here.
export default async function demoCommand(_argv: string[]): Promise<number> {
  process.stderr.write('pg-prefaulter demo: not available in this build yet\n');
  return 1;
}
